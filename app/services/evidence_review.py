"""What the catalogue holds about the evidence behind one contribution's rewards, re-checked
against the local files as it is shown (no network). The GUI's Evidence view and
`contributor-desk evidence ID` both read it here, so they show the same statuses.

Only confirmed events are listed (every event of their ledger entry was read and the entry's
digest held); events of entries still being read are counted as pending. A status that changed
since it was stored (the file was edited, moved back, ...) is stored again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update

from app.domain.errors import NotFoundError, UsageError
from app.services.context import ServiceContext
from app.services.evidence import (
    anchor_of,
    entry_digest,
    event_digest,
    local_checker,
    open_entries,
)
from app.services.evidence_check import Claim, Status, label, span_text
from app.services.rewards import RewardsReview, open_review
from app.store.evidence_models import EvidenceEvent, EvidenceFetch
from app.store.models import Item
from app.store.rewards_models import KnownModel, LedgerScope, RewardRecord
from app.store.tlog_models import LogProof

LINE_BLOCK = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class EvidenceRow:
    entry: str
    sequence: int
    event_id: str
    model_id: str
    model_name: str
    at: datetime
    method: str
    amount_micro: int
    status: Status
    file_sha256: str | None
    offset: int | None
    length: int | None
    local_path: str | None  # the local file checked (None: none found unchanged)
    line: int | None  # 1-based line of the span in a text file
    span: str | None  # the span's text from the local file (text files)
    span_truncated: bool
    excerpt: str | None  # the model output the operator quoted, if any
    file_path: str | None = None  # where the catalogued file is (changed or not)
    before: str = ""  # the rest of the span's first line before it (text files)
    after: str = ""  # the rest of its last line after it

    @property
    def status_label(self) -> str:
        return label(self.status)

    def to_json(self) -> dict[str, Any]:
        return {
            "entry": self.entry,
            "sequence": self.sequence,
            "eventId": self.event_id,
            "modelId": self.model_id,
            "model": self.model_name,
            "at": self.at.isoformat(),
            "method": self.method,
            "amountMicro": self.amount_micro,
            "status": self.status.value,
            "statusText": self.status_label,
            "fileSha256": self.file_sha256,
            "offset": self.offset,
            "length": self.length,
            "localPath": self.local_path,
            "filePath": self.file_path,
            "line": self.line,
            "span": self.span,
            "spanTruncated": self.span_truncated,
            "lineBefore": self.before,
            "lineAfter": self.after,
            "excerpt": self.excerpt,
        }


@dataclass
class EvidenceListing:
    item_id: int | None
    contribution_id: str
    title: str
    registry: str
    rows: list[EvidenceRow] = field(default_factory=list)
    pending_events: int = 0  # read, but their entry not complete yet
    entries_left: int = 0  # ledger entries whose events are not all read and verified yet
    counts: dict[Status, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "itemId": self.item_id,
            "contributionId": self.contribution_id,
            "title": self.title,
            "registry": self.registry,
            "counts": {s.value: n for s, n in self.counts.items()},
            "pendingEvents": self.pending_events,
            "entriesNotYetRead": self.entries_left,
            "events": [r.to_json() for r in self.rows],
        }


_SHOWN = (
    "cursor", "sequence", "event_id", "model_id", "at", "method", "amount_micro",
    "file_sha256", "offset", "length", "span_sha256", "excerpt", "status",
)  # fmt: skip


def line_numbers(path: str, offsets: Iterable[int]) -> dict[int, int]:
    """The 1-based line of each byte offset of a file, in one streaming pass up to the last
    offset (newlines counted in C, a block at a time); empty when the file cannot be read."""
    out: dict[int, int] = {}
    line = 1
    pos = 0
    try:
        with open(path, "rb") as fh:
            for off in sorted(set(offsets)):
                while pos < off:
                    block = fh.read(min(LINE_BLOCK, off - pos))
                    if not block:
                        return out
                    line += block.count(b"\n")
                    pos += len(block)
                out[off] = line
    except OSError:
        return {}
    return out


def resolve(review: RewardsReview, ref: str) -> tuple[int | None, str, str]:
    """(catalogue id, contribution id, title) for a catalogue id, a registry id or a unique
    prefix of one, among this registry's contributions."""
    ctx = review.ctx
    if ref.isdigit():
        cid = review.contribution_of(int(ref))
        with ctx.db.session() as s:
            item = s.get(Item, int(ref))
            return int(ref), cid, item.title if item is not None else cid
    with ctx.db.session() as s:
        ours = review.contributions(s)
        items = review.directory.item_ids(s, review.registry, ours)
    known = ours | set(items)
    matches = sorted(c for c in known if c == ref) or sorted(c for c in known if c.startswith(ref))
    if not matches:
        raise NotFoundError(f"no contribution {ref!r} at {review.shown_as}")
    if len(matches) > 1:
        raise UsageError(
            f"{ref!r} names {len(matches)} contributions ({', '.join(matches[:5])})",
            hint="give more of the id, or the catalogue id",
        )
    cid = matches[0]
    item_id, title = items.get(cid, (None, cid))
    return item_id, cid, title


