"""Fetch the events behind the user's ledger entries, verify them, check their evidence.

Run at the end of every rewards sync (app.services.rewards), once the ledger entries are
verified by the transparency log (only entries with a stored inclusion proof are read, when the
registry serves a log). For each entry, in ledger order, the events are read a page at a time
from GET /v1/me/rewards/{entry}/events, continuing after the last usage-log position stored, so
each sync goes on where the last one stopped; one sync reads at most `max_events` events or
for `max_seconds` seconds, so it stays fast, and all events arrive over successive syncs.

Every event is verified before anything of its page is stored:
- its digest is recomputed from its stored fields (event id, model id, time, fee and the stored
  attributions JSON, joined by NUL) and must be the digest the registry reports;
- the attribution of this entry (contribution and method) must be in that JSON with the
  reported weight; when the verified leaf names the entry's share, the event's amount must be
  the exact split of the fee; the `evidence` the registry reports must be the one in the JSON;
- once every event of an entry is read, sha256 of the sorted "<event digest> <amount>\\n"
  lines must be the usage digest of the entry's verified log leaf (the digest the registry
  reports for it, when it serves no log), with as many events as the leaf names and the
  amounts adding up to the entry's amount. Only then are the entry's events confirmed.
A mismatch is a verification failure like the log's (recorded with its evidence, exit 4):
nothing already stored is changed, and unconfirmed events stay unconfirmed.

Each event's evidence is checked against the contributor's own files (app.services.
evidence_check) when it is stored, and again whenever it is shown.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn

from sqlalchemy import func, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.domain.errors import RegistryUnavailable
from app.domain.rewards import PPM, split_integers
from app.registry_client.api import RegistryClient
from app.registry_client.http import UNREADABLE, ApiRefused
from app.services.context import ServiceContext
from app.services.evidence_check import Claim, LocalChecker, LocalFile, Status
from app.services.registry_identity import RegistryDirectory
from app.services.transparency import LogVerificationFailed
from app.store.evidence_models import EvidenceEvent, EvidenceFetch
from app.store.models import FileEntry, Item
from app.store.rewards_models import RewardRecord, in_scope
from app.store.tlog_models import LogFailure, LogProof

log = logging.getLogger(__name__)

MAX_EVENTS_PER_SYNC = 2000
MAX_SECONDS = 5.0
PAGE_LIMIT = 1000  # the registry's largest page
ENTRY_BATCH = 200
_HEX64 = re.compile(r"[0-9a-f]{64}")
ProgressFn = Callable[[str], None]


@dataclass
class EvidenceReport:
    events: int = 0  # events read in this sync
    entries_confirmed: int = 0  # entries whose events were all read and verified
    entries_left: int = 0  # entries not read to the end yet (continued next sync)
    unsupported: bool = False  # the registry does not report attributions with events
    statuses: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Anchor:
    """What an entry commits to: from its verified log leaf (or, without a log, as reported)."""

    digest: str | None
    events: int | None
    share_ppm: int | None
    verified: bool


@dataclass(frozen=True, slots=True)
class Event:
    sequence: int
    event_id: str
    model_id: str
    at: datetime
    fee_micro: int
    weight_ppm: int
    amount_micro: int
    digest: str
    attributions_json: str
    evidence: dict[str, Any] | None


def at_z(value: datetime) -> str:
    v = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_digest(event_id: str, model_id: str, at: datetime, fee: int, attributions: str) -> str:
    """sha256 over the event's stored fields joined by NUL (docs/protocol.md)."""
    data = "\x00".join((event_id, model_id, at_z(at), str(fee), attributions))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def entry_digest(pairs: list[tuple[str, int]]) -> str:
    """sha256 over the sorted "<event digest> <amount>\\n" lines of an entry's events."""
    h = hashlib.sha256()
    for digest, amount in sorted(pairs):
        h.update(f"{digest} {amount}\n".encode())
    return h.hexdigest()


class EvidenceFailed(LogVerificationFailed):
    """The events behind a verified ledger entry do not hold up (exit code 4)."""


def _bad(why: str) -> RegistryUnavailable:
    return RegistryUnavailable(UNREADABLE, hint=why)


def _int(body: dict[str, Any], key: str) -> int:
    v = body.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v > 2**63 - 1:
        raise _bad(f"event field {key!r} missing or not a count")
    return v


def _str(body: dict[str, Any], key: str, limit: int = 128) -> str:
    v = body.get(key)
    if not isinstance(v, str) or not 0 < len(v) <= limit:
        raise _bad(f"event field {key!r} missing or not a string")
    return v


