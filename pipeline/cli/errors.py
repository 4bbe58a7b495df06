"""Errors with a meaning at the command line."""


class UsageError(Exception):
    """A problem with the command line or its inputs: one line on stderr, exit code 2."""
