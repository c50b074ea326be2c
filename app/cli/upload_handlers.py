"""Handlers of `submit`, `upload`, `queue`, `sync` and `rewards` (parsers in upload_cmds.py).

Exit codes: 0 all done; 4 registry unreachable (queue kept) or refused/rejected; 3 a
contribution stopped because its files changed.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.cli.identity_cmds import Passphrases
from app.cli.output import human_size, print_json
from app.domain.money import format_micro
from app.domain.states import JobKind, JobState, State
from app.domain.text import display_text
from app.domain.units import KB, method_label, plural
from app.services.context import ServiceContext
from app.services.submit import SubmitService
from app.services.uploads import (
    QueueEvent,
    QueueOptions,
    QueueSnapshot,
    RegistryStatus,
    UploadQueue,
)

if TYPE_CHECKING:
    from app.services.rewards import SyncReport

EXIT_OK, EXIT_BAD_DATA, EXIT_REGISTRY = 0, 3, 4
JOBS_SHOWN = 20


def _phr(args: argparse.Namespace) -> Any:
    phr = Passphrases(getattr(args, "passphrase_file", None))
    return lambda: phr.get("Passphrase of your key file: ")


def cmd_submit(args: argparse.Namespace, ctx: ServiceContext) -> int:
    result = SubmitService(ctx).submit(args.id, datanet=args.datanet, passphrase=_phr(args))
    if args.json:
        print_json(
            {
                "itemId": result.item_id,
                "state": result.state.value,
                "registryId": result.registry_id,
                "blobsToUpload": result.blobs_to_upload,
                "bytesToUpload": result.bytes_to_upload,
                "offline": result.offline,
            }
        )
    elif result.offline:
        print(
            f"#{result.item_id} signed and queued; the registry is unreachable ({result.message})."
        )
        print("It goes out with `contributor-desk upload` once the registry is reachable.")
    else:
        print(
            f"#{result.item_id} {result.state.value} as {result.registry_id}: "
            f"{plural(result.blobs_to_upload, 'blob')}, "
            f"{human_size(result.bytes_to_upload)} to upload."
        )
        if result.state.value in ("queued", "uploading"):
            print("Run `contributor-desk upload --wait` to send them.")
    return EXIT_REGISTRY if result.state.value == "rejected" else EXIT_OK


class _Plain:
    """Plain progress lines for logs and pipes: on events, at most every 2 s."""

    def __init__(self, queue: UploadQueue) -> None:
        self.queue = queue
        self.last = 0.0
        self.lock = threading.Lock()

    def __call__(self, event: QueueEvent) -> None:
        now = time.monotonic()
        with self.lock:
            if event.kind == "progress" and now - self.last < 2.0:
                return
            self.last = now
        if event.kind == "registry":
            sys.stderr.write(f"registry {display_text(event.message)}\n")
        elif event.kind in ("job", "contribution") and event.message:
            who = f"#{event.item_id}" if event.item_id is not None else ""
            sys.stderr.write(f"{who} job {event.job_id or '-'}: {display_text(event.message)}\n")
        elif event.kind == "progress":
            snap = self.queue.snapshot()
            sys.stderr.write(
                f"{human_size(snap.bytes_confirmed)} / {human_size(snap.total_bytes)} "
                f"at {human_size(int(snap.rate_bps))}/s\n"
            )
        sys.stderr.flush()


def _run_with_rich(queue: UploadQueue, run: Any) -> QueueSnapshot:
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    result: list[QueueSnapshot] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(run())
        except BaseException as exc:  # re-raised on the main thread
            errors.append(exc)

    worker = threading.Thread(target=target, name="upload-run")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as progress:
        tasks: dict[int, Any] = {}
        worker.start()
        try:
            while worker.is_alive():
                snap = queue.snapshot()
                for c in snap.contributions:
                    label = escape(f"#{c.item_id} {display_text(c.title[:30])} [{c.state}]")
                    if snap.registry_status is RegistryStatus.OFFLINE:
                        label += " (registry offline)"
                    if c.item_id not in tasks:
                        tasks[c.item_id] = progress.add_task(label, total=c.total_bytes or 1)
                    progress.update(
                        tasks[c.item_id],
                        description=label,
                        completed=c.bytes_sent if c.total_bytes else 1,
                        total=c.total_bytes or 1,
                    )
                worker.join(0.25)
        except KeyboardInterrupt:
            queue.stop()
            worker.join()
            raise
    if errors:
        raise errors[0]
    return result[0]


def cmd_upload(args: argparse.Namespace, ctx: ServiceContext) -> int:
    options = QueueOptions.from_settings(
        ctx,
        concurrency=args.concurrency,
        chunk_size=args.chunk_mb * 1024 * 1024 if args.chunk_mb else None,
        bandwidth_bytes_per_s=args.limit_kbps * KB if args.limit_kbps is not None else None,
    )
    queue = UploadQueue(ctx, options=options, passphrase=_phr(args))
    try:

        def run() -> QueueSnapshot:
            return queue.run(until_idle=True, wait_offline=args.wait)

        if sys.stderr.isatty():
            snap = _run_with_rich(queue, run)
        else:
            queue.subscribe(_Plain(queue))
            try:
                snap = run()
            except KeyboardInterrupt:
                queue.stop()
                raise
    finally:
        queue.close()
    return _report(snap)


def _report(snap: QueueSnapshot) -> int:
    code = EXIT_OK
    for c in snap.contributions:
        line = f"#{c.item_id} {c.title}: {c.state}"
        if c.registry_id:
            line += f" ({c.registry_id})"
        if c.state == "rejected":
            line += " — " + "; ".join(c.rejection_reasons)
            code = max(code, EXIT_REGISTRY)
        elif c.jobs_failed or c.jobs_paused:
            line += f" — stopped: {c.last_error}"
            code = max(code, EXIT_BAD_DATA)
        print(line)
    if snap.registry_status is RegistryStatus.OFFLINE and snap.active:
        sys.stderr.write(
            f"error: the registry at {snap.registry_url} is unreachable "
            f"({display_text(snap.registry_error)}); the queue is kept — run "
            "`contributor-desk upload --wait` to wait for it\n"
        )
        return EXIT_REGISTRY
    return code


def cmd_queue(args: argparse.Namespace, ctx: ServiceContext) -> int:
    queue = UploadQueue(ctx)
    try:
        if args.action:
            if args.item is None:
                from app.domain.errors import UsageError

                raise UsageError(f"`queue {args.action}` needs a catalogue id")
            n = getattr(queue, args.action)(args.item)
            print(f"{args.action}: {plural(n, 'job')} of #{args.item}")
            return EXIT_OK
        snap = queue.snapshot()
    finally:
        queue.close()
    if args.json:
        print_json(snap.to_json())
        return EXIT_OK
    if not snap.jobs:
        print("The upload queue is empty.")
    for c in snap.contributions:
        print(
            f"#{c.item_id} {c.title} [{c.state}] {c.jobs_done}/{c.jobs_total} blobs, "
            f"{human_size(c.bytes_confirmed)} / {human_size(c.total_bytes)}"
            + (f" — {c.last_error}" if c.last_error else "")
        )
        open_jobs = [j for j in snap.jobs if j.item_id == c.item_id and j.state != JobState.DONE]
        for j in open_jobs[:JOBS_SHOWN]:
            what = "create contribution" if j.kind == JobKind.CREATE else j.paths[0]
            print(f"    job {j.id} {j.state:9} {what} {human_size(j.size)} {j.last_error}")
        if len(open_jobs) > JOBS_SHOWN:
            print(f"    … and {len(open_jobs) - JOBS_SHOWN} more (see --json)")
    return EXIT_OK


def cmd_sync(args: argparse.Namespace, ctx: ServiceContext) -> int:
    from app.services.rewards import RewardsSync, current_owner

    queue = UploadQueue(ctx, passphrase=_phr(args))
    try:
        changes = queue.sync()
        owner = current_owner(ctx)
        report = evidence = rewards_sync = None
        progress = None if args.json else _progress_line()
        if owner is not None:
            rewards_sync = RewardsSync(ctx, queue.client, owner)
            report = rewards_sync.run(progress)
            if progress is not None:
                progress("")
        if not args.json:
            _print_sync(changes, report)
        # After the report: this sync's bounded share of the events behind the entries.
        if rewards_sync is not None and not args.no_evidence:
            evidence = rewards_sync.continue_evidence(progress)
            if progress is not None:
                progress("")
    finally:
        queue.close()
    if args.json:
        print_json(
            {
                "contributions": [{"itemId": i, "state": s.value} for i, s in changes],
                "rewards": None
                if report is None
                else {
                    "newEntries": report.new_entries,
                    "newRewardMicro": report.new_reward_micro,
                    "contributionsWithUsage": report.contributions,
                    "models": report.models,
                    "cursor": report.cursor,
                },
                "evidence": None
                if evidence is None
                else {
                    "eventsChecked": evidence.events,
                    "entriesConfirmed": evidence.entries_confirmed,
                    "entriesLeft": evidence.entries_left,
                    "statuses": evidence.statuses,
                },
            }
        )
        return EXIT_OK
    if evidence is not None and evidence.events:
        more = (
            f"; {evidence.entries_left:,} entries left for the next syncs"
            if (evidence.entries_left)
            else ""
        )
        print(
            f"Evidence: {evidence.events:,} events checked against your files{more} "
            "(see: contributor-desk evidence ID)"
        )
    return EXIT_OK


def _print_sync(changes: list[tuple[int, State]], report: SyncReport | None) -> None:
    for item_id, state in changes:
        print(f"#{item_id}: {state.value}")
    if report is not None and report.new_entries:
        print(
            f"Rewards: {report.new_entries:,} new entries, "
            f"+{format_micro(report.new_reward_micro)} (see: contributor-desk rewards)"
        )
    elif not changes:
        print("Nothing to sync.")
    sys.stdout.flush()


def _progress_line() -> Callable[[str], None] | None:
    """A one-line progress display on a terminal (nothing when stderr is not one)."""
    if not sys.stderr.isatty():
        return None

    def show(text: str) -> None:
        sys.stderr.write(f"\r\033[K{text}")
        sys.stderr.flush()

    return show


def _rewards_csv(args: argparse.Namespace, review: Any, scope: str | None) -> int:
    """`rewards --csv FILE [--since D --until D]`: the same rows and file as the Rewards
    page's CSV export (one service function writes both)."""
    from pathlib import Path

    from app.services.usage_history import export_csv

    path = Path(args.csv)
    report = export_csv(review, path, since=args.since, until=args.until, contribution_id=scope)
    if args.json:
        print_json(
            {
                "path": str(path),
                "rows": report.rows,
                "events": report.events,
                "effectiveUsagePpm": report.share_ppm,
                "earnedMicro": report.earned_micro,
            }
        )
    else:
        print(
            f"wrote {report.rows:,} rows to {path}: {report.events:,} attributed events, "
            f"{format_micro(report.earned_micro)} earned"
        )
    return EXIT_OK


