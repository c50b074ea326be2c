"""`submit ID`, `upload [--wait]`, `queue`, `sync`, `rewards`: getting contributions there and
seeing what they earn.

Only the parsers live here; the handlers (and the HTTP, SQL and crypto stacks they need) are
imported when a command runs, so every other command starts fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from app.cli.output import lazy_handler

_HANDLERS = "app.cli.upload_handlers"
MAX_CHUNK_MB = 1024
MAX_CONCURRENCY = 64


def _int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high] (else a usage error, exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value

    return parse


def _passphrase_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--passphrase-file", type=Path, metavar="FILE", help="key file passphrase")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("submit", help="sign and queue a catalogue item for the registry")
    p.add_argument("id", type=int, help="catalogue id")
    p.add_argument("--datanet", help="datanet to submit to (default: settings or open-data)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _passphrase_arg(p)
    p.set_defaults(func=lazy_handler(_HANDLERS, "cmd_submit"))

    p = sub.add_parser("upload", help="upload everything queued (resumable)")
    p.add_argument("--wait", action="store_true", help="wait while the registry is offline")
    p.add_argument(
        "--concurrency", type=_int_in(1, MAX_CONCURRENCY), help="blobs uploaded at the same time"
    )
    p.add_argument(
        "--limit-kbps", type=_int_in(0, 10**9), help="bandwidth limit in KB/s (0 = none)"
    )
    p.add_argument("--chunk-mb", type=_int_in(1, MAX_CHUNK_MB), help="tus chunk size in MiB")
    _passphrase_arg(p)
    p.set_defaults(func=lazy_handler(_HANDLERS, "cmd_upload"))

    p = sub.add_parser("queue", help="show the upload queue")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("action", nargs="?", choices=("pause", "resume", "retry", "cancel"))
    p.add_argument("item", nargs="?", type=int, help="catalogue id for the action")
    p.set_defaults(func=lazy_handler(_HANDLERS, "cmd_queue"))

    p = sub.add_parser(
        "sync", help="refresh contribution states, usage and rewards from the registry"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--no-evidence",
        action="store_true",
        help="skip this sync's share of reading and checking the events behind the rewards "
        "(by default a bounded share, after the sync's report)",
    )
    _passphrase_arg(p)
    p.set_defaults(func=lazy_handler(_HANDLERS, "cmd_sync"))

    p = sub.add_parser("rewards", help="usage and rewards kept on this computer (offline)")
    p.add_argument("id", nargs="?", type=int, help="catalogue id (default: all contributions)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--csv",
        metavar="FILE",
        help="write one row per day, contribution, model and method (events, effective "
        "usage, earned micro-units) to FILE",
    )
    p.add_argument("--since", type=_day, metavar="YYYY-MM-DD", help="first day (UTC) of --csv")
    p.add_argument("--until", type=_day, metavar="YYYY-MM-DD", help="last day (UTC) of --csv")
    p.set_defaults(func=lazy_handler(_HANDLERS, "cmd_rewards"))


def _day(text: str) -> date:
    """A --since/--until day: YYYY-MM-DD (exit 2 with this message otherwise)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD)") from None
