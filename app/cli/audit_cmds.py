"""`audit [--json] [--export FILE] [--compare FILE] [--acknowledge]`: re-verify the stored
transparency-log history offline (checkpoints, consistency and inclusion proofs), write the
evidence, check it against another contributor's export (split view), or acknowledge the
recorded failures (kept with their evidence; they no longer fail the audit). `log-key [--set
VKEY] [--json]`: the pinned log keys with their fingerprints, or pin one out of band."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from app.cli.output import lazy_handler
from app.domain.units import plural

EXIT_FAILED = 4  # the verification failed: the registry's data does not hold up


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "audit", help="re-verify the stored rewards history against the registry's log (offline)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--export", type=Path, metavar="FILE", help="write the evidence as JSON")
    p.add_argument(
        "--compare",
        type=Path,
        metavar="FILE",
        help="check the stored checkpoints against another contributor's exported evidence",
    )
    p.add_argument(
        "--acknowledge",
        action="store_true",
        help="mark the recorded verification failures as seen: they and their evidence are "
        "kept (and exported), but no longer fail the audit or show on the Rewards page",
    )
    p.set_defaults(func=lazy_handler(__name__, "cmd_audit"))
    k = sub.add_parser("log-key", help="the pinned transparency-log keys (or pin one)")
    k.add_argument("--set", metavar="VKEY", help="pin this key (name+hash+key) for its origin")
    k.add_argument("--json", action="store_true", help="machine-readable output")
    k.set_defaults(func=lazy_handler(__name__, "cmd_log_key"))


def cmd_audit(args: argparse.Namespace, ctx: Any) -> int:
    from app.cli.output import print_json
    from app.services import transparency
    from app.services.evidence_review import audit_evidence

    acknowledged = transparency.acknowledge_failures(ctx) if args.acknowledge else None
    report = transparency.audit(ctx)
    out: dict[str, Any] = report.to_json()
    if acknowledged is not None:
        out["acknowledged"] = acknowledged
    code = 0 if report.ok else EXIT_FAILED
    evidence = audit_evidence(ctx)  # the stored events behind the entries, re-hashed
    out["evidence"] = evidence.to_json()
    if evidence.problems:
        code = EXIT_FAILED
    if args.export is not None:
        transparency.export_evidence(ctx, args.export)
        out["exported"] = str(args.export)
    if args.compare is not None:
        cmp = transparency.compare(ctx, args.compare)
        out["compare"] = {"compared": cmp.compared, "splitViews": cmp.split_views}
        if not cmp.ok:
            code = EXIT_FAILED
    if args.json:
        print_json(out)
        return code
    if acknowledged is not None:
        print(
            f"Acknowledged {plural(acknowledged, 'recorded failure')}: kept with "
            "their evidence (audit --export FILE writes it), no longer failing the audit"
        )
    if not report.registries:
        print("No transparency-log history stored yet (sync first).")
    for r in report.registries:
        print(
            f"{r['registryKey'][:60]}…: tree size {r['treeSize']:,}, {r['checkpoints']} "
            f"checkpoints, {r['verifiedEntries']:,} entries verified, "
            f"{plural(r['verifiedAcceptances'], 'contribution acceptance')} verified, "
            f"{r['pendingEntries']:,} pending"
        )
        for p in r["problems"]:
            print(f"  FAILED: {p}")
        for f in r["failures"]:
            if f["acknowledgedAt"] is None:
                print(f"  FAILED at sync {f['at']}: {f['what']}: {f['message']}")
            else:
                print(
                    f"  failed at sync {f['at']} (acknowledged {f['acknowledgedAt']}): "
                    f"{f['what']}: {f['message']}"
                )
    if evidence.entries:
        print(
            f"Attribution events: {plural(evidence.events, 'event')} of "
            f"{plural(evidence.entries, 'ledger entry', 'ledger entries')} re-hashed"
        )
    for p in evidence.problems:
        print(f"  FAILED: {p}")
    if args.export is not None:
        print(f"Evidence written to {args.export}")
    if args.compare is not None:
        cmp_out = out["compare"]
        if cmp_out["splitViews"]:
            for sv in cmp_out["splitViews"]:
                print(f"  SPLIT VIEW: two signed trees of size {sv['size']} with different roots")
        else:
            print(f"Compared {plural(cmp_out['compared'], 'checkpoint')}: no split view")
    print("Audit: OK" if code == 0 else "Audit: FAILED")
    return code


def cmd_log_key(args: argparse.Namespace, ctx: Any) -> int:
    from app.cli.output import print_json
    from app.services import transparency

    if args.set:
        transparency.pin_key(ctx, args.set, source="user")
    pins = transparency.all_pins(ctx)
    rows = [
        {
            "origin": p.origin,
            "logKey": p.vkey,
            "fingerprint": transparency.vkey_fingerprint(p.vkey),
            "source": p.source,
            "pinnedAt": p.pinned_at.isoformat(),
        }
        for p in pins
    ]
    if args.json:
        print_json({"keys": rows})
        return 0
    if not rows:
        print("No log key pinned yet (the first sync pins the registry's).")
    for r in rows:
        print(f"{r['origin']}\n  key {r['logKey']}")
        print(f"  fingerprint {r['fingerprint']} ({r['source']})")
    return 0
