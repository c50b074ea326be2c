"""Log keys: the key a registry names in GET /v1/health, pinned per origin on first contact
(or out of band with `contributor-desk log-key --set VKEY`) and checked every time after."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from app.domain.errors import UsageError
from app.services.context import ServiceContext
from app.services.transparency.failures import record_failure
from app.store.tlog_models import LogPin
from app.tlog import MalformedError, Verifier


def key_fingerprint(v: Verifier) -> str:
    """A short fingerprint of a log key to compare by eye: SHA-256 of the key, 16 bytes."""
    digest = hashlib.sha256(bytes([0x01]) + v.public_key).hexdigest()[:32]
    return " ".join(digest[i : i + 4] for i in range(0, 32, 4))


def vkey_fingerprint(vkey: str) -> str:
    """key_fingerprint of a log key given in the signed-note verifier-key format."""
    return key_fingerprint(Verifier.from_vkey(vkey))


def parse_log_identity(body: dict[str, Any]) -> Verifier | None:
    """The log key a health answer names (None if it names no log); malformed → TlogError."""
    vkey, origin = body.get("logKey"), body.get("logOrigin")
    if vkey is None and origin is None:
        return None
    if not isinstance(vkey, str) or not isinstance(origin, str):
        raise MalformedError("the registry's logKey / logOrigin are not strings")
    v = Verifier.from_vkey(vkey)
    if v.name != origin:
        raise MalformedError(f"the log key is named {v.name[:100]!r}, the log {origin[:100]!r}")
    return v


def pinned(ctx: ServiceContext, origin: str) -> LogPin | None:
    with ctx.db.session() as s:
        pin = s.get(LogPin, origin)
        if pin is not None:
            s.expunge(pin)
        return pin


def all_pins(ctx: ServiceContext) -> list[LogPin]:
    with ctx.db.session() as s:
        pins = list(s.scalars(select(LogPin).order_by(LogPin.origin)))
        for p in pins:
            s.expunge(p)
        return pins


def pin_key(ctx: ServiceContext, vkey: str, source: str = "user") -> Verifier:
    """Pin `vkey` (signed-note verifier key) for its origin, replacing any pin of it."""
    try:
        v = Verifier.from_vkey(vkey.strip())
    except MalformedError as exc:
        raise UsageError(
            f"not a log key: {exc}", hint="give the key as name+hash+key (GET /v1/health logKey)"
        ) from None
    with ctx.db.session() as s:
        pin = s.get(LogPin, v.name)
        if pin is None:
            s.add(LogPin(origin=v.name, vkey=v.vkey, source=source, pinned_at=datetime.now(UTC)))
        else:
            pin.vkey, pin.source, pin.pinned_at = v.vkey, source, datetime.now(UTC)
        s.commit()
    return v


def check_pin(ctx: ServiceContext, body: dict[str, Any]) -> Verifier | None:
    """The log key the registry names, checked against the pin for its origin (pinned now if
    this is the first contact). A different key is a verification failure."""
    served = parse_log_identity(body)
    if served is None:
        return None
    pin = pinned(ctx, served.name)
    if pin is None:
        pin_key(ctx, served.vkey, source="first-contact")
        return served
    if pin.vkey != served.vkey:
        trusted = Verifier.from_vkey(pin.vkey)
        record_failure(
            ctx,
            pin.vkey,
            "key",
            f"the registry's log key changed: pinned {key_fingerprint(trusted)}, it now names "
            f"{key_fingerprint(served)}",
            {"pinnedKey": pin.vkey, "servedKey": served.vkey},
            hint="if the registry announced a key rotation, pin the new key after checking it "
            "out of band: contributor-desk log-key --set NEW_KEY",
        )
    return served
