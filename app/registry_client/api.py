"""The registry's contract calls (docs/protocol.md), typed: health, contributions, finalize.

Answers are parsed into small frozen dataclasses here, so an answer of the wrong shape is
"the registry sent an unreadable answer" (RegistryUnavailable) at the edge, not a KeyError
deep in the queue.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from app.domain.errors import RegistryUnavailable
from app.domain.text import display_text
from app.manifest.canonical import is_sha256_hex
from app.registry_client.http import (
    UNREADABLE,
    ApiRefused,
    RegistryHttp,
    RetryPolicy,
    SignerFn,
    SleepFn,
    Timeouts,
    parse_json_object,
)
from app.registry_client.tokens import TokenCache


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    message: str
    path: str | None = None

    def text(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass(frozen=True, slots=True)
class Health:
    status: str
    version: str


@dataclass(frozen=True, slots=True)
class Created:
    """Answer to create: the registry id and the blobs it does not hold yet."""

    id: str
    state: str
    missing_blobs: tuple[str, ...]
    reasons: tuple[Reason, ...]
    already_existed: bool


@dataclass(frozen=True, slots=True)
class ContributionStatus:
    id: str
    state: str  # submitted | pending-review | accepted | rejected
    reasons: tuple[Reason, ...]
    missing_blobs: tuple[str, ...] = ()
    title: str = ""
    datanet: str = ""
    cursor: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


# What a registry id (contribution, model, method) may look like: it goes into URL paths
# and the catalogue, so "../x?y#", spaces, controls and long strings are refused on arrival.
ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._:-]{0,127}")
MAX_TEXT_CHARS = 10_000  # titles, names, messages: longer is cut, never refused


HELD_CHUNK = 10_000  # digests per "which do you hold" request (the registry's limit)
MAX_PAGES = 2000  # pages of one listing per call: 400,000 contributions at 200 a page


def _unreadable(why: str) -> RegistryUnavailable:
    return RegistryUnavailable(UNREADABLE, hint=why)


def too_many_pages(what: str, hint: str = "nothing of them was stored") -> RegistryUnavailable:
    return RegistryUnavailable(
        f"the registry kept sending more pages of {what} (over {MAX_PAGES:,}); stopped",
        hint=hint,
    )


def _str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise _unreadable(f"field {key!r} missing or not text")
    return value


def _text(value: Any) -> str:
    """Free text from the registry (titles, names, notes, reasons), bounded and safe to show:
    hidden characters (ESC, NUL, bidirectional overrides) become U+FFFD as it is read, so no
    view, terminal or export downstream can be spoofed by it."""
    if value is None:
        return ""
    return display_text(str(value)[:MAX_TEXT_CHARS], newlines=True)


def registry_id(value: Any, what: str = "id") -> str:
    """A registry id checked against ID_PATTERN (RegistryUnavailable otherwise)."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise _unreadable(f"field {what!r} is not a registry id")
    return value


def segment(value: str) -> str:
    """`value` as one URL path segment: every reserved character escaped."""
    return quote(value, safe="")


def _strings(body: dict[str, Any], key: str) -> tuple[str, ...]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _unreadable(f"field {key!r} is not a list of text")
    return tuple(value)


def _digests(body: dict[str, Any], key: str) -> tuple[str, ...]:
    value = _strings(body, key)
    if not all(is_sha256_hex(v) for v in value):
        raise _unreadable(f"field {key!r} is not a list of sha256 digests")
    return value


def _reasons(body: dict[str, Any]) -> tuple[Reason, ...]:
    value = body.get("reasons", [])
    if not isinstance(value, list):
        raise _unreadable("field 'reasons' is not a list")
    out: list[Reason] = []
    for r in value:
        if not isinstance(r, dict):
            raise _unreadable("a rejection reason is not an object")
        path = r.get("path")
        out.append(
            Reason(
                _text(r.get("code", ""))[:200],
                _text(r.get("message", "")),
                _text(path) if path else None,
            )
        )
        if len(out) > 10_000:
            raise _unreadable("more than 10,000 rejection reasons")
    return tuple(out)


def parse_status(body: dict[str, Any]) -> ContributionStatus:
    return ContributionStatus(
        id=registry_id(body.get("id"), "id"),
        state=_state(body),
        reasons=_reasons(body),
        missing_blobs=_digests(body, "missingBlobs"),
        title=_text(body.get("title", "")),
        datanet=_text(body.get("datanet", ""))[:200],
        cursor=_text(body.get("cursor", ""))[:200],
        extra=body,
    )


def _state(body: dict[str, Any]) -> str:
    value = _str(body, "state")
    if not ID_PATTERN.fullmatch(value):
        raise _unreadable("field 'state' is not a state name")
    return value


