"""Expected errors, each with a user-presentable message and a CLI exit code.

Anything that is *not* a KnownError is a bug: the CLI prints a one-line error and exits 1,
the GUI shows the crash dialog.
"""

from __future__ import annotations


class KnownError(Exception):
    """An expected failure the user can act on (bad file, offline, locked keyring...)."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(KnownError):
    """The command was called wrongly (unknown id, missing option)."""

    exit_code = 2


class BadInputError(KnownError):
    """The user's data is unusable as given: missing path, corrupt file, changed files."""

    exit_code = 3


class NotFoundError(UsageError):
    """A catalogue id or other local reference does not exist."""


class IdentityError(KnownError):
    """No identity, locked keyring, wrong passphrase, corrupt key file."""

    exit_code = 3


class VerificationError(BadInputError):
    """A signature, envelope or manifest did not verify; message says precisely why."""


class RegistryUnavailable(KnownError):
    """The registry cannot be reached (offline, DNS, timeout, 5xx after retries)."""

    exit_code = 4


class RegistryRefused(KnownError):
    """The registry answered and said no (4xx other than auth/rate limits, or rejected)."""

    exit_code = 4


class Cancelled(KnownError):
    """The user cancelled a long-running operation."""

    exit_code = 1
