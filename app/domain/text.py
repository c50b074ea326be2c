"""Text from elsewhere (a registry, a file name, a signed envelope) made safe to display.

A terminal obeys escape sequences (ESC), a NUL can cut a line short, and bidirectional
overrides (U+202E…) make text read differently from what it is. `display_text` replaces every
control, format, separator and surrogate character with U+FFFD, so what is shown is what is
there; it has no Qt dependency, so the CLI and the GUI use the same rule.
"""

from __future__ import annotations

import unicodedata

REPLACEMENT = "\ufffd"
# Categories never shown as themselves: controls (C0, DEL, C1: ESC, NUL…), format characters
# (bidi overrides and isolates, zero-width spaces), line/paragraph separators, surrogates,
# private use and unassigned code points.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Format characters that only join glyphs (emoji sequences, Indic and Arabic scripts).
_JOINERS = frozenset({"\u200c", "\u200d"})


def display_text(value: object, *, newlines: bool = False, max_chars: int | None = None) -> str:
    """`value` as text safe for a terminal or a label: hidden characters become U+FFFD;
    with `newlines`, line feeds (and tabs) are kept; `max_chars` shortens with an ellipsis."""
    text = value if isinstance(value, str) else str(value)
    if not text.isprintable():
        text = "".join(
            ch
            if ch == " "
            or ch in _JOINERS
            or (newlines and ch in "\n\t")
            or unicodedata.category(ch) not in _HIDDEN
            else REPLACEMENT
            for ch in text
        )
    if max_chars is not None and len(text) > max_chars:
        text = text[: max(0, max_chars - 1)] + "…"
    return text


def is_display_safe(value: str) -> bool:
    """True if `display_text(value)` would show `value` unchanged (single line)."""
    return display_text(value) == value