@dataclass(frozen=True, slots=True)
class DatanetInfo:
    """A datanet as the registry describes it (GET /v1/datanets)."""

    id: str
    name: str
    description: str
    owner: str | None
    rules: dict[str, Any]
    rules_version: int


def parse_datanet(body: Any) -> DatanetInfo:
    if not isinstance(body, dict):
        raise _unreadable("a datanet is not an object")
    rules = body.get("rules")
    version = body.get("rulesVersion", 1)
    owner = body.get("owner")
    if not isinstance(rules, dict):
        raise _unreadable("field 'rules' is not an object")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _unreadable("field 'rulesVersion' is not a positive integer")
    if owner is not None and not (isinstance(owner, str) and len(owner) <= 128):
        raise _unreadable("field 'owner' is not a key fingerprint")
    return DatanetInfo(
        id=registry_id(body.get("id"), "id"),
        name=_text(body.get("name", ""))[:200],
        description=_text(body.get("description", "")),
        owner=owner,
        rules=rules,
        rules_version=version,
    )


@dataclass(frozen=True, slots=True)
class ReviewEntry:
    """A contribution waiting for the datanet owner's decision."""

    id: str
    datanet: str
    contributor: str
    title: str
    kind: str
    license: str
    file_count: int
    total_size: int
    parts: tuple[dict[str, Any], ...]
    rules_version: int | None
    reasons: tuple[Reason, ...]
    created_at: str


def _count(body: dict[str, Any], key: str) -> int:
    value = body.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _unreadable(f"field {key!r} is not a count")
    return value


def parse_review_entry(body: Any) -> ReviewEntry:
    if not isinstance(body, dict):
        raise _unreadable("a review entry is not an object")
    parts = body.get("parts", [])
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise _unreadable("field 'parts' is not a list of objects")
    version = body.get("rulesVersion")
    return ReviewEntry(
        id=registry_id(body.get("id"), "id"),
        datanet=_text(body.get("datanet", ""))[:200],
        contributor=_text(body.get("contributor", ""))[:128],
        title=_text(body.get("title", "")),
        kind=_text(body.get("kind", ""))[:32],
        license=_text(body.get("license") or "")[:100],
        file_count=_count(body, "fileCount"),
        total_size=_count(body, "totalSize"),
        parts=tuple(parts[:10_000]),
        rules_version=version
        if isinstance(version, int) and not isinstance(version, bool)
        else None,
        reasons=_reasons(body),
        created_at=_text(body.get("createdAt", ""))[:40],
    )


@dataclass(frozen=True, slots=True)
class BatchResult:
    stored: tuple[str, ...]
    present: tuple[str, ...]
    rejected: dict[str, str]  # sha256 -> reason


class BatchUnsupported(Exception):
    """This registry has no POST /v1/uploads/batch: send small blobs through tus."""


BATCH_PATH = "/v1/uploads/batch"


def batch_body(blobs: Sequence[tuple[str, int, Path | bytes]]) -> bytes:
    """Index length, JSON index, then the blobs' bytes (small files: read whole, unless the
    caller already read them, e.g. with read_if_unchanged)."""
    index = _batch_index(blobs)
    parts = [len(index).to_bytes(4, "big"), index]
    for _sha, size, source in blobs:
        data = source if isinstance(source, bytes) else _read_small(source, size)
        if len(data) != size:
            name = source.name if isinstance(source, Path) else _sha
            raise OSError(f"{name} changed size ({size} → {len(data)} bytes)")
        parts.append(data)
    return b"".join(parts)


def _batch_index(blobs: Sequence[tuple[str, int, Path | bytes]]) -> bytes:
    """The JSON index {"blobs":[{"sha256","size"}…]} written directly: thousands of entries
    per batch, and json.dumps of as many dicts was a visible share of the client's CPU.
    A sha256 that is not plain ASCII letters/digits goes through json.dumps (escaping)."""
    entries = [
        f'{{"sha256":"{sha}","size":{int(size)}}}'
        if sha.isascii() and sha.isalnum()
        else f'{{"sha256":{json.dumps(sha)},"size":{int(size)}}}'
        for sha, size, _ in blobs
    ]
    return ('{"blobs":[' + ",".join(entries) + "]}").encode("utf-8")


def _read_small(path: Path | str, size: int) -> bytes:
    """The whole file, or size+1 bytes if it grew (raw os calls: thousands of tiny files per
    batch, and open()/read_bytes() add an fstat and an ioctl to each)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        return _read_fd(fd, size + 1)
    finally:
        os.close(fd)


def _read_fd(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_if_unchanged(path: str, size: int, mtime_ns: int) -> bytes | None:
    """The bytes of a small file if it still has the size and mtime recorded when it was
    catalogued, else None (it was modified). One open + fstat + read: the check and the read
    are of the same open file, so a file swapped in between cannot slip through.
    Raises OSError (e.g. FileNotFoundError) when it cannot be opened."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        if st.st_size != size or st.st_mtime_ns != mtime_ns:
            return None
        data = os.read(fd, size) if size else b""
        if len(data) < size:  # a short read (rare: e.g. a network file system)
            data += _read_fd(fd, size - len(data))
    finally:
        os.close(fd)
    return data if len(data) == size else None


