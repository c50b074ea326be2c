"""`datanets [--json]`: the registry's datanets with their owner and rules (cached for offline
use; `submit ID --datanet D` picks one)."""

from __future__ import annotations

import argparse
from typing import Any

from app.cli.output import lazy_handler


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "datanets", help="the registry's datanets and their rules (offline: the cached list)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=lazy_handler(__name__, "cmd_datanets"))


def cmd_datanets(args: argparse.Namespace, ctx: Any) -> int:
    import sys

    from app.cli.output import print_json
    from app.domain.text import display_text
    from app.services.clients import make_client
    from app.services.datanets import DatanetService

    client = make_client(ctx)
    try:
        listing = DatanetService(ctx).listing(client)
    finally:
        client.close()
    if args.json:
        print_json(
            {
                "registry": ctx.registry_url,
                "offline": listing.offline,
                "note": listing.note,
                "datanets": [v.to_json() for v in listing.items],
            }
        )
        return 0
    if listing.note:
        print(listing.note, file=sys.stderr)
    if not listing.items:
        print("no datanets")
    for view in listing.items:
        owner = f"owner {view.owner[:16]}…" if view.owner else "owner: the registry's operator"
        print(f"{display_text(view.id)}  {display_text(view.name)}  ({owner})")
        if view.description:
            print(f"    {display_text(view.description)[:200]}")
        print(f"    rules v{view.rules_version}: " + "; ".join(view.rule_lines()))
    return 0
