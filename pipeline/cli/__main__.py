"""`python -m clipcurate.pipeline.cli`: the same entry point as the `clipcurate` script."""
import sys

from clipcurate.pipeline.cli import main

sys.exit(main())
