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
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from app import __version__
from app.domain.errors import KnownError, UsageError
from app.domain.text import display_text

COMMAND_MODULES = (
    "app.cli.audit_cmds",
    "app.cli.catalogue_cmds",
    "app.cli.datanet_cmds",
    "app.cli.evidence_cmds",
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
        "--demo",
        action="store_true",
        help="start the GUI with an embedded demo registry (with `rewards`: show its rewards)",
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


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what `yes | head -1` reports for `yes`


class _DisplaySafeStream:
    """stdout for the CLI commands: every text written goes through display_text (line
    feeds and tabs kept), so escape sequences, NULs and bidi overrides that came from a
    registry, a file name or an envelope never reach the terminal as themselves. JSON output
    is unaffected in meaning: json.dumps already escapes control characters."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(display_text(text, newlines=True))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _check_data_dir(data_dir: Path | None) -> None:
    from app.settings import default_data_dir

    folder = data_dir if data_dir is not None else default_data_dir()
    if folder.exists() and not folder.is_dir():
        raise UsageError(
            f"the data folder {display_text(folder)} is a file, not a folder",
            hint="pass --data-dir with a folder (it is created if missing)",
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot use the data folder {display_text(folder)}: {exc.strerror or exc}",
            hint="pass --data-dir with a folder you can write to",
        ) from None


def _quiet_broken_pipe() -> int:
    """The reader of our output went away (`… | head`): stop quietly, as other tools do. The
    rest of the output goes to /dev/null so the interpreter's final flush does not fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ else 1)
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        return _run(args)
    original = sys.stdout
    sys.stdout = _DisplaySafeStream(original)
    try:
        code = _run(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _quiet_broken_pipe()
    finally:
        sys.stdout = original


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from app.services.context import ServiceContext

    ctx: ServiceContext | None = None
    try:
        _check_data_dir(args.data_dir)
        ctx = ServiceContext(args.data_dir, args.registry)
        if args.command is None:
            from app.ui.app import run_gui  # Qt is imported only for the GUI

            return run_gui(ctx, demo=args.demo, self_test=args.self_test, debug=args.debug)
        code: int = args.func(args, ctx)
        return code
    except BrokenPipeError:
        raise  # main() ends quietly
    except KnownError as exc:
        sys.stderr.write(f"error: {display_text(exc)}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except Exception as exc:  # a bug: one line, traceback only with --debug
        if args.debug:
            traceback.print_exc()
        sys.stderr.write(f"error: internal error: {type(exc).__name__}: {display_text(exc)}\n")
        sys.stderr.write("error: this is a bug; run again with --debug for details\n")
        return 1
    finally:
        if ctx is not None:
            ctx.close()
