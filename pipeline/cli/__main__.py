"""`python -m clipcurate.pipeline.cli`: the same entry point as the `clipcurate` script."""
from clipcurate.pipeline.cli import entry

entry()
