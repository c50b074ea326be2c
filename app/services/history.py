"""Lifecycle transitions: every state change is checked and recorded as a history row."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.domain.states import State, check_transition
from app.store.models import HistoryEntry, Item, utcnow


def transition(session: Session, item: Item, to_state: State, event: str, detail: str = "") -> None:
    """Move `item` to `to_state` inside the caller's transaction, with a history row."""
    current = State(item.state)
    check_transition(current, to_state)
    item.state = to_state.value
    item.updated_at = utcnow()
    session.add(
        HistoryEntry(
            item_id=item.id,
            from_state=current.value,
            to_state=to_state.value,
            event=event,
            detail=detail,
        )
    )


def record_event(session: Session, item: Item, event: str, detail: str = "") -> None:
    """A notable event that does not change the state (export, verify, sync...)."""
    session.add(
        HistoryEntry(
            item_id=item.id,
            from_state=item.state,
            to_state=item.state,
            event=event,
            detail=detail,
        )
    )
