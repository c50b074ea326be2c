"""display_text (what the CLI and GUI show of text from elsewhere), bounded file reads and
settings that fall back to defaults instead of failing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.domain.limits import TooLarge, read_first_line, read_limited
from app.domain.text import REPLACEMENT, display_text, is_display_safe, json_display_safe
from app.settings import UPLOAD_CHUNK_MB, UPLOAD_CONCURRENCY, Settings


@pytest.mark.parametrize(
    "hidden",
    [
        "\x1b",  # ESC: terminal escape sequences
        "\x00",  # NUL
        "\x07",  # BEL
        "\x7f",  # DEL
        "\x9b",  # C1 CSI
        "\u202e",  # right-to-left override
        "\u2066",  # left-to-right isolate
        "\u200b",  # zero-width space
        "\u2028",  # line separator
        "\ufeff",  # byte order mark / zero-width no-break space
        "\udc80",  # lone surrogate
        "\n",
        "\r",
    ],
)
def test_hidden_characters_are_replaced(hidden: str) -> None:
    shown = display_text(f"a{hidden}b")
    assert shown == f"a{REPLACEMENT}b"
    assert not is_display_safe(f"a{hidden}b")


def test_ordinary_text_is_unchanged() -> None:
    for text in ("Birds 2026 — ok", "日本語のデータ", "عربى", "👩‍💻 team", "tab-free", "a b"):
        assert display_text(text) == text
        assert is_display_safe(text)


def test_newlines_and_tabs_only_when_asked_and_length_bound() -> None:
    assert display_text("a\n\tb\x1b", newlines=True) == f"a\n\tb{REPLACEMENT}"
    assert display_text("x" * 50, max_chars=10) == "x" * 9 + "…"
    assert display_text(ValueError("bad\x1b[2J")) == f"bad{REPLACEMENT}[2J"


def test_read_limited_refuses_what_never_ends(tmp_path: Path) -> None:
    with pytest.raises(TooLarge, match="larger than 1 MiB"):
        read_limited("/dev/zero", 1024 * 1024, "the envelope")
    f = tmp_path / "f"
    f.write_bytes(b"x" * 100)
    assert read_limited(f, 100) == b"x" * 100
    with pytest.raises(TooLarge):
        read_limited(f, 99)


def test_read_first_line_is_bounded(tmp_path: Path) -> None:
    with pytest.raises(TooLarge):
        read_first_line("/dev/zero", 64 * 1024)
    f = tmp_path / "pw"
    f.write_bytes(b"secret\r\nsecond\n")
    assert read_first_line(f, 64) == "secret"


@pytest.mark.parametrize(
    "content",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"upload.chunkMB": ' + "[" * 5000 + "]" * 5000 + "}",
        '{"upload.chunkMB": 1e400}',
        '{"upload.chunkMB": NaN}',
        "x" * (2 * 1024 * 1024),
        "\x00\xff",
    ],
    ids=["deep", "deep-value", "inf", "nan", "huge", "binary"],
)
def test_bad_settings_files_give_the_defaults(tmp_path: Path, content: str) -> None:
    (tmp_path / Settings.FILE_NAME).write_text(content, "latin-1")
    settings = Settings(tmp_path)
    assert settings.get(UPLOAD_CHUNK_MB) == UPLOAD_CHUNK_MB.default


@pytest.mark.parametrize("value", [-1, 0, 10**6, True])
def test_out_of_range_numbers_in_settings_give_the_default(tmp_path: Path, value: object) -> None:
    stored = {UPLOAD_CHUNK_MB.key: value, UPLOAD_CONCURRENCY.key: value}
    (tmp_path / Settings.FILE_NAME).write_text(json.dumps(stored))
    settings = Settings(tmp_path)
    assert settings.get(UPLOAD_CHUNK_MB) == UPLOAD_CHUNK_MB.default
    assert settings.get(UPLOAD_CONCURRENCY) == UPLOAD_CONCURRENCY.default


def test_json_output_keeps_the_data_and_hides_nothing() -> None:
    data = {"t": "a\u202eb\x1b[2J\x9b\x7f\U000e0001 日本 👩\u200d💻", "n": ["\u2028"]}
    for text in (json.dumps(data, ensure_ascii=False), json.dumps(data, indent=2)):
        safe = json_display_safe(text)
        assert json.loads(safe) == data
        assert display_text(safe, newlines=True) == safe  # nothing left to hide
