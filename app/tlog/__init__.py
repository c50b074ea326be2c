"""The transparency-log core shared by the app and the registry (plain Python).

RFC 6962 Merkle trees and proofs (:mod:`.merkle`), the C2SP tlog-tiles layout and a tree kept
as hash tiles (:mod:`.tiles`), C2SP signed notes and keys (:mod:`.note`) and checkpoints
(:mod:`.checkpoint`). Errors are :class:`TlogError` (a KnownError, exit code 4).
"""

from app.tlog.checkpoint import Checkpoint, open_checkpoint, parse_checkpoint_text
from app.tlog.errors import MalformedError, ProofError, SignatureError, TlogError
from app.tlog.merkle import (
    EMPTY_ROOT,
    InclusionBatch,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_inclusion,
    root_of,
    verify_consistency,
    verify_inclusion,
)
from app.tlog.note import Note, Signature, Signer, Verifier, open_note, parse_note, sign_note
from app.tlog.tiles import (
    DirectoryTileStorage,
    HashSource,
    MemoryTileStorage,
    Tile,
    TiledLog,
    TileNotFound,
    TileReader,
    TileStorage,
    decode_bundle,
    encode_bundle,
    entries_path,
    parse_tile_path,
    tile_path,
    tiles_for_size,
)

__all__ = [
    "EMPTY_ROOT",
    "Checkpoint",
    "DirectoryTileStorage",
    "HashSource",
    "InclusionBatch",
    "MalformedError",
    "MemoryTileStorage",
    "MemoryTree",
    "Note",
    "ProofError",
    "Signature",
    "SignatureError",
    "Signer",
    "Tile",
    "TileNotFound",
    "TileReader",
    "TileStorage",
    "TiledLog",
    "TlogError",
    "Verifier",
    "consistency_proof",
    "decode_bundle",
    "encode_bundle",
    "entries_path",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint_text",
    "parse_note",
    "parse_tile_path",
    "root_from_inclusion",
    "root_of",
    "sign_note",
    "tile_path",
    "tiles_for_size",
    "verify_consistency",
    "verify_inclusion",
]