def contribution_evidence(
    ctx: ServiceContext, owner: str, ref: str, *, demo: bool = False, url: str | None = None
) -> EvidenceListing:
    review = open_review(ctx, owner, url=url, demo=demo)
    item_id, cid, title = resolve(review, ref)
    return listing(ctx, review.registry, owner, cid, item_id=item_id, title=title,
                   shown_as=review.shown_as)  # fmt: skip


def listing(
    ctx: ServiceContext,
    registry_key: str,
    owner: str,
    cid: str,
    *,
    item_id: int | None = None,
    title: str = "",
    shown_as: str = "",
) -> EvidenceListing:
    out = EvidenceListing(item_id, cid, title or cid, shown_as or registry_key)
    out.entries_left = entries_without_events(ctx, registry_key, owner, cid)
    mine = (
        (EvidenceEvent.registry_key == registry_key)
        & (EvidenceEvent.owner == owner)
        & (EvidenceEvent.contribution_id == cid)
    )
    wanted: dict[str, set[int]] = {}  # the lines to number, per local file
    changed: dict[str, list[tuple[str, int]]] = {}
    with ctx.db.session() as s:
        names = dict(
            s.execute(
                select(KnownModel.id, KnownModel.name).where(
                    KnownModel.registry_key == registry_key
                )
            ).all()
        )
        out.pending_events = int(
            s.scalar(select(func.count()).where(mine, EvidenceEvent.confirmed.is_(False))) or 0
        )
        events = s.execute(  # rows, not ORM objects: a contribution can have 100,000s
            select(*(getattr(EvidenceEvent, c) for c in _SHOWN))
            .where(mine, EvidenceEvent.confirmed.is_(True))
            .order_by(EvidenceEvent.at, EvidenceEvent.sequence)
        ).all()
        with local_checker(ctx, s, registry_key, cid) as checker:
            for e in events:
                claim = None if e.file_sha256 is None else Claim(
                    e.file_sha256, e.offset, e.length, e.span_sha256
                )  # fmt: skip
                status = checker.check(claim)
                if status.value != e.status:
                    changed.setdefault(status.value, []).append((e.cursor, e.sequence))
                path = checker.local_path(claim) if claim is not None else None
                known = checker.files.get(claim.file_sha256) if claim is not None else None
                text = line = None
                if path is not None and claim is not None and claim.has_span:
                    text = span_text(path, int(claim.offset or 0), int(claim.length or 0))
                    if text is not None:
                        wanted.setdefault(path, set()).add(int(claim.offset or 0))
                out.counts[status] = out.counts.get(status, 0) + 1
                out.rows.append(
                    EvidenceRow(
                        entry=e.cursor, sequence=e.sequence, event_id=e.event_id,
                        model_id=e.model_id, model_name=names.get(e.model_id) or e.model_id,
                        at=e.at if e.at.tzinfo else e.at.replace(tzinfo=UTC), method=e.method,
                        amount_micro=e.amount_micro, status=status,
                        file_sha256=e.file_sha256, offset=e.offset, length=e.length,
                        local_path=path, line=line, span=text.text if text else None,
                        span_truncated=bool(text and text.truncated), excerpt=e.excerpt,
                        before=text.before if text else "", after=text.after if text else "",
                        file_path=known[0].path if known else None,
                    )
                )  # fmt: skip
        lines = {path: line_numbers(path, offs) for path, offs in wanted.items()}
        out.rows = [
            replace(r, line=lines[r.local_path].get(r.offset or 0))
            if r.local_path in lines and r.span is not None
            else r
            for r in out.rows
        ]
        if changed:
            now = datetime.now(UTC)
            for status_value, keys in changed.items():
                for cursor, seq in keys:
                    s.execute(
                        update(EvidenceEvent)
                        .where(mine, EvidenceEvent.cursor == cursor, EvidenceEvent.sequence == seq)
                        .values(status=status_value, checked_at=now)
                    )
            s.commit()
    return out


