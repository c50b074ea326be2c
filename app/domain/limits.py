"""Bounded reads of files someone else may have written (envelopes, manifests, key files,
settings, passphrase files): a file larger than its limit, or one that never ends
(`/dev/zero`, a FIFO fed forever), is refused with its size instead of filling memory."""

from __future__ import annotations

from pathlib import Path

KIB = 1024
MIB = 1024 * KIB

MAX_ENVELOPE_BYTES = 16 * MIB  # a DSSE envelope: a statement and a few signatures
MAX_MANIFEST_BYTES = 256 * MIB  # ~1.5 million files
MAX_KEY_FILE_BYTES = 1 * MIB  # an encrypted key file is < 1 KiB
MAX_SETTINGS_BYTES = 1 * MIB
MAX_PASSPHRASE_BYTES = 64 * KIB


class TooLarge(ValueError):
    """More than `limit` bytes: the message names the limit in people's units."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"{what} is larger than {describe_bytes(limit)}")
        self.limit = limit


def describe_bytes(n: int) -> str:
    if n >= MIB and n % MIB == 0:
        return f"{n // MIB} MiB"
    if n >= KIB and n % KIB == 0:
        return f"{n // KIB} KiB"
    return f"{n:,} bytes"


def read_limited(path: Path | str, limit: int, what: str = "the file") -> bytes:
    """The whole file, or TooLarge once more than `limit` bytes came (never reads more than
    limit + 1). OSError (missing, unreadable, a folder) is left to the caller."""
    with open(path, "rb") as fh:
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            chunk = fh.read(min(left, 4 * MIB))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    data = b"".join(chunks)
    if len(data) > limit:
        raise TooLarge(what, limit)
    return data


def read_first_line(path: Path | str, limit: int, what: str = "the file") -> str:
    """The first line of a UTF-8 text file (without its line end), reading at most `limit`
    bytes: TooLarge if no line end comes within them, UnicodeDecodeError if not UTF-8."""
    with open(path, "rb") as fh:
        head = fh.readline(limit + 1)
    if len(head) > limit:
        raise TooLarge(what, limit)
    return head.decode("utf-8").rstrip("\r\n")