def parse_event(item: Any) -> Event:
    """One event of an events page, typed (its content is verified separately)."""
    if not isinstance(item, dict):
        raise _bad("an event is not a JSON object")
    try:
        at = datetime.fromisoformat(_str(item, "at", 64))
    except ValueError:
        raise _bad("event field 'at' is not a time") from None
    if at.tzinfo is None:
        raise _bad("event field 'at' has no time zone")
    attrs = item.get("attributionsJson")
    if not isinstance(attrs, str) or len(attrs) > 1_000_000:
        raise _bad("event field 'attributionsJson' missing or too large")
    evidence = item.get("evidence")
    if evidence is not None and not isinstance(evidence, dict):
        raise _bad("event field 'evidence' is not an object")
    digest = item.get("digest")
    if not isinstance(digest, str):
        raise _bad("event field 'digest' missing")
    return Event(
        sequence=_int(item, "sequence"),
        event_id=_str(item, "eventId"),
        model_id=_str(item, "modelId", 64),
        at=at,
        fee_micro=_int(item, "feeMicro"),
        weight_ppm=_int(item, "weightPpm"),
        amount_micro=_int(item, "amountMicro"),
        digest=digest,
        attributions_json=attrs,
        evidence=evidence,
    )


def claim_of(evidence: dict[str, Any] | None) -> Claim | None:
    """The checkable part of a piece of evidence (None: nothing to check, operator-asserted)."""
    if not evidence:
        return None
    sha = evidence.get("fileSha256")
    if not isinstance(sha, str) or not _HEX64.fullmatch(sha):
        return None
    offset, length, span = (
        evidence.get("offset"),
        evidence.get("length"),
        evidence.get("spanSha256"),
    )
    ok = (
        isinstance(offset, int) and isinstance(length, int) and isinstance(span, str)
        and not isinstance(offset, bool) and not isinstance(length, bool)
    )  # fmt: skip
    if not ok:
        return Claim(sha)
    return Claim(sha, int(offset), int(length), str(span).lower())  # type: ignore[arg-type]


