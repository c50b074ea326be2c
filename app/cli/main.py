"""`contributor-desk` entry point: GUI by default, subcommands for scripting.

Each app/cli/*_cmds.py module contributes subcommands through `register(subparsers)`; a
handler takes (args, ctx) and returns an exit code. Expected failures (KnownError) print one
line `error: …` on stderr with the error's exit code; anything else is a bug: exit 1, with the
traceback only under --debug.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from app import __version__
from app.domain.errors import KnownError

COMMAND_MODULES = (
    "app.cli.catalogue_cmds",
    "app.cli.identity_cmds",
    "app.cli.upload_cmds",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"error: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="contributor-desk",
        description="Catalogue, sign and upload your datasets; see how models use them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--data-dir", type=Path, help="data folder (portable mode)")
    parser.add_argument("--registry", metavar="URL", help="registry base URL")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument(
        "--demo", action="store_true", help="start the GUI with an embedded demo registry"
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="open the main window offscreen, run a scripted round trip, exit",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from app.services.context import ServiceContext

    ctx: ServiceContext | None = None
    try:
        ctx = ServiceContext(args.data_dir, args.registry)
        if args.command is None:
            from app.ui.app import run_gui  # Qt is imported only for the GUI

            return run_gui(ctx, demo=args.demo, self_test=args.self_test, debug=args.debug)
        code: int = args.func(args, ctx)
        return code
    except KnownError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except Exception as exc:  # a bug: one line, traceback only with --debug
        if args.debug:
            traceback.print_exc()
        sys.stderr.write(f"error: internal error: {type(exc).__name__}: {exc}\n")
        sys.stderr.write("error: this is a bug; run again with --debug for details\n")
        return 1
    finally:
        if ctx is not None:
            ctx.close()