def entries_without_events(ctx: ServiceContext, registry_key: str, owner: str, cid: str) -> int:
    """Ledger entries of the contribution whose events have not been read yet."""
    with ctx.db.session() as s:
        q = open_entries((func.count(),), registry_key, owner, contribution_id=cid)
        return int(s.scalar(q) or 0)


@dataclass
class EvidenceAudit:
    entries: int = 0
    events: int = 0
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"entries": self.entries, "events": self.events, "problems": self.problems}


def audit_evidence(ctx: ServiceContext) -> EvidenceAudit:
    """Re-verify every stored, confirmed event offline: its digest from its stored fields, and
    each complete entry's digest from its events against the usage digest of its verified log
    leaf (when there is one), with the events' amounts adding up to the entry's."""
    out = EvidenceAudit()
    with ctx.db.session() as s:
        complete = s.execute(
            select(RewardRecord, LedgerScope.registry_key, LedgerScope.owner, LogProof.leaf)
            .join(LedgerScope, LedgerScope.id == RewardRecord.scope)
            .join(
                EvidenceFetch,
                (EvidenceFetch.registry_key == LedgerScope.registry_key)
                & (EvidenceFetch.owner == LedgerScope.owner)
                & (EvidenceFetch.cursor == RewardRecord.cursor),
            )
            .outerjoin(
                LogProof,
                (LogProof.scope == RewardRecord.scope) & (LogProof.cursor == RewardRecord.cursor),
            )
            .where(EvidenceFetch.complete.is_(True))
        ).all()
        for record, registry_key, owner, leaf in complete:
            rows = s.execute(
                select(
                    EvidenceEvent.event_id, EvidenceEvent.model_id, EvidenceEvent.at,
                    EvidenceEvent.fee_micro, EvidenceEvent.attributions_json,
                    EvidenceEvent.digest, EvidenceEvent.amount_micro,
                ).where(
                    EvidenceEvent.registry_key == registry_key,
                    EvidenceEvent.owner == owner,
                    EvidenceEvent.cursor == record.cursor,
                )
            ).all()  # fmt: skip
            out.entries += 1
            out.events += len(rows)
            for eid, model, at, fee, attrs, digest, _amount in rows:
                if event_digest(eid, model, at, fee, attrs) != digest:
                    out.problems.append(f"entry {record.cursor}: event {eid} does not hash to "
                                        "its stored digest")  # fmt: skip
            pairs = [(d, int(a)) for *_f, d, a in rows]
            if sum(a for _d, a in pairs) != record.amount_micro:
                out.problems.append(f"entry {record.cursor}: its events do not add up to its "
                                    "amount")  # fmt: skip
            committed = anchor_of(leaf, {}).digest if leaf is not None else None
            if committed is not None and entry_digest(pairs) != committed:
                out.problems.append(f"entry {record.cursor}: its events do not hash to the "
                                    "digest its log leaf commits to")  # fmt: skip
    return out
