"""Errors a user can act on: the CLI prints them as one line and exits with status 2."""


class UserError(Exception):
    """Bad input (config, pool, run directory): the message says what is wrong, where, and what to do."""

    exit_code = 2


class FatalBackendError(Exception):
    """The backend refuses every request (for example a bad API key): the whole run stops at once."""