def cmd_rewards(args: argparse.Namespace, ctx: ServiceContext) -> int:
    from app.domain.errors import IdentityError
    from app.services.rewards import current_owner, open_review

    owner = current_owner(ctx)
    if owner is None:
        raise IdentityError(
            "no identity yet: rewards belong to your key",
            hint="run: contributor-desk identity init",
        )
    # The same service and registry key as the GUI's Rewards page (--demo: the demo registry).
    review = open_review(ctx, owner, demo=bool(getattr(args, "demo", False)))
    scope = None if args.id is None else review.contribution_of(args.id)
    if getattr(args, "csv", None):
        return _rewards_csv(args, review, scope)
    if args.since is not None or args.until is not None:
        from app.domain.errors import UsageError

        raise UsageError("--since and --until go with --csv FILE")
    view = review.overview(scope)
    if args.json:
        print_json(
            {
                "registry": view.registry,
                "registryId": view.registry_id,
                "unit": view.unit,
                "totalMicro": view.total_micro,
                "entries": view.entries,
                "unsettledEvents": view.unsettled_events,
                "lastSync": view.last_sync.isoformat() if view.last_sync else None,
                "contributions": [
                    {
                        "itemId": c.item_id,
                        "contributionId": c.contribution_id,
                        "title": c.title,
                        "rewardMicro": c.reward_micro,
                        "entries": c.entries,
                    }
                    for c in view.by_contribution
                ],
                "models": [
                    {"modelId": m, "name": n, "demo": d, "rewardMicro": v}
                    for m, n, d, v in view.by_model
                ],
                "methods": [{"method": m, "rewardMicro": v} for m, v in view.by_method],
                "daily": [
                    {"day": d.isoformat(), "events": e, "rewardMicro": r} for d, e, r in view.daily
                ],
            }
        )
        return EXIT_OK
    when = view.last_sync.strftime("%Y-%m-%d %H:%M UTC") if view.last_sync else "never"
    print(f"Rewards from {view.registry} (last synced: {when})")
    if view.unsettled_events:
        print(f"{view.unsettled_events:,} events awaiting settlement at the registry (last sync)")
    if not view.entries:
        print("No rewards yet." + ("" if view.last_sync else " Run: contributor-desk sync"))
        if not getattr(args, "demo", False) and review.directory.demo_key() is not None:
            print("The demo registry's rewards: contributor-desk --demo rewards")
        return EXIT_OK
    print(
        f"Total: {format_micro(view.total_micro, unit=view.unit)} "
        f"from {view.entries:,} ledger entries"
    )
    print("By contribution:")
    for c in view.by_contribution:
        label = f"#{c.item_id} {c.title}" if c.item_id is not None else c.title
        print(f"  {format_micro(c.reward_micro):>18}  {label}")
    print("By model:")
    for _mid, name, demo, micro in view.by_model:
        print(f"  {format_micro(micro):>18}  {name}{' (demo)' if demo else ''}")
    print("By attribution method:")
    for method, micro in view.by_method:
        print(f"  {format_micro(micro):>18}  {method_label(method)}")
    if view.daily:
        events = sum(e for _d, e, _r in view.daily)
        first, last = view.daily[0][0], view.daily[-1][0]
        print(f"Usage: {events:,} attributed events from {first} to {last}")
    return EXIT_OK
