"""One error type for bad input: the CLI prints its message on one line and exits with 2."""


class NanosegError(Exception):
    """Bad usage or bad input. The message names the offending file or parameter."""

    exit_code = 2


def brief(exc: BaseException) -> str:
    """An exception's text on one line (YAML and JSON parsers write several), for an error message."""
    text = " ".join(str(exc).split())
    return text[:300] if text else exc.__class__.__name__
