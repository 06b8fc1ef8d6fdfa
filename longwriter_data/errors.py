"""Errors a user can act on: the CLI prints them as one line and exits with status 2."""


class UserError(Exception):
    """Bad input (config, pool, run directory): the message says what is wrong, where, and what to do."""

    exit_code = 2


class FatalBackendError(Exception):
    """The backend refuses every request (for example a bad API key): the whole run stops at once."""


class DiskFull(UserError):
    """The disk filled up while writing output: nothing half-written is kept. Status 1, not 2: the input was fine,
    and the same command works once there is space."""

    exit_code = 1
