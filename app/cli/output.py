"""Printing helpers shared by CLI commands: JSON for scripts, plain text for people."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from typing import Any

from app.domain.text import json_display_safe
from app.domain.units import format_size
from app.domain.units import plural as units_plural


def print_json(obj: Any) -> None:
    """Indented for a person at a terminal; compact (C encoder, ~10x faster) for scripts."""
    if sys.stdout.isatty():
        text = json.dumps(obj, indent=2, ensure_ascii=False, default=str)
    else:
        text = json.dumps(obj, ensure_ascii=False, default=str, separators=(",", ":"))
    sys.stdout.write(json_display_safe(text))  # hidden characters as JSON escapes
    sys.stdout.write("\n")


def human_size(n: int) -> str:
    """The same size text as the GUI (app.domain.units)."""
    return format_size(n)


def plural(n: int, noun: str) -> str:
    return units_plural(n, noun)


def lazy_handler(module: str, name: str) -> Callable[[Any, Any], int]:
    """A subcommand handler imported on first call, so `--help` and `list` stay fast."""

    def run(args: Any, ctx: Any) -> int:
        handler = getattr(importlib.import_module(module), name)
        code: int = handler(args, ctx)
        return code

    return run
