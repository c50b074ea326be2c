"""Usage and rewards: sync them from the registry into the catalogue, review them offline.

Sync (`RewardsSync.run`) is incremental and interruptible:
- ledger entries are read after the stored cursor, a page at a time; each page and the cursor
  that follows it are written in one transaction, so a crash or a dropped connection keeps
  every page already stored and the next sync continues after it, never storing one twice;
- the day buckets of each accepted contribution that can have changed (app.services.usage_plan)
  are fetched for the last 90 days, or from the last day fetched when that is older, or from
  the earliest day of its new entries (at most the registry's 731-day range), and replace the
  local days of that window in one transaction; older days stay, so history the registry no
  longer shows by default is kept;
- model names are refreshed (charts label models by name; demo models are marked).

Everything is stored under the registry's key (app.services.registry_identity): the identity
the registry names itself by, learned at the start of each sync, never the URL it was reached
at. Answers are checked against what was asked before anything is written: a usage window for
another contribution or another range is refused whole.

Review (`RewardsReview`) reads only the catalogue: totals, per contribution, per model, per
method and per day, for one registry key and identity, so the whole history is there offline.
`open_review` picks the key for a URL (or the demo registry) the same way for the GUI and the
CLI, so both show the same numbers. Money is integer micro-units throughout.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.domain.errors import NotFoundError, RegistryUnavailable, UsageError
from app.durable import gc_paused
from app.registry_client.api import MAX_PAGES, RegistryClient, too_many_pages
from app.registry_client.http import UNREADABLE, ApiRefused
from app.registry_client.usage import (
    USAGE_WINDOWS_READ,
    RewardsPage,
    UsageWindow,
    all_models,
    rewards_after,
    usage_window,
    usage_windows,
)
from app.services.context import ServiceContext
from app.services.evidence import (
    MAX_EVENTS_PER_SYNC,
    MAX_SECONDS,
    EvidenceReport,
    EvidenceSync,
)
from app.services.ledger_ahead import PagesAhead, is_last
from app.services.registry_identity import RegistryDirectory
from app.services.rewards_checks import (
    MAX_STORED_INT,
    check_ledger_total,
    check_page,
    check_window,
)
from app.services.transparency import LogSync
from app.services.transparency.leaves import at_stored_text
from app.services.transparency.sync import LeavesAhead, ProvenLeaf, read_ahead, write_behind
from app.services.usage_plan import load_plan, store_mark
from app.store import json_rows, rollups
from app.store.models import Item
from app.store.rewards_models import (
    STREAM_REWARDS,
    URL_KEY_PREFIX,
    KnownModel,
    SyncCursor,
    UsageDay,
    ensure_scope,
    url_key,
)
from app.store.rollups import LedgerRollupTotal, UsageRollupDay, ledger_contributions

FIRST_WINDOW_DAYS = 90  # what the registry shows by default
MAX_WINDOW_DAYS = 731  # the registry's largest range per request
USAGE_WORKERS = 3  # usage windows read at once while earlier ones are checked and stored
USAGE_AHEAD = 6  # windows read ahead at most (answers held in memory)
# From registries that serve several windows in one read: windows per read, reads ahead at most.
USAGE_READ_BATCH = 25
USAGE_BATCHES_AHEAD = 3
# Answers to the many-window read that say the route is not served: read one window a request.
# (404 is also its answer when a contribution asked is not the caller's: the single reads
# then name that contribution in the same refusal.)
NOT_SERVED = frozenset({404, 405})
USAGE_STORE_BATCH = 50  # checked windows stored per transaction
PROVEN_CHUNK = 10_000  # verified inclusions stored per transaction after the ledger pages
ProgressFn = Callable[[str], None]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncReport:
    new_entries: int
    new_reward_micro: int
    contributions: int
    models: int
    cursor: str | None


def current_owner(ctx: ServiceContext) -> str | None:
    """The fingerprint whose rewards are synced and shown: the active identity's (None
    without one: rewards belong to a key)."""
    from app.services.identity import IdentityService

    info = IdentityService(ctx).current()
    return info.fingerprint if info is not None else None


# The registry's count of events received but not settled, at the last sync (a cursor row).
STREAM_UNSETTLED = "unsettled"


def _count_of(row: SyncCursor | None) -> int | None:
    text = row.cursor if row is not None else None
    return int(text) if text is not None and text.isdigit() else None


def _usage_reads(sinces: Sequence[tuple[str, date]], most: int) -> Iterator[list[tuple[str, date]]]:
    """The windows to read, in order, grouped into reads: runs of up to `most` contributions
    with the same first day."""
    batch: list[tuple[str, date]] = []
    for cid, since in sinces:
        if batch and (len(batch) >= most or batch[0][1] != since):
            yield batch
            batch = []
        batch.append((cid, since))
    if batch:
        yield batch


def _usage_stream(contribution_id: str) -> str:
    return f"usage:{contribution_id}"


# A page of ledger entries in one statement (app.store.json_rows), or one executemany when an
# event id holds a NUL; an entry the copy has already stays as stored.
_ENTRY_COLUMNS = (
    "scope", "cursor", "event_id", "contribution_id", "model_id", "method", "amount_micro", "at",
    "demo",
)  # fmt: skip
_ON_ENTRY = "ON CONFLICT (scope, cursor) DO NOTHING"
_INSERT_ENTRIES_JSON = json_rows.insert_json("reward_entries", _ENTRY_COLUMNS, 1, _ON_ENTRY)
_INSERT_ENTRIES = (
    f"INSERT INTO reward_entries ({', '.join(_ENTRY_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_ENTRY_COLUMNS))}) {_ON_ENTRY}"
)


class RewardsSync:
    """One sync of usage and rewards for `owner` (a key fingerprint) at `client`'s registry.

    `demo`: the registry is the embedded demo registry (`contributor-desk --demo rewards`
    then finds it again whatever port it was started on)."""

    def __init__(
        self, ctx: ServiceContext, client: RegistryClient, owner: str, *, demo: bool = False
    ) -> None:
        self._ctx = ctx
        self.client = client
        self.directory = RegistryDirectory(ctx)
        self.registry = ""  # the registry's key, learned first thing in `run`
        self.owner = owner
        self.scope = 0  # their LedgerScope id, also learned first thing
        self.demo = demo
        self.log: LogSync | None = None
        self._usage_sums: list[int] | None = None  # this identity's usage sums, once read
        self._late = [0, 0]  # entries and amount fetched after the usage or summary was read
        self._late_cursor: str | None = None
        self._settled: int | None = None  # the settled position on the last ledger page read
        self.evidence: EvidenceReport | None = None
        # the registry named the many-window read and then refused it (`_read_windows`)
        self._one_window_a_read = False

    def run(
        self,
        progress: ProgressFn | None = None,
        *,
        today: date | None = None,
        evidence: bool = False,
    ) -> SyncReport:
        """The sync; with `evidence`, its share of the entries' events too before returning
        (otherwise the caller runs `continue_evidence` after showing the report)."""
        say = progress or (lambda _msg: None)
        with self._ctx.db.checkpoints_in_background():
            report = self._run(say, today)
        if evidence:
            self.continue_evidence(say)
        return report

    def _run(self, say: ProgressFn, today: date | None) -> SyncReport:
        say("Registry")
        self.registry = self.directory.learn(self.client, demo=self.demo)
        with self._ctx.db.session() as s:
            self.scope = ensure_scope(s, self.registry, self.owner)
            s.commit()
        # Transparency log (app.services.transparency): checkpoint checked before any entry.
        self.log = LogSync.start(self._ctx, self.client, self.registry, self.owner, self.scope)
        say("Models")
        models = self._sync_models()
        say("Rewards")
        proven: list[ProvenLeaf] = []
        entries, amount, cursor = self._sync_rewards(say, proven)
        # Rows kept from addresses this registry had before (the demo's earlier ports).
        adopted = self.directory.adopt_by_evidence(self.registry, self.owner)
        with write_behind() as writer:
            # The entries' verified inclusions are stored while the usage is checked (only
            # `finish` reads them: an entry stored without one counts as pending there, and
            # is verified again by the next sync if this one stops before they are stored),
            # then the usage windows checked, in batches.
            proving = writer.submit(self._store_proven, proven) if proven else None
            contributions = self._accepted()
            if self.log is not None:
                self.log.verify_acceptances(contributions)
            # Only the windows that can have changed since the last sync
            # (app.services.usage_plan).
            with self._ctx.db.session() as s:
                plan, mark = load_plan(
                    s, self.registry, self.owner, contributions,
                    settled_seq=self._settled, adopted=bool(adopted),
                )  # fmt: skip
            due = [c for c in contributions if c in plan]
            self._sync_usage(due, today or datetime.now(UTC).date(), say, plan.since, writer)
            if mark is not None:
                with self._ctx.db.session() as s:
                    store_mark(s, self.registry, self.owner, mark)
                    s.commit()
            if proving is not None:
                proving.result()
        if self.log is not None:
            # entries still pending, and the summary against the entries
            self.log.finish(lambda: self._catch_up(say))
        entries, amount = entries + self._late[0], amount + self._late[1]
        cursor = self._late_cursor or cursor
        return SyncReport(entries, amount, len(contributions), models, cursor)

    def continue_evidence(
        self,
        progress: ProgressFn | None = None,
        *,
        max_events: int = MAX_EVENTS_PER_SYNC,
        max_seconds: float = MAX_SECONDS,
    ) -> EvidenceReport:
        """After `run`: the events behind the verified entries, a bounded share that goes on
        where the last one stopped (app.services.evidence). Not part of the sync itself: the
        GUI runs it in the background once the sync's numbers are shown, the CLI after its
        report."""
        if not self.registry:
            raise RuntimeError("continue_evidence runs after a sync")
        self.evidence = EvidenceSync(
            self._ctx,
            self.client,
            self.registry,
            self.owner,
            has_log=self.log is not None,
            max_events=max_events,
            max_seconds=max_seconds,
        ).run(progress)
        return self.evidence

    def _catch_up(self, say: ProgressFn) -> None:
        """Entries written since the ledger was read (a figure read later may count them)."""
        entries, amount, self._late_cursor = self._sync_rewards(say)
        self._late[0] += entries
        self._late[1] += amount

    # -- parts -----------------------------------------------------------------------------

    def _cursor(self, s: Session, stream: str) -> SyncCursor | None:
        return s.get(SyncCursor, (self.registry, self.owner, stream))

    def _set_cursor(self, s: Session, stream: str, value: str | None) -> None:
        row = self._cursor(s, stream)
        if row is None:
            row = SyncCursor(registry_key=self.registry, owner=self.owner, stream=stream)
            s.add(row)
        row.cursor = value
        row.synced_at = datetime.now(UTC)

    def _sync_models(self) -> int:
        models = list(all_models(self.client))
        with self._ctx.db.session() as s:
            for m in models:
                stmt = sqlite_insert(KnownModel).values(
                    registry_key=self.registry,
                    id=m.id,
                    name=m.name,
                    description=m.description,
                    demo=m.demo,
                )
                s.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["registry_key", "id"],
                        set_={"name": m.name, "description": m.description, "demo": m.demo},
                    )
                )
            s.commit()
        return len(models)

    def _store_proven(self, proven: Sequence[ProvenLeaf]) -> None:
        """Verified inclusions whose leaf events are stored (`_sync_rewards`' `proven`), a
        transaction per `PROVEN_CHUNK` (the usage's own writes go in between)."""
        assert self.log is not None
        for i in range(0, len(proven), PROVEN_CHUNK):
            with gc_paused():
                self.log.store(proven[i : i + PROVEN_CHUNK], events=False)

    def _sync_rewards(
        self, say: ProgressFn, proven: list[ProvenLeaf] | None = None
    ) -> tuple[int, int, str | None]:
        """New ledger pages, each verified and stored with its rollups and leaf events.
        `proven`: their verified inclusions are added to it for the caller to store
        (`_store_proven`) instead of being stored with each page."""
        with self._ctx.db.session() as s:
            row = self._cursor(s, STREAM_REWARDS)
            cursor = row.cursor if row else None
        new = amount = 0
        stored = self._stored_total()
        # The next pages (and their leaves) are read on workers while this one is checked
        # (app.services.ledger_ahead), and a page is stored on a writer while the next one is
        # checked: the registry answers, the client checks and SQLite writes at the same time.
        # Pages are stored in order, each once the one before it is; an error storing one
        # surfaces before the next is stored, and the pages before an error are kept.
        storing: Future[tuple[int, int]] | None = None
        storing_amount = 0  # the amount of the page being stored, counted before it is

        def stored_before() -> None:
            nonlocal storing, new, amount, storing_amount
            if storing is None:
                return
            new_here, amount_here = storing.result()
            storing, storing_amount = None, 0
            new, amount = new + new_here, amount + amount_here
            if new:
                say(f"Rewards: {new:,} new entries")

        reads = PagesAhead(self._read_page, self._read_leaves, cursor, limit=MAX_PAGES)
        with reads, write_behind() as writer:
            for _page in range(MAX_PAGES):
                page, leaves = reads.take()
                check_page(page, cursor)
                last = is_last(page, cursor)
                check_ledger_total(stored + amount + storing_amount, page)
                proofs = self.log.verify(page.items, leaves) if self.log is not None else []
                stored_before()
                storing = writer.submit(self._store_page_paused, page, cursor, proofs, proven)
                storing_amount = sum(e.amount_micro for e in page.items)
                if last:
                    stored_before()
                    self._settled = page.settled_seq
                    with self._ctx.db.session() as s:
                        unsettled = page.unsettled_events
                        self._set_cursor(
                            s, STREAM_UNSETTLED, None if unsettled is None else str(unsettled)
                        )
                        s.commit()
                    return new, amount, page.next_cursor or cursor
                cursor = page.next_cursor
            stored_before()
        raise too_many_pages(
            "rewards", hint="the pages before are stored; the next sync continues after them"
        )

    def _read_page(self, cursor: str | None) -> RewardsPage:
        """A ledger page after `cursor` (only a read: run on a worker)."""
        return rewards_after(self.client, cursor)

    def _read_leaves(self, page: RewardsPage) -> LeavesAhead | None:
        """The log's leaves of a page's entries (only reads: run on a worker)."""
        if self.log is None or not page.items:
            return None
        return self.log.read_leaves([e.cursor for e in page.items])

    def _stored_total(self) -> int:
        with self._ctx.db.session() as s:
            total = s.scalar(
                select(func.coalesce(func.sum(LedgerRollupTotal.amount_micro), 0)).where(
                    LedgerRollupTotal.registry_key == self.registry,
                    LedgerRollupTotal.owner == self.owner,
                )
            )
        return int(total or 0)

    def _store_page_paused(
        self,
        page: RewardsPage,
        after: str | None,
        proofs: Sequence[ProvenLeaf],
        proven: list[ProvenLeaf] | None,
    ) -> tuple[int, int]:
        with gc_paused():
            return self._store_page(page, after, proofs, proven)

    def _store_page(
        self,
        page: RewardsPage,
        after: str | None,
        proofs: Sequence[ProvenLeaf] = (),
        proven: list[ProvenLeaf] | None = None,
    ) -> tuple[int, int]:
        """The page's entries, their rollups, their verified inclusions (`proofs`, with the
        tiles verified for them; with `proven`, only their leaf events, the inclusions added to
        it to be stored later) and the cursor after them, in one transaction: the entries in
        one statement (an entry the copy already has is kept as it is), then the rollups of
        the rows it added. Runs on the sync's writer thread."""
        with self._ctx.db.session() as s:
            row = self._cursor(s, STREAM_REWARDS)
            if (row.cursor if row else None) != after:  # another sync got here first
                s.rollback()
                if self.log is not None:
                    self.log.store(proofs)
                return 0, 0
            if self.log is not None:
                if proven is None:
                    self.log.store(proofs, s)
                else:  # the inclusions themselves later (`_sync_rewards`)
                    self.log.store_events(proofs, s)
                    proven.extend(proofs)
            if page.items:
                key, owner = self.registry, self.owner
                rows = [
                    (e.cursor, e.event_id, e.contribution_id, e.model_id, e.method,
                     e.amount_micro, at_stored_text(e), 1 if e.demo else 0)
                    for e in page.items
                ]  # fmt: skip
                conn = s.connection()
                scope = self.scope
                before = None
                if json_rows.jsonable(e.event_id for e in page.items):
                    result = conn.exec_driver_sql(
                        _INSERT_ENTRIES_JSON, (scope, json_rows.encode(rows))
                    )
                    # one statement: the rows it added have the ids just below the last
                    if result.rowcount and result.lastrowid:
                        before = result.lastrowid - result.rowcount
                else:
                    before = rollups.last_ledger_id(s)
                    result = conn.exec_driver_sql(_INSERT_ENTRIES, [(scope, *r) for r in rows])
                if result.rowcount == len(rows):  # every entry new (the usual case): summed here
                    rollups.add_ledger_page(
                        s, key, owner, ((r[2], r[6], r[3], r[4], r[5]) for r in rows), scope=scope
                    )
                elif before is not None:  # some stored before: the rows added, summed in SQL
                    rollups.add_new_ledger(s, before)
            self._set_cursor(s, STREAM_REWARDS, page.next_cursor or after)
            s.commit()
        return len(page.items), sum(e.amount_micro for e in page.items)

    def _accepted(self) -> list[str]:
        """Registry ids of this registry's accepted catalogue items (submitted at any of its
        addresses, or named in its ledger), in catalogue order."""
        with self._ctx.db.session() as s:
            earning = ledger_contributions(s, self.registry, self.owner)
            ours = self.directory.item_ids(s, self.registry, earning)
            accepted = s.execute(
                select(Item.id, Item.registry_id)
                .where(Item.registry_id.is_not(None), Item.state == "accepted")
                .order_by(Item.id)
            ).all()
        return [str(rid) for _iid, rid in accepted if str(rid) in ours]

    def _sync_usage(
        self,
        contribution_ids: Sequence[str],
        today: date,
        say: ProgressFn,
        changed: Mapping[str, date],
        writer: ThreadPoolExecutor,
    ) -> None:
        """The usage windows of these contributions, each checked in turn while the next ones
        are read on workers (`USAGE_AHEAD` at most in flight) and those checked before are
        stored by `writer` (`USAGE_STORE_BATCH` per transaction, planned here: each
        contribution once, so no window reads what one before it has still to write)."""
        with self._ctx.db.session() as s:
            sinces = [
                (cid, self._usage_since(s, cid, today, changed.get(cid)))
                for cid in dict.fromkeys(contribution_ids)
            ]
        if self.log is not None:
            self.log.expect_usage(sinces)
        many = USAGE_WINDOWS_READ in self.client.reads
        with read_ahead(USAGE_WORKERS) as pool:
            ahead: deque[Future[list[UsageWindow]]] = deque()
            todo = iter(_usage_reads(sinces, USAGE_READ_BATCH if many else 1))
            limit = USAGE_BATCHES_AHEAD if many else USAGE_AHEAD

            def more() -> None:
                for batch in todo:
                    ahead.append(pool.submit(self._read_windows, batch))
                    if len(ahead) >= limit:
                        return

            more()
            answered: deque[UsageWindow] = deque()  # of the batch read last
            checked: list[UsageWindow] = []
            stored: list[Future[None]] = []  # on the writer, in order

            def store() -> None:
                nonlocal checked
                for f in stored:
                    if f.done():
                        f.result()  # a write that failed: nothing more is handed over
                writes, refused = self._plan_windows(checked)
                checked = []
                stored.append(writer.submit(self._write_windows, writes))
                if refused is not None:
                    stored[-1].result()  # those before it are kept
                    raise refused

            try:
                for n, (cid, since) in enumerate(sinces, 1):
                    say(f"Usage of contribution {n} of {len(sinces)}")
                    if not answered:
                        answered.extend(ahead.popleft().result())
                        more()
                    window = answered.popleft()
                    check_window(window, cid, since, today)
                    if self.log is not None:  # its sums against the ledger entries first
                        self.log.check_usage(window, lambda: self._catch_up(say))
                    checked.append(window)
                    if len(checked) >= USAGE_STORE_BATCH:
                        store()
            finally:
                # the windows checked so far are kept, also when a later one fails
                if checked and not any(f.done() and f.exception() for f in stored):
                    store()
            for f in stored:
                f.result()

    def _read_windows(self, batch: Sequence[tuple[str, date]]) -> list[UsageWindow]:
        """The windows of one read of `_usage_reads`: in one request when there are several
        (they share a first day), else one a request. A registry that names the many-window
        read but answers it as an unknown route (a proxy in front of it that does not pass
        it on, an older instance behind the same address) is read one window a request from
        then on, this batch included."""
        if len(batch) > 1 and not self._one_window_a_read:
            try:
                return usage_windows(self.client, [cid for cid, _s in batch], since=batch[0][1])
            except ApiRefused as exc:
                if exc.status not in NOT_SERVED:
                    raise
                log.info("usage-windows refused (%s): one window a request", exc.status)
                self._one_window_a_read = True
        return [usage_window(self.client, cid, since=since) for cid, since in batch]

    def _usage_since(  # `changed`: the earliest day that can have (None: the usual window)
        self, s: Session, contribution_id: str, today: date, changed: date | None
    ) -> date:
        row = self._cursor(s, _usage_stream(contribution_id))
        last = date.fromisoformat(row.cursor) if row and row.cursor else None
        # Always the registry's last 90 days (operators may post late events for recent days),
        # and back to the last day fetched when that is older (a long time offline).
        since = today - timedelta(days=FIRST_WINDOW_DAYS - 1)
        if changed is not None:
            since = min(changed, today)
        if last is not None:
            since = max(min(last, since), today - timedelta(days=MAX_WINDOW_DAYS - 1))
        return since

    def _plan_windows(
        self, windows: Sequence[UsageWindow]
    ) -> tuple[rollups.UsageWrites, RegistryUnavailable | None]:
        """The writes of these windows (`_write_windows` does them in one transaction: each
        window's days replace the stored ones of its range, with the rollups and the stream's
        cursor), and the refusal of the first whose sums cannot be stored (None: none; the
        writes stop before it, those before it are kept)."""
        writes = rollups.UsageWrites(self.registry)
        if not windows:
            return writes, None
        with self._ctx.db.session() as s:
            # what the windows replace, read for all of them at once: who syncs each
            # contribution, and its stored days (all of them where this identity does not yet)
            ids = [w.contribution_id for w in windows]
            owners = rollups.usage_owners_of(s, self.registry, ids)
            floor = min(
                (w.since if self.owner in owners[w.contribution_id] else date.min) for w in windows
            )
            stored = rollups.usage_windows(s, self.registry, ids, floor)
            for window in windows:
                cid = window.contribution_id
                try:
                    self._plan_window(s, writes, window, owners[cid], stored[cid])
                except RegistryUnavailable as exc:
                    return writes, exc
        return writes, None

    def _write_windows(self, writes: rollups.UsageWrites) -> None:
        with self._ctx.db.session() as s, gc_paused():
            rollups.write_usage(s, writes)
            s.commit()

    def _plan_window(
        self,
        s: Session,
        writes: rollups.UsageWrites,
        window: UsageWindow,
        owners: set[str],
        stored: Mapping[rollups.DayKey, tuple[int, int, int]],
    ) -> None:
        """One window's writes (see `_plan_windows`; `owners`: who syncs the contribution,
        `stored`: its stored days, all of them unless this identity is among `owners`, else
        at least those of the window); `s` only reads."""
        days: dict[tuple[date, str, str], list[int]] = {}
        for p in window.points:
            day = days.setdefault((p.start, p.model_id, p.method), [0, 0, 0])
            day[0] += p.events
            day[1] += p.share_ppm
            day[2] += p.reward_micro
        new = {k: (v[0], v[1], v[2]) for k, v in days.items()}
        cid = window.contribution_id
        since, until = window.since, window.until
        outside: dict[rollups.DayKey, tuple[int, int, int]] | None = None
        old = {k: v for k, v in stored.items() if since <= k[0] <= until}
        if self.owner not in owners:
            # Not in this identity's sums yet: all of its stored days join them.
            outside = {k: v for k, v in stored.items() if k not in old}
            gone: list[tuple[int, int, int]] = []
            added = [*new.values(), *outside.values()]
        else:
            gone, added = list(old.values()), list(new.values())
        sums = self._check_usage_total(s, gone, added)
        rollups.plan_usage_window(
            s, writes, self.owner, cid, since, until, old, new, outside, owners
        )
        writes.set_cursor(self.owner, _usage_stream(cid), window.until.isoformat())
        self._usage_sums = sums

    def _check_usage_total(
        self,
        s: Session,
        gone: Iterable[tuple[int, int, int]],
        added: Iterable[tuple[int, int, int]],
    ) -> list[int]:
        """The sums this identity's review computes (its synced contributions' usage days),
        with the window's stored days taken out and the new ones in, must stay summable
        (events, share, reward each <= 2^63 - 1), or nothing of the window is written.
        Returns the sums after the window (the next window starts from them)."""
        totals = list(self._usage_sums) if self._usage_sums else self._stored_usage_sums(s)
        for values in gone:
            for n, value in enumerate(values):
                totals[n] -= value
        for values in added:
            for n, value in enumerate(values):
                totals[n] += value
        if max(totals) > MAX_STORED_INT:
            raise RegistryUnavailable(
                UNREADABLE,
                hint=f"its usage would add up to more than {MAX_STORED_INT:,}; "
                "nothing of that window was stored",
            )
        return totals

    def _stored_usage_sums(self, s: Session) -> list[int]:
        stored = s.execute(
            select(
                func.coalesce(func.sum(UsageRollupDay.events), 0),
                func.coalesce(func.sum(UsageRollupDay.share_ppm), 0),
                func.coalesce(func.sum(UsageRollupDay.reward_micro), 0),
            ).where(
                UsageRollupDay.registry_key == self.registry, UsageRollupDay.owner == self.owner
            )
        ).one()
        return [int(v) for v in stored]


# -- offline review --------------------------------------------------------------------------


@dataclass(frozen=True)
class ContributionRewards:
    item_id: int | None  # None: a contribution this catalogue does not hold (another device)
    contribution_id: str
    title: str
    reward_micro: int
    entries: int


@dataclass(frozen=True)
class RewardsOverview:
    registry: str  # where it was seen last: a URL, or "the demo registry"
    owner: str
    total_micro: int
    entries: int
    last_sync: datetime | None
    by_contribution: tuple[ContributionRewards, ...]
    by_model: tuple[tuple[str, str, bool, int], ...]  # (model id, name, demo, micro)
    by_method: tuple[tuple[str, int], ...]
    # (day, events, reward micro) from the usage buckets, oldest first
    daily: tuple[tuple[date, int, int], ...] = field(default=())
    registry_id: str | None = None  # the identity the registry names itself by, if it does
    unit: str = "units"  # the registry's name for its reward unit
    unsettled_events: int | None = None  # received by the registry, not settled (last sync)


def open_review(
    ctx: ServiceContext, owner: str, *, url: str | None = None, demo: bool = False
) -> RewardsReview:
    """The review of what is stored for the registry at `url` (default: the configured one),
    or for the demo registry: the registry's key is looked up, never guessed from the URL
    alone, so the GUI and the CLI read the same rows. No network."""
    directory = RegistryDirectory(ctx)
    if demo:
        key = directory.demo_key()
        return RewardsReview(ctx, key or url_key("demo"), owner, shown_as="the demo registry")
    url = (url or ctx.registry_url).rstrip("/")
    return RewardsReview(ctx, directory.key_for(url) or url_key(url), owner, shown_as=url)


class RewardsReview:
    """What the catalogue holds about usage and rewards (no network) for one registry key."""

    def __init__(
        self, ctx: ServiceContext, registry: str, owner: str, *, shown_as: str | None = None
    ) -> None:
        self._ctx = ctx
        self.registry = registry
        self.owner = owner
        self.directory = RegistryDirectory(ctx)
        self.shown_as = shown_as or (
            registry.removeprefix(URL_KEY_PREFIX)
            if registry.startswith(URL_KEY_PREFIX)
            else registry
        )

    @property
    def registry_id(self) -> str | None:
        return None if self.registry.startswith(URL_KEY_PREFIX) else self.registry

    def _contributions(self, s: Session) -> set[str]:
        """Contribution ids of `owner` at this registry: in its ledger or with usage synced."""
        return ledger_contributions(s, self.registry, self.owner) | self.streamed(s)

    def streamed(self, s: Session) -> set[str]:
        """Contribution ids whose usage has been synced for `owner` at this registry."""
        streams = s.scalars(
            select(SyncCursor.stream).where(
                SyncCursor.registry_key == self.registry,
                SyncCursor.owner == self.owner,
                SyncCursor.stream.startswith(_usage_stream("")),
            )
        )
        return {st.removeprefix(_usage_stream("")) for st in streams}

    def last_sync(self) -> datetime | None:
        """When this copy last synced its ledger (None: never)."""
        with self._ctx.db.session() as s:
            row = s.get(SyncCursor, (self.registry, self.owner, STREAM_REWARDS))
            return row.synced_at if row is not None else None

    @property
    def ctx(self) -> ServiceContext:
        return self._ctx

    def contributions(self, s: Session) -> set[str]:
        """Contribution ids of `owner` at this registry (see `_contributions`)."""
        return self._contributions(s)

    def contribution_of(self, item_id: int) -> str:
        """The registry id of catalogue item `item_id` (for `overview`), or a clear error."""
        with self._ctx.db.session() as s:
            item = s.get(Item, item_id)
            if item is None:
                raise NotFoundError(f"item #{item_id} is not in the catalogue")
            ours = self.directory.item_ids(s, self.registry, self._contributions(s))
            if not item.registry_id or item.registry_id not in ours:
                raise UsageError(
                    f"item #{item_id} has not been submitted to {self.shown_as}",
                    hint="submit it first: contributor-desk submit " + str(item_id),
                )
            return item.registry_id

    def overview(self, contribution_id: str | None = None) -> RewardsOverview:
        with self._ctx.db.session() as s:
            # The ledger's totals per contribution, model and method (app.store.rollups):
            # every figure is summed from them, whatever the number of entries.
            totals = LedgerRollupTotal
            mine = (totals.registry_key == self.registry) & (totals.owner == self.owner)
            if contribution_id is not None:
                mine = mine & (totals.contribution_id == contribution_id)
            groups = s.execute(
                select(
                    totals.contribution_id,
                    totals.model_id,
                    totals.method,
                    totals.amount_micro,
                    totals.entries,
                ).where(mine)
            ).all()
            total = n = 0
            contribution_sums: dict[str, list[int]] = {}
            model_sums: dict[str, int] = defaultdict(int)
            method_sums: dict[str, int] = defaultdict(int)
            for cid, mid, method, micro, count in groups:
                micro, count = int(micro), int(count)
                total += micro
                n += count
                acc = contribution_sums.setdefault(cid, [0, 0])
                acc[0] += micro
                acc[1] += count
                model_sums[mid] += micro
                method_sums[method] += micro
            per_contribution = [(cid, v[0], v[1]) for cid, v in contribution_sums.items()]
            if contribution_id is None:
                contributions = set(contribution_sums) | self.streamed(s)
            else:
                contributions = self._contributions(s)
            items = self.directory.item_ids(s, self.registry, contributions)
            names = {
                m.id: (m.name, m.demo)
                for m in s.scalars(
                    select(KnownModel).where(KnownModel.registry_key == self.registry)
                )
            }
            per_model = list(model_sums.items())
            per_method = list(method_sums.items())
            cursor = s.get(SyncCursor, (self.registry, self.owner, STREAM_REWARDS))
            waiting = s.get(SyncCursor, (self.registry, self.owner, STREAM_UNSETTLED))
            if contribution_id is None:  # the usage of every synced contribution, pre-summed
                days = UsageRollupDay
                daily = s.execute(
                    select(days.day, func.sum(days.events), func.sum(days.reward_micro))
                    .where(days.registry_key == self.registry, days.owner == self.owner)
                    .group_by(days.day)
                    .order_by(days.day)
                ).all()
            else:
                daily = s.execute(
                    select(UsageDay.day, func.sum(UsageDay.events), func.sum(UsageDay.reward_micro))
                    .where(
                        UsageDay.registry_key == self.registry,
                        UsageDay.contribution_id == contribution_id,
                    )
                    .group_by(UsageDay.day)
                    .order_by(UsageDay.day)
                ).all()
        by_contribution = sorted(
            (
                ContributionRewards(
                    items.get(cid, (None, ""))[0],
                    cid,
                    items.get(cid, (None, ""))[1] or cid,
                    int(micro),
                    int(count),
                )
                for cid, micro, count in per_contribution
            ),
            key=lambda c: (-c.reward_micro, c.title),
        )
        by_model = sorted(
            (
                (mid, names.get(mid, (mid, False))[0], names.get(mid, (mid, False))[1], int(v))
                for mid, v in per_model
            ),
            key=lambda m: (-m[3], m[0]),
        )
        by_method: dict[str, int] = defaultdict(int)
        for method, v in per_method:
            by_method[method] += int(v)
        return RewardsOverview(
            registry=self.shown_as,
            owner=self.owner,
            total_micro=int(total),
            entries=int(n),
            last_sync=cursor.synced_at if cursor else None,
            by_contribution=tuple(by_contribution),
            by_model=tuple(by_model),
            by_method=tuple(sorted(by_method.items(), key=lambda m: (-m[1], m[0]))),
            daily=tuple((d, int(e), int(r)) for d, e, r in daily),
            registry_id=self.registry_id,
            unit=self.directory.unit_of(self.registry),
            unsettled_events=_count_of(waiting),
        )
