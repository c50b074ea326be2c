"""Prove holding a blob instead of sending it, when another key already stored the same bytes.

The registry stores each blob once, but only lets a key rely on a stored blob that the key sent
or proved it holds (docs/protocol.md, "Proof of possession"), and it lists every blob the key
has not, stored or not. So after create, for the larger missing blobs, the app asks for a
nonce per blob and answers with a digest over the nonce and the file's content (at most ~1 MiB
of each file is read: app/manifest/possession.py). Blobs the registry then counts as ours are
not uploaded; the others (not stored there, or a file that changed) go through the upload
queue as before. Small blobs are simply uploaded: a batch costs about what a proof does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from sqlalchemy import select

from app.domain.errors import KnownError, RegistryUnavailable
from app.manifest.possession import file_proof
from app.registry_client.api import RegistryClient
from app.services.context import ServiceContext
from app.store.models import FileEntry, Item

PROVE_MIN_BYTES = 256 * 1024  # blobs up to this size are uploaded (batched), never proved
CHUNK = 64  # blobs per challenge + proof exchange (the registry's per-request bound)

log = logging.getLogger(__name__)


def prove_held(
    ctx: ServiceContext,
    client: RegistryClient,
    item_id: int,
    registry_id: str,
    missing: Sequence[str],
) -> set[str]:
    """The missing blobs the registry now counts as this key's, without sending them.

    Best effort: a file that changed since it was catalogued or cannot be read, or a registry
    that refuses or does not know these routes, leaves the blob to be uploaded. Raises
    RegistryUnavailable (try the whole create again later)."""
    wanted = set(missing)
    with ctx.db.session() as s:
        root = s.get_one(Item, item_id).source_path
        rows = s.execute(
            select(FileEntry.path, FileEntry.size, FileEntry.sha256, FileEntry.mtime_ns).where(
                FileEntry.item_id == item_id, FileEntry.size > PROVE_MIN_BYTES
            )
        ).all()
    candidates: dict[str, tuple[str, int, int]] = {}
    for rel, size, sha, mtime_ns in rows:
        if sha in wanted and sha not in candidates:
            candidates[sha] = (os.path.join(root, rel), size, mtime_ns)
    proven: set[str] = set()
    shas = sorted(candidates)
    for start in range(0, len(shas), CHUNK):
        part = shas[start : start + CHUNK]
        try:
            nonces = client.possession_challenges(registry_id, part)
        except RegistryUnavailable:
            raise
        except KnownError as exc:
            log.info("possession not proved (blobs will be uploaded): %s", exc)
            return proven
        proofs: dict[str, str] = {}
        for sha, nonce in nonces.items():
            path, size, mtime_ns = candidates[sha]
            try:
                st = os.stat(path)
                if st.st_size == size and st.st_mtime_ns == mtime_ns:
                    proofs[sha] = file_proof(path, nonce, sha, size)
            except OSError as exc:
                log.info("%s not proved (it will be uploaded): %s", path, exc)
        if not proofs:
            continue
        try:
            proven |= client.prove_possession(registry_id, proofs)
        except RegistryUnavailable:
            raise
        except KnownError as exc:
            log.info("possession not proved (blobs will be uploaded): %s", exc)
            return proven
    return proven
