"""C2SP tlog-checkpoint: the signed tree head, as the note text

<origin>
<tree size, decimal, no leading zeros>
<base64 root hash>
[extension lines]
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from app.tlog.errors import MalformedError, SignatureError
from app.tlog.merkle import HASH_SIZE, MAX_TREE_SIZE
from app.tlog.note import Note, Signer, Verifier, _b64decode, open_note, sign_note

MAX_ORIGIN_CHARS = 256
MAX_EXTENSION_LINES = 16
_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or len(self.origin) > MAX_ORIGIN_CHARS or "\n" in self.origin:
            raise MalformedError("checkpoint origin must be one non-empty line")
        if not 0 <= self.size < MAX_TREE_SIZE:
            raise MalformedError(f"checkpoint tree size {self.size} is out of range")
        if len(self.root) != HASH_SIZE:
            raise MalformedError("checkpoint root hash is not 32 bytes")
        if len(self.extensions) > MAX_EXTENSION_LINES:
            raise MalformedError("checkpoint has too many extension lines")
        for line in self.extensions:
            if not line or "\n" in line:
                raise MalformedError("checkpoint extension lines must be non-empty lines")

    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii")]
        return "\n".join([*lines, *self.extensions]) + "\n"

    def sign(self, *signers: Signer) -> bytes:
        return sign_note(self.text(), *signers)


def parse_checkpoint_text(text: str) -> Checkpoint:
    if not text.endswith("\n"):
        raise MalformedError("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise MalformedError("checkpoint has fewer than three lines")
    origin, size_s, root_s, *extensions = lines
    if not _SIZE.fullmatch(size_s):
        raise MalformedError(f"checkpoint tree size {size_s[:30]!r} is not a decimal number")
    root = _b64decode(root_s, "checkpoint root hash")
    return Checkpoint(origin, int(size_s), root, tuple(extensions))


def open_checkpoint(
    data: bytes, verifier: Verifier | list[Verifier], origin: str | None = None
) -> tuple[Checkpoint, Note]:
    """Verify a signed checkpoint by the log key(s) and parse it; with ``origin``, the
    checkpoint must be that log's."""
    verifiers = verifier if isinstance(verifier, list) else [verifier]
    note = open_note(data, verifiers)
    cp = parse_checkpoint_text(note.text)
    if origin is not None and cp.origin != origin:
        raise SignatureError(f"checkpoint is for the log {cp.origin[:100]!r}, not {origin!r}")
    return cp, note
