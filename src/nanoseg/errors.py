"""One error type for bad input: the CLI prints its message on one line and exits with 2."""


class NanosegError(Exception):
    """Bad usage or bad input. The message names the offending file or parameter."""

    exit_code = 2