class RegistryClient:
    """One registry, one session: the contract calls plus `http` for the tus client."""

    def __init__(
        self,
        base_url: str,
        signer: SignerFn | None = None,
        *,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        pool_size: int = 8,
        sleep: SleepFn | None = None,
        tokens: TokenCache | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {}
        if sleep is not None:
            kwargs["sleep"] = sleep
        self.http = RegistryHttp(
            base_url,
            signer,
            timeouts=timeouts,
            retry=retry,
            pool_size=pool_size,
            tokens=tokens,
            **kwargs,
        )
        # The optional reads the registry says it serves (its health answer's `reads`, learned
        # by app.services.registry_identity.RegistryDirectory.learn); none until then.
        self.reads: frozenset[str] = frozenset()

    @property
    def base_url(self) -> str:
        return self.http.base_url

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def health(self, *, retry: bool = True) -> Health:
        body = self.http.json("GET", "/v1/health", auth=False, retry=retry)
        return Health(status=_str(body, "status"), version=str(body.get("version", "")))

    def create_contribution(
        self, envelope: dict[str, Any], manifest: bytes, metadata: dict[str, Any]
    ) -> Created:
        """POST /v1/contributions; idempotent (same envelope → same contribution)."""
        resp = self.http.request(
            "POST",
            "/v1/contributions",
            json={
                "envelope": envelope,
                "manifest": base64.b64encode(manifest).decode("ascii"),
                "metadata": metadata,
            },
            ok=(200, 201),
        )
        body = parse_json_object(resp)
        return Created(
            id=registry_id(body.get("id"), "id"),
            state=_state(body),
            missing_blobs=_digests(body, "missingBlobs"),
            reasons=_reasons(body),
            already_existed=resp.status_code == 200,
        )

    def upload_batch(
        self, contribution_id: str, blobs: Sequence[tuple[str, int, Path | bytes]]
    ) -> BatchResult:
        """Send many small blobs in one request (docs/protocol.md, "Small-blob batches")."""
        body = batch_body(blobs)
        try:
            resp = self.http.request(
                "POST",
                BATCH_PATH,
                params={"contribution": contribution_id},
                data=body,
                headers={"Content-Type": "application/octet-stream"},
                ok=(200,),
            )
        except ApiRefused as exc:
            if exc.status == 405 or (exc.status == 404 and exc.code != "not_found"):
                raise BatchUnsupported(str(exc)) from exc
            if exc.status == 404 and "contribution" not in str(exc).lower():
                raise BatchUnsupported(str(exc)) from exc
            raise
        out = parse_json_object(resp)
        rejected: dict[str, str] = {}
        for r in out.get("rejected", []):
            if isinstance(r, dict):
                rejected[str(r.get("sha256", ""))] = str(r.get("reason", ""))
        return BatchResult(_strings(out, "stored"), _strings(out, "present"), rejected)

    def possession_challenges(self, contribution_id: str, shas: Sequence[str]) -> dict[str, bytes]:
        """Fresh nonces {sha256: 32 bytes} to prove holding these blobs of a contribution
        (docs/protocol.md, "Proof of possession"); only blobs that were asked for are kept."""
        path = f"/v1/contributions/{quote(contribution_id, safe='')}/possession/challenges"
        body = self.http.json("POST", path, json={"blobs": list(shas)}, ok=(200,))
        items = body.get("challenges")
        if not isinstance(items, list):
            raise _unreadable("field 'challenges' is not a list")
        asked, out = set(shas), {}
        for c in items:
            sha = c.get("sha256") if isinstance(c, dict) else None
            nonce = c.get("nonce") if isinstance(c, dict) else None
            if sha not in asked or not isinstance(nonce, str) or len(nonce) != 64:
                raise _unreadable("a possession challenge is not one that was asked for")
            try:
                out[str(sha)] = bytes.fromhex(nonce)
            except ValueError:
                raise _unreadable("a possession nonce is not hex") from None
        return out

    def prove_possession(self, contribution_id: str, proofs: dict[str, str]) -> set[str]:
        """Send {sha256: proof hex}; the blobs the registry now counts as ours (of those sent)."""
        path = f"/v1/contributions/{quote(contribution_id, safe='')}/possession/proofs"
        body = self.http.json(
            "POST",
            path,
            json={"proofs": [{"sha256": s, "proof": p} for s, p in proofs.items()]},
            ok=(200,),
        )
        return set(_strings(body, "proven")) & proofs.keys()

    def datanet_rules(self, datanet: str) -> dict[str, Any]:
        """The rules of one datanet (public: no sign-in), as the registry's JSON."""
        # One try: this is a pre-check, and an unreachable registry must not delay an offline
        # submit (which then queues as usual).
        path = f"/v1/datanets/{segment(datanet)}"
        body = self.http.json("GET", path, auth=False, retry=False)
        rules = body.get("rules")
        if not isinstance(rules, dict):
            raise _unreadable("field 'rules' is not an object")
        return rules

    def datanet(self, datanet: str) -> DatanetInfo:
        """One datanet with its rules and rules version (public; one try, as datanet_rules)."""
        return parse_datanet(
            self.http.json("GET", f"/v1/datanets/{segment(datanet)}", auth=False, retry=False)
        )

    def datanets(self) -> list[DatanetInfo]:
        """Every datanet of the registry (public; one try: the picker falls back to its cache)."""
        body = self.http.json("GET", "/v1/datanets", auth=False, retry=False)
        items = body.get("items")
        if not isinstance(items, list):
            raise _unreadable("field 'items' is not a list")
        return [parse_datanet(item) for item in items]

    def held_digests(self, datanet: str, digests: Sequence[str]) -> set[str]:
        """Which of these sha256s the datanet's accepted contributions already hold (only the
        digests are sent, 10,000 a request)."""
        wanted = sorted(set(digests))
        held: set[str] = set()
        for start in range(0, len(wanted), HELD_CHUNK):
            chunk = wanted[start : start + HELD_CHUNK]
            body = self.http.json(
                "POST",
                f"/v1/datanets/{segment(datanet)}/held",
                json={"digests": chunk},
                auth=False,
                retry=False,
                ok=(200,),
            )
            held |= set(_digests(body, "held")) & set(chunk)
        return held

    def create_datanet(self, body: dict[str, Any]) -> DatanetInfo:
        """POST /v1/datanets: a new datanet owned by our key."""
        return parse_datanet(self.http.json("POST", "/v1/datanets", json=body, ok=(201,)))

    def update_datanet(self, datanet: str, body: dict[str, Any]) -> DatanetInfo:
        """PATCH /v1/datanets/{id} (owner only); new rules bump the rules version."""
        path = f"/v1/datanets/{segment(datanet)}"
        return parse_datanet(self.http.json("PATCH", path, json=body, ok=(200,)))

    def review_queue(self, datanet: str) -> list[ReviewEntry]:
        """GET /v1/datanets/{id}/reviews (owner only): what waits for our decision."""
        body = self.http.json("GET", f"/v1/datanets/{segment(datanet)}/reviews")
        items = body.get("items")
        if not isinstance(items, list):
            raise _unreadable("field 'items' is not a list")
        return [parse_review_entry(item) for item in items]

    def review(self, contribution_id: str, decision: str, note: str) -> str:
        """POST /v1/contributions/{id}/review (datanet owner only); the new state."""
        body = self.http.json(
            "POST",
            f"/v1/contributions/{segment(contribution_id)}/review",
            json={"decision": decision, "note": note},
            ok=(200,),
        )
        return _state(body)

    def finalize(self, contribution_id: str) -> ContributionStatus:
        """Ask the registry to verify and decide; idempotent, so retrying is safe."""
        return parse_status(
            self.http.json(
                "POST", f"/v1/contributions/{segment(contribution_id)}/finalize", ok=(200,)
            )
        )

    def get_contribution(self, contribution_id: str) -> ContributionStatus:
        return parse_status(self.http.json("GET", f"/v1/contributions/{segment(contribution_id)}"))

    def list_mine(
        self, *, after: str | None = None, limit: int = 200
    ) -> Iterator[ContributionStatus]:
        """Every contribution of the caller, page after page (cursor order), at most
        MAX_PAGES pages (a registry that says `hasMore` forever is refused)."""
        cursor = after
        for _page in range(MAX_PAGES):
            params: dict[str, Any] = {"mine": "true", "limit": limit}
            if cursor is not None:
                params["after"] = cursor
            body = self.http.json("GET", "/v1/contributions", params=params)
            items = body.get("items")
            if not isinstance(items, list):
                raise _unreadable("field 'items' is not a list")
            for item in items:
                if not isinstance(item, dict):
                    raise _unreadable("a contribution is not an object")
                yield parse_status(item)
            nxt = body.get("nextCursor")
            if not body.get("hasMore") or not isinstance(nxt, str) or nxt == cursor:
                return
            cursor = nxt
        raise too_many_pages("contributions")
