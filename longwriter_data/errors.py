"""Errors a user can act on: the CLI prints them as one line and exits with status 2."""


class UserError(Exception):
    """Bad input (config, pool, run directory): the message says what is wrong, where, and what to do."""

    exit_code = 2


class FatalBackendError(Exception):
    """The backend refuses every request (a bad API key, a wrong URL or model): the whole run stops at once, and
    the CLI prints the message as one line. Exit status 2 for a setting to fix, 1 for an outage to wait out."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


class DiskFull(UserError):
    """The disk filled up while writing output: nothing half-written is kept. Status 1, not 2: the input was fine,
    and the same command works once there is space."""

    exit_code = 1
