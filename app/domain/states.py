"""Contribution lifecycle: draft → signed → queued → uploading → submitted → accepted|rejected
(through pending-review when the datanet's owner reviews)."""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    DATASET = "dataset"
    ANNOTATION = "annotation"


class State(StrEnum):
    DRAFT = "draft"
    SIGNED = "signed"
    QUEUED = "queued"
    UPLOADING = "uploading"
    SUBMITTED = "submitted"
    PENDING_REVIEW = "pending-review"  # uploaded and verified; the datanet's owner decides
    ACCEPTED = "accepted"
    REJECTED = "rejected"


# A contribution may always be re-signed while still local, and a rejected one can be
# re-submitted after the user fixes it. Upload retries move uploading → queued.
ALLOWED: dict[State, frozenset[State]] = {
    State.DRAFT: frozenset({State.SIGNED, State.DRAFT}),
    State.SIGNED: frozenset({State.QUEUED, State.DRAFT, State.SIGNED}),
    State.QUEUED: frozenset({State.UPLOADING, State.SUBMITTED, State.DRAFT, State.REJECTED}),
    State.UPLOADING: frozenset({State.QUEUED, State.SUBMITTED, State.DRAFT, State.REJECTED}),
    State.SUBMITTED: frozenset({State.ACCEPTED, State.REJECTED, State.PENDING_REVIEW}),
    State.PENDING_REVIEW: frozenset({State.ACCEPTED, State.REJECTED}),
    State.ACCEPTED: frozenset(),
    State.REJECTED: frozenset({State.DRAFT, State.SIGNED}),
}


class InvalidTransition(ValueError):
    pass


def check_transition(old: State, new: State) -> None:
    """Raise InvalidTransition unless old → new is a legal lifecycle step."""
    if new not in ALLOWED[old]:
        raise InvalidTransition(f"a contribution cannot go from {old} to {new}")


class JobState(StrEnum):
    """An upload job's state (a row of the persistent upload queue)."""

    PENDING = "pending"
    UPLOADING = "uploading"
    DONE = "done"
    FAILED = "failed"
    PAUSED = "paused"
    CANCELLED = "cancelled"


class JobKind(StrEnum):
    """What an upload job asks of the registry."""

    CREATE = "create"  # create the contribution (submitted while offline)
    BLOB = "blob"  # upload one blob (sha256) through tus or a small-blob batch


class TaskKind(StrEnum):
    """One unit of work the upload scheduler hands to a worker thread."""

    CREATE = "create"
    BLOB = "blob"
    BATCH = "batch"
    FINALIZE = "finalize"
