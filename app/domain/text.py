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


def _printable(text: str, allowed: str) -> bool:
    """The fast path (in C): nothing to replace in `text`, apart from the `allowed` ones."""
    if text.isprintable():
        return True
    for ch in allowed:
        if ch in text:
            text = text.replace(ch, "")
    return text.isprintable()


def display_text(value: object, *, newlines: bool = False, max_chars: int | None = None) -> str:
    """`value` as text safe for a terminal or a label: hidden characters become U+FFFD;
    with `newlines`, line feeds (and tabs) are kept; `max_chars` shortens with an ellipsis."""
    text = value if isinstance(value, str) else str(value)
    if not _printable(text, "\n\t" if newlines else ""):
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


def json_display_safe(text: str) -> str:
    """JSON text (json.dumps output) with every hidden character inside its strings written as
    a \\uXXXX escape: the same data for a JSON reader, nothing a terminal would act on."""
    if _printable(text, "\n"):
        return text
    out: list[str] = []
    for ch in text:
        if ch == " " or ch in _JOINERS or ch == "\n" or unicodedata.category(ch) not in _HIDDEN:
            out.append(ch)
        elif ord(ch) > 0xFFFF:  # astral: a UTF-16 surrogate pair, as JSON spells it
            code = ord(ch) - 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    return "".join(out)


def is_display_safe(value: str) -> bool:
    """True if `display_text(value)` would show `value` unchanged (single line)."""
    return display_text(value) == value
