"""The error a source raises for input it cannot read (a missing file, a missing column, an empty table).

The command line prints it as one line and exits 2, like a usage error; sources never import the CLI.
"""


class InputError(ValueError):
    """Input that cannot be read as asked: the message says which file and what to change."""
