"""The one error type the CLI turns into a clean message and a non-zero exit."""

__all__ = ["CliError"]


class CliError(Exception):
    """A user-facing error: bad argument, missing file, bad model. The message says what is
    wrong and what is allowed; ``cimforge`` prints it and exits with status 2."""