def event_problem(ev: Event, record: RewardRecord, share_ppm: int | None) -> str | None:
    """Why an event does not hold up for the entry `record` (None: it does)."""
    if ev.model_id != record.model_id:
        return f"event {ev.event_id} is for model {ev.model_id}, the entry for {record.model_id}"
    if event_digest(ev.event_id, ev.model_id, ev.at, ev.fee_micro, ev.attributions_json) != (
        ev.digest
    ):
        return f"event {ev.event_id}: its fields do not hash to the digest the registry reports"
    try:
        attrs = json.loads(ev.attributions_json)
    except ValueError:
        return f"event {ev.event_id}: its attributions are not JSON"
    if not isinstance(attrs, list) or not all(isinstance(a, list) and len(a) >= 3 for a in attrs):
        return f"event {ev.event_id}: its attributions are not a list of attributions"
    mine = [a for a in attrs if a[0] == record.contribution_id and a[2] == record.method]
    if not mine:
        return f"event {ev.event_id} does not attribute contribution {record.contribution_id}"
    index = attrs.index(mine[0])
    attribution = mine[0]
    if attribution[1] != ev.weight_ppm:
        return f"event {ev.event_id}: weight {ev.weight_ppm} reported, {attribution[1]} stored"
    stored = attribution[3] if len(attribution) > 3 else None
    if ev.evidence is not None and _given(ev.evidence) != _given(stored):
        return f"event {ev.event_id}: the evidence reported is not the evidence stored"
    if share_ppm is not None:
        weights = [a[1] if isinstance(a[1], int) else 0 for a in attrs]
        if sum(weights) > 0:
            amount = split_integers(ev.fee_micro * share_ppm // PPM, weights)[index]
            if amount != ev.amount_micro:
                return (
                    f"event {ev.event_id}: {ev.amount_micro} micro-units reported, "
                    f"the split of its fee gives {amount}"
                )
    return None


def _given(evidence: Any) -> Any:
    """Evidence without its null fields (the registry reports fields not given as null)."""
    if not isinstance(evidence, dict):
        return evidence
    return {k: v for k, v in evidence.items() if v is not None}


def stored_evidence(attributions_json: str, contribution_id: str, method: str) -> Any:
    """The evidence of this contribution's attribution in a stored attributions JSON."""
    for a in json.loads(attributions_json):
        if a[0] == contribution_id and a[2] == method:
            return a[3] if len(a) > 3 else None
    return None


def anchor_of(leaf: bytes | None, reported: dict[str, Any]) -> Anchor:
    if leaf is not None:
        obj = json.loads(leaf)
        return Anchor(obj.get("usageDigest"), obj.get("events"), obj.get("sharePpm"), True)
    digest, events = reported.get("digest"), reported.get("events")
    return Anchor(
        digest if isinstance(digest, str) else None,
        events if isinstance(events, int) else None,
        None,
        False,
    )


def open_entries(
    columns: Any,
    registry_key: str,
    owner: str,
    *,
    verified_only: bool = False,
    contribution_id: str | None = None,
) -> Any:
    """SELECT `columns` over the stored entries of one registry and identity (of one
    contribution if given) whose events are not all read and verified yet, joined to their
    verified log leaf (`LogProof`, None if none) and their read state (`EvidenceFetch`);
    `verified_only`: only entries the log verified."""
    q = (
        select(*columns)
        .select_from(RewardRecord)
        .outerjoin(
            LogProof,
            (LogProof.scope == RewardRecord.scope) & (LogProof.cursor == RewardRecord.cursor),
        )
        .outerjoin(
            EvidenceFetch,
            (EvidenceFetch.registry_key == registry_key)
            & (EvidenceFetch.owner == owner)
            & (EvidenceFetch.cursor == RewardRecord.cursor),
        )
        .where(
            in_scope(RewardRecord.scope, registry_key, owner),
            EvidenceFetch.complete.is_not(True),
        )
    )
    if contribution_id is not None:
        q = q.where(RewardRecord.contribution_id == contribution_id)
    return q.where(LogProof.cursor.is_not(None)) if verified_only else q


def local_checker(ctx: ServiceContext, s: Session, registry_key: str, cid: str) -> LocalChecker:
    """The catalogued files of contribution `cid` of this registry, as submitted."""
    items = RegistryDirectory(ctx).item_ids(s, registry_key, {cid})
    if cid not in items:
        return LocalChecker({}, known=False)
    item = s.get(Item, items[cid][0])
    assert item is not None
    rows = s.execute(
        select(FileEntry.path, FileEntry.size, FileEntry.sha256, FileEntry.mtime_ns).where(
            FileEntry.item_id == item.id
        )
    ).all()
    return LocalChecker.of(
        LocalFile(os.path.join(item.source_path, p), size, sha, mtime)
        for p, size, sha, mtime in rows
    )


class EvidenceSync:
    """One sync's share of reading and verifying the events behind the user's entries."""

    def __init__(
        self,
        ctx: ServiceContext,
        client: RegistryClient,
        registry_key: str,
        owner: str,
        *,
        has_log: bool,
        max_events: int = MAX_EVENTS_PER_SYNC,
        max_seconds: float = MAX_SECONDS,
    ) -> None:
        self.ctx = ctx
        self.client = client
        self.registry_key = registry_key
        self.owner = owner
        self.has_log = has_log
        self.max_events = max_events
        self.max_seconds = max_seconds
        self._checkers: dict[str, LocalChecker] = {}

    def run(self, progress: ProgressFn | None = None) -> EvidenceReport:
        say = progress or (lambda _m: None)
        report = EvidenceReport()
        deadline = time.monotonic() + self.max_seconds
        try:
            for record, leaf, after in self._open_entries():
                if report.events >= self.max_events or time.monotonic() >= deadline:
                    break
                done = self._read_entry(record, leaf, after, report, deadline)
                if not done and report.unsupported:
                    break
                if report.events:
                    say(f"Evidence: {report.events:,} events checked")
        finally:
            for c in self._checkers.values():
                c.close()
        if not report.unsupported:
            report.entries_left = self._count_open()
        return report

    def _open(self, columns: Any) -> Any:
        """Entries of this registry and identity whose events are not all read and verified
        (with a log: only those the log verified), in ledger order."""
        return open_entries(columns, self.registry_key, self.owner, verified_only=self.has_log)

    def _open_entries(self) -> list[tuple[RewardRecord, bytes | None, int | None]]:
        """As many open entries as one sync can read (each has at least one event), with
        their verified leaf and the usage-log position their events were read up to."""
        with self.ctx.db.session() as s:
            q = self._open((RewardRecord, LogProof.leaf, EvidenceFetch.after_seq))
            q = q.order_by(RewardRecord.id).limit(self.max_events + 1)
            rows: list[tuple[RewardRecord, bytes | None, int | None]] = [
                (r, leaf, after) for r, leaf, after in s.execute(q).all()
            ]
            s.expunge_all()
        return rows

    def _count_open(self) -> int:
        with self.ctx.db.session() as s:
            return int(s.scalar(self._open((func.count(),))) or 0)

    def _fetch_state(self, s: Session, cursor: str) -> EvidenceFetch | None:
        return s.get(EvidenceFetch, (self.registry_key, self.owner, cursor))

    def _read_entry(
        self,
        record: RewardRecord,
        leaf: bytes | None,
        after: int | None,
        report: EvidenceReport,
        deadline: float,
    ) -> bool:
        """Read the entry's events after usage-log position `after` (where the last sync
        stopped); True once the entry is complete."""
        while report.events < self.max_events and time.monotonic() < deadline:
            params: dict[str, Any] = {"limit": min(PAGE_LIMIT, self.max_events - report.events)}
            if after is not None:
                params["after"] = str(after)
            try:
                body = self.client.http.json(
                    "GET", f"/v1/me/rewards/{record.cursor}/events", params=params
                )
            except ApiRefused as exc:
                log.info("events of entry %s not served: %s", record.cursor, exc)
                report.unsupported = True
                return False
            items = body.get("items")
            if not isinstance(items, list):
                raise _bad("the events page has no list of items")
            if items and isinstance(items[0], dict) and "attributionsJson" not in items[0]:
                report.unsupported = True  # a registry that does not serve attributions
                return False
            reported = body.get("entry")
            if not isinstance(reported, dict):
                raise _bad("the events page does not name its entry")
            self._check_entry(record, reported)
            anchor = anchor_of(leaf, reported)
            events = [parse_event(i) for i in items]
            for ev in events:
                if after is not None and ev.sequence <= after:
                    raise _bad("the events page goes backwards")
                why = event_problem(ev, record, anchor.share_ppm)
                if why is not None:
                    self._fail(record, why, {"event": ev.event_id, "page": body})
                after = ev.sequence
            more = bool(body.get("hasMore"))
            if more and not events:
                raise _bad("the events page is empty but says there is more")
            self._store(record, events, params.get("after"), after, report,
                        None if more else anchor)  # fmt: skip
            report.events += len(events)
            if not more:
                report.entries_confirmed += 1
                return True
        return False

    def _check_entry(self, record: RewardRecord, reported: dict[str, Any]) -> None:
        want = {
            "cursor": record.cursor,
            "contributionId": record.contribution_id,
            "modelId": record.model_id,
            "method": record.method,
            "amountMicro": record.amount_micro,
        }
        for k, v in want.items():
            if reported.get(k) != v:
                self._fail(
                    record,
                    f"the registry's events list says {k} = {reported.get(k)!r} for entry "
                    f"{record.cursor}, its ledger says {v!r}",
                    {"entry": reported},
                )

    def _checker(self, s: Session, cid: str) -> LocalChecker:
        c = self._checkers.get(cid)
        if c is None:
            c = self._checkers[cid] = local_checker(self.ctx, s, self.registry_key, cid)
        return c

    def _store(
        self,
        record: RewardRecord,
        events: list[Event],
        before: str | None,
        after: int | None,
        report: EvidenceReport,
        complete: Anchor | None,
    ) -> None:
        """The page's events and the position after them, in one transaction. `complete`: the
        page is the entry's last; all its events (those stored before and these) are checked
        against what the entry commits to first, and confirmed with it, or nothing is stored."""
        now = datetime.now(UTC)
        mine = (
            (EvidenceEvent.registry_key == self.registry_key)
            & (EvidenceEvent.owner == self.owner)
            & (EvidenceEvent.cursor == record.cursor)
        )
        with self.ctx.db.session() as s:
            row = self._fetch_state(s, record.cursor)
            if (None if row is None or row.after_seq is None else str(row.after_seq)) != before:
                return  # another sync stored this page first
            if complete is not None:
                earlier = [] if row is None else [(d, int(a)) for d, a in s.execute(
                    select(EvidenceEvent.digest, EvidenceEvent.amount_micro).where(mine)
                ).all()]  # fmt: skip
                why = self._entry_problem(
                    record, complete, earlier + [(e.digest, e.amount_micro) for e in events]
                )
                if why is not None:
                    s.rollback()
                    self._fail(record, *why)
            checker = self._checker(s, record.contribution_id)
            values = []
            for ev in events:
                stored = stored_evidence(
                    ev.attributions_json, record.contribution_id, record.method
                )
                claim = claim_of(stored if isinstance(stored, dict) else None)
                status = checker.check(claim)
                report.statuses[status.value] = report.statuses.get(status.value, 0) + 1
                values.append(
                    {
                        "registry_key": self.registry_key, "owner": self.owner,
                        "cursor": record.cursor, "sequence": ev.sequence,
                        "contribution_id": record.contribution_id, "event_id": ev.event_id,
                        "model_id": ev.model_id, "method": record.method, "at": ev.at,
                        "fee_micro": ev.fee_micro, "weight_ppm": ev.weight_ppm,
                        "amount_micro": ev.amount_micro, "digest": ev.digest,
                        "attributions_json": ev.attributions_json,
                        "file_sha256": claim.file_sha256 if claim else None,
                        "offset": claim.offset if claim else None,
                        "length": claim.length if claim else None,
                        "span_sha256": claim.span_sha256 if claim else None,
                        "excerpt": _excerpt(stored), "confirmed": complete is not None,
                        "status": status.value, "checked_at": now,
                    }
                )  # fmt: skip
            if values:
                s.execute(sqlite_insert(EvidenceEvent).on_conflict_do_nothing(), values)
            if row is None:
                row = EvidenceFetch(
                    registry_key=self.registry_key, owner=self.owner, cursor=record.cursor,
                    fetched=0, complete=False,
                )  # fmt: skip
                s.add(row)
            elif complete is not None and row.fetched:
                s.execute(update(EvidenceEvent).where(mine).values(confirmed=True))
            row.after_seq = after
            row.fetched = (row.fetched or 0) + len(events)
            row.complete = complete is not None
            row.updated_at = now
            s.commit()

    @staticmethod
    def _entry_problem(
        record: RewardRecord, anchor: Anchor, pairs: list[tuple[str, int]]
    ) -> tuple[str, dict[str, Any]] | None:
        """Why all the events of an entry are not what it commits to (None: they are)."""
        total = sum(a for _d, a in pairs)
        digest = entry_digest(pairs)
        evidence = {"entry": record.cursor, "events": len(pairs), "amountMicro": total,
                    "digest": digest, "committed": anchor.digest}  # fmt: skip
        if anchor.events is not None and anchor.events != len(pairs):
            return (f"entry {record.cursor} commits to {anchor.events} events, the registry "
                    f"lists {len(pairs)}", evidence)  # fmt: skip
        if total != record.amount_micro:
            return (f"the events of entry {record.cursor} add up to {total} micro-units, the "
                    f"entry says {record.amount_micro}", evidence)  # fmt: skip
        if anchor.digest is not None and anchor.digest != digest:
            return (f"the events of entry {record.cursor} do not hash to the digest the entry "
                    "commits to", evidence)  # fmt: skip
        return None

    def _fail(self, record: RewardRecord, message: str, evidence: dict[str, Any]) -> NoReturn:
        """Record the failure with its evidence (a new row; nothing else changes) and raise."""
        with self.ctx.db.session() as s:
            s.add(
                LogFailure(
                    registry_key=self.registry_key,
                    at=datetime.now(UTC),
                    what="evidence",
                    message=message,
                    evidence=json.dumps({"entryId": record.cursor, **evidence}, default=str),
                )
            )
            s.commit()
        raise EvidenceFailed(
            f"attribution evidence check failed: {message}",
            hint="nothing stored was changed; run contributor-desk audit --export FILE "
            "to keep the evidence",
        )


def _excerpt(evidence: Any) -> str | None:
    text = evidence.get("excerpt") if isinstance(evidence, dict) else None
    return text[:2000] if isinstance(text, str) else None


def counts(ctx: ServiceContext, registry_key: str, owner: str) -> dict[str, int]:
    """Confirmed events per status, for one registry key and identity."""
    with ctx.db.session() as s:
        return {
            str(st): int(n)
            for st, n in s.execute(
                select(EvidenceEvent.status, func.count())
                .where(
                    EvidenceEvent.registry_key == registry_key,
                    EvidenceEvent.owner == owner,
                    EvidenceEvent.confirmed.is_(True),
                )
                .group_by(EvidenceEvent.status)
            ).all()
        }


__all__ = ["EvidenceFailed", "EvidenceReport", "EvidenceSync", "Status", "counts"]
