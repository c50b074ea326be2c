"""Errors of the transparency-log core.

Everything here comes from data a log served (a checkpoint, a proof, a tile), so a failure is
the registry's: exit code 4, like the other registry errors. Callers that parse something the
user typed (a verifier key given with ``--log-key``) map :class:`MalformedError` to a usage
error themselves.
"""

from __future__ import annotations

from app.domain.errors import KnownError


class TlogError(KnownError):
    """The log's data is malformed or does not verify."""

    exit_code = 4


class MalformedError(TlogError):
    """A note, checkpoint, key, tile, bundle or proof is not in its format."""


class SignatureError(TlogError):
    """A signed note has no valid signature by the expected key, or a bad one by it."""


class ProofError(TlogError):
    """An inclusion or consistency proof does not verify: the log is not what it claims."""
