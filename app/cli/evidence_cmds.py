"""`evidence ID [--json]`: every attributed event of one contribution with its model, time,
method, earned amount and the status of its evidence checked against your files (offline; the
events are fetched by `sync`). Text spans are shown from the local file with their line.

Exit 0; 4 when the registry's evidence is false for an unchanged file of yours (a span that
does not hash to what it claims, or a file that is not in the contribution); 2 for an unknown
or ambiguous ID; 3 without an identity."""

from __future__ import annotations

import argparse
from typing import Any

from app.cli.output import lazy_handler

EXIT_FALSE_CLAIM = 4
SPAN_SHOWN = 160


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "evidence",
        help="the events behind a contribution's rewards, their evidence checked against "
        "your files (offline)",
    )
    p.add_argument("id", metavar="ID", help="catalogue id, or the registry's contribution id")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=lazy_handler(__name__, "cmd_evidence"))


def _one_line(text: str) -> str:
    flat = text.replace("\r", "").replace("\n", "⏎")
    return flat if len(flat) <= SPAN_SHOWN else flat[: SPAN_SHOWN - 1] + "…"


def cmd_evidence(args: argparse.Namespace, ctx: Any) -> int:
    from app.cli.output import plural, print_json
    from app.domain.errors import IdentityError
    from app.domain.money import format_micro
    from app.domain.units import method_label
    from app.services.evidence_check import FALSE_CLAIMS, Status, label
    from app.services.evidence_review import contribution_evidence
    from app.services.rewards import current_owner

    owner = current_owner(ctx)
    if owner is None:
        raise IdentityError(
            "no identity yet: rewards and their evidence belong to your key",
            hint="run: contributor-desk identity init",
        )
    view = contribution_evidence(ctx, owner, args.id, demo=bool(getattr(args, "demo", False)))
    false_claims = sum(n for s, n in view.counts.items() if s in FALSE_CLAIMS)
    code = EXIT_FALSE_CLAIM if false_claims else 0
    if args.json:
        print_json({**view.to_json(), "falseClaims": false_claims})
        return code
    name = f"#{view.item_id} {view.title}" if view.item_id is not None else view.title
    print(f"Evidence for {name} ({view.contribution_id}) at {view.registry}")
    if view.counts:
        order = [s for s in Status if s in view.counts]
        print("  " + " · ".join(f"{view.counts[s]:,} {label(s)}" for s in order))
    if view.entries_left:
        print(
            f"  {view.entries_left:,} ledger entries not read to the end yet "
            f"({view.pending_events:,} events read so far): sync again to continue"
        )
    if not view.rows:
        print("No attributed events checked yet." + ("" if view.entries_left else
              " Run: contributor-desk sync"))  # fmt: skip
    for r in view.rows:
        false = r.status in FALSE_CLAIMS
        print(
            f"{'!!' if false else '  '}{r.at:%Y-%m-%d %H:%M}  {r.model_name}  "
            f"{method_label(r.method)}  {format_micro(r.amount_micro)}  "
            f"{r.status_label.upper() if false else r.status_label}"
        )
        if r.offset is not None and r.length is not None:
            where = r.local_path or r.file_path or (r.file_sha256 or "")[:16]
            at = f"line {r.line}" if r.line is not None else f"bytes {r.offset}+{r.length}"
            print(f"      {where} {at}" + (f": {_one_line(r.span)}" if r.span else ""))
        if r.excerpt:
            print(f"      model output: {_one_line(r.excerpt)}")
    if false_claims:
        print(
            f"{plural(false_claims, 'event')} {'carries' if false_claims == 1 else 'carry'} "
            "evidence that is false for your unchanged files: "
            "the registry or its operator claims a match that is not there"
        )
    return code
