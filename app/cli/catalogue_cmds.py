"""`add`, `list`, `show`, `history`, `export`, `remove`: the catalogue from the command line."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.output import human_size, plural, print_json
from app.domain.states import Kind
from app.domain.units import problem_location

if TYPE_CHECKING:
    from app.services.catalogue import CatalogueService
    from app.services.context import ServiceContext


def _service(ctx: ServiceContext) -> CatalogueService:
    """Imported on use: `list` must not pay for the format readers, Pillow and the hashing pool."""
    from app.services.catalogue import CatalogueService

    return CatalogueService(ctx)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("add", help="add files or folders to the catalogue")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--kind", choices=[k.value for k in Kind])
    p.add_argument("--parent", metavar="ID", help="parent dataset: catalogue id or registry id")
    p.add_argument("--title")
    p.add_argument("--license", default="", metavar="SPDX")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("list", help="list the catalogue")
    p.add_argument("--search", default="")
    p.add_argument("--kind", choices=[k.value for k in Kind])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="show one item in detail")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("history", help="contribution history (all items, or one)")
    p.add_argument("id", type=int, nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("export", help="export an item as Croissant JSON-LD or a BagIt bag")
    p.add_argument("id", type=int)
    p.add_argument("--format", required=True, choices=["croissant", "bagit"])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("remove", help="remove a local (not yet submitted) item")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_remove)


def _progress_printer() -> Any:
    """A rich progress bar on a terminal; silence otherwise (scripts, CI logs)."""
    if not sys.stderr.isatty():
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        transient=True,
        console=Console(stderr=True),  # stdout is for results (and is display-sanitised)
    )
    task = bar.add_task("hashing", total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return bar, update


def cmd_add(args: argparse.Namespace, ctx: ServiceContext) -> int:
    parent_id: int | None = None
    parent_registry_id: str | None = None
    if args.parent:
        if args.parent.isdigit():
            parent_id = int(args.parent)
        else:
            parent_registry_id = args.parent
    kind = Kind(args.kind) if args.kind else None
    if kind is None and (parent_id or parent_registry_id):
        kind = Kind.ANNOTATION
    from app.services.catalogue import ImportRequest

    request = ImportRequest(
        paths=list(args.paths),
        kind=kind,
        title=args.title,
        license=args.license,
        parent_id=parent_id,
        parent_registry_id=parent_registry_id,
    )
    service = _service(ctx)
    bar, update = _progress_printer()
    if bar is not None:
        with bar:
            item = service.add(request, progress=update)
    else:
        item = service.add(request)
    if args.json:
        print_json(service.get(item.id).to_json())
    else:
        count = f", {plural(item.record_count, 'record')}" if item.record_count is not None else ""
        print(
            f"added #{item.id} {item.title!r}: {item.kind.value}, {item.format}{count}, "
            f"{plural(item.file_count, 'file')}, {human_size(item.total_size)}"
        )
        problems = service.get(item.id).problems + service.get(item.id).report.all_problems()
        for p in problems[:10]:
            where = problem_location(p.path)
            print(f"  {p.severity.value}: {where}{p.message}")
        if len(problems) > 10:
            print(f"  … and {len(problems) - 10} more (see `contributor-desk show {item.id}`)")
    return 0


def cmd_list(args: argparse.Namespace, ctx: ServiceContext) -> int:
    kind = Kind(args.kind) if args.kind else None
    if args.json:
        print_json(_service(ctx).list_json(search=args.search, kind=kind))
        return 0
    items = _service(ctx).list_items(search=args.search, kind=kind)
    if not items:
        print("The catalogue is empty. Add data with `contributor-desk add PATH`.")
        return 0
    print(f"{'ID':>5}  {'KIND':<10} {'FORMAT':<16} {'STATE':<10} {'SIZE':>9}  TITLE")
    for i in items:
        print(
            f"{i.id:>5}  {i.kind.value:<10} {i.format:<16} {i.state.value:<10} "
            f"{human_size(i.total_size):>9}  {i.title}"
        )
    return 0


def cmd_show(args: argparse.Namespace, ctx: ServiceContext) -> int:
    detail = _service(ctx).get(args.id)
    if args.json:
        print_json(detail.to_json())
        return 0
    s = detail.summary
    print(f"#{s.id} {s.title}")
    print(f"  kind:      {s.kind.value}")
    print(f"  state:     {s.state.value}")
    print(f"  format:    {s.format}")
    if s.record_count is not None:
        print(f"  records:   {s.record_count}")
    print(f"  files:     {plural(s.file_count, 'file')} ({human_size(s.total_size)})")
    print(f"  license:   {s.license or '—'}")
    if s.parent_id or s.parent_registry_id:
        print(f"  parent:    {s.parent_id or s.parent_registry_id}")
    print(f"  source:    {detail.source_path}")
    print(f"  root:      {s.manifest_root}")
    if detail.signed_by:
        print(f"  signed by: {detail.signed_by}")
    if detail.registry_id:
        print(f"  registry:  {detail.registry_id} at {detail.registry_url}")
    for part in detail.report.parts:
        count = f", {part.record_count} records" if part.record_count is not None else ""
        classes = f", classes: {', '.join(part.classes)}" if part.classes else ""
        print(f"  part {part.path}: {part.format}{count}{classes}")
    for p in detail.problems + detail.report.all_problems():
        where = problem_location(p.path)
        print(f"  {p.severity.value}: {where}{p.message}")
    print("  history:")
    for h in detail.history:
        print(f"    {h.at:%Y-%m-%d %H:%M:%S} {h.event:<10} → {h.to_state} {h.detail}")
    return 0


def cmd_history(args: argparse.Namespace, ctx: ServiceContext) -> int:
    rows = _service(ctx).history(args.id)
    if args.id is not None:
        return _timeline(args, ctx, rows)
    if args.json:
        print_json([h.to_json() for h in rows])
        return 0
    for h in rows:
        print(f"{h.at:%Y-%m-%d %H:%M:%S}  #{h.item_id:<5} {h.event:<10} → {h.to_state} {h.detail}")
    return 0


def _timeline(args: argparse.Namespace, ctx: ServiceContext, rows: list[Any]) -> int:
    """`history ID`: the contribution's timeline (catalogued, signed, submitted, accepted or
    rejected, first use by each model, first reward, monthly totals) from the local copy,
    then every recorded event."""
    from app.domain.money import format_amount, format_micro
    from app.services.rewards import current_owner, open_review
    from app.services.usage_history import contribution_timeline

    owner = current_owner(ctx)
    review = open_review(ctx, owner, demo=bool(getattr(args, "demo", False))) if owner else None
    timeline = contribution_timeline(ctx, args.id, review)
    if args.json:
        print_json({**timeline.to_json(), "history": [h.to_json() for h in rows]})
        return 0
    print(f"#{timeline.item_id} {timeline.title}")
    for m in timeline.milestones:
        when = f"{m.at:%Y-%m-%d %H:%M}" if isinstance(m.at, datetime) else f"{m.at:%Y-%m-%d}"
        detail = f"  ({m.detail})" if m.detail else ""
        print(f"  {when:<16}  {m.text}{detail}")
    if timeline.months:
        print(f"Monthly totals ({timeline.unit}):")
        for month in timeline.months:
            print(
                f"  {month.month}  {month.events:>12,} events  "
                f"{format_micro(month.share_ppm):>16} effective  "
                f"{format_amount(month.earned_micro):>14} earned"
            )
    print("Recorded events:")
    for h in rows:
        print(f"  {h.at:%Y-%m-%d %H:%M:%S} {h.event:<10} → {h.to_state} {h.detail}")
    return 0


def cmd_export(args: argparse.Namespace, ctx: ServiceContext) -> int:
    path = _service(ctx).export(args.id, args.format, args.out)
    if args.json:
        print_json({"id": args.id, "format": args.format, "path": str(path)})
    else:
        print(f"exported #{args.id} as {args.format} to {path}")
    return 0


def cmd_remove(args: argparse.Namespace, ctx: ServiceContext) -> int:
    _service(ctx).remove(args.id)
    print(f"removed #{args.id} from the catalogue (your files were not touched)")
    return 0
