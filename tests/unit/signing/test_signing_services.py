"""IdentityService and SigningService against a real catalogue and an isolated keyring.

After every identity operation the data dir and HOME are searched for the private key in any
encoding: only the (test stand-in for the) OS keyring may hold it.
"""

from __future__ import annotations

import hashlib
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from keyring.backends import fail
from keyrings.alt.file import PlaintextKeyring
from sqlalchemy import select

from app.domain.errors import (
    IdentityError,
    NotFoundError,
    UsageError,
    VerificationError,
)
from app.manifest.canonical import Manifest, ManifestEntry
from app.services.context import ServiceContext
from app.services.identity import IdentityService, PassphraseRequired
from app.services.signing import SigningService
from app.signing import dsse
from app.signing.identity import fingerprint, private_raw
from app.signing.keyfile import read_key_file
from app.signing.keystore import KeyStore
from app.signing.rotation import verify_rotation
from app.store.models import Envelope, HistoryEntry, Identity, Item, ManifestRecord
from tests.support.keyrings import find_key_leaks

PASS = "a long enough passphrase"
REGISTRY = "http://127.0.0.1:8765"


@pytest.fixture
def ctx(data_dir: Path, isolated_keyring: Path) -> Iterator[ServiceContext]:
    c = ServiceContext(data_dir)
    yield c
    c.close()


def _no_leaks(svc: IdentityService, ctx: ServiceContext, tmp_path: Path, pw: str = PASS) -> None:
    key = svc.load_signer(pw)
    leaks = find_key_leaks(
        private_raw(key), [ctx.data_dir, tmp_path / "home"], exclude=[tmp_path / "keyring"]
    )
    assert leaks == []


def make_item(ctx: ServiceContext, folder: Path, *, state: str = "draft") -> int:
    """Catalogue `folder` directly through the store (what `add` would write)."""
    entries = [
        ManifestEntry(
            p.relative_to(folder).as_posix(),
            p.stat().st_size,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    ]
    m = Manifest.from_entries(entries)
    with ctx.db.session() as s:
        item = Item(
            kind="dataset",
            title="Birds",
            license="CC0-1.0",
            source_path=str(folder),
            manifest_root=m.root,
            manifest_digest=m.digest(),
            state=state,
        )
        s.add(item)
        s.flush()
        s.add(
            ManifestRecord(
                item_id=item.id, root=m.root, digest=m.digest(), canonical=m.canonical_bytes()
            )
        )
        return item.id


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "birds"
    (d / "img").mkdir(parents=True)
    (d / "img" / "a.jpg").write_bytes(b"\xff\xd8 sparrow")
    (d / "img" / "b.jpg").write_bytes(b"\xff\xd8 robin")
    (d / "labels.csv").write_text("file,label\na.jpg,sparrow\nb.jpg,robin\n")
    return d


# -- identity ---------------------------------------------------------------------------------


def test_init_stores_key_in_secure_keyring(
    ctx: ServiceContext, isolated_keyring: Path, tmp_path: Path
) -> None:
    svc = IdentityService(ctx)
    info = svc.init()
    assert info.storage == "keyring" and info.key_file is None
    assert "FileTestKeyring" in info.backend
    shown = svc.show()
    assert shown["fingerprint"] == info.fingerprint
    assert shown["publicKey"] == info.public_key and len(info.public_key) == 64
    assert shown["backend"] == info.backend
    assert info.fingerprint in (isolated_keyring / "keyring.json").read_text()
    assert not (ctx.data_dir / "identity.key").exists()
    with ctx.db.session() as s:
        rows = s.scalars(select(Identity)).all()
        assert [(r.fingerprint, r.active, r.storage) for r in rows] == [
            (info.fingerprint, True, "keyring")
        ]
    _no_leaks(svc, ctx, tmp_path)
    with pytest.raises(IdentityError, match="already have an identity"):
        svc.init()


def test_show_without_identity(ctx: ServiceContext) -> None:
    with pytest.raises(IdentityError, match="no identity yet"):
        IdentityService(ctx).show()
    with pytest.raises(IdentityError, match="no identity yet"):
        IdentityService(ctx).load_signer()


@pytest.mark.parametrize("backend", [fail.Keyring, PlaintextKeyring])
def test_insecure_backend_offers_encrypted_key_file(
    ctx: ServiceContext, tmp_path: Path, backend: type
) -> None:
    instance = backend()
    alt_file = tmp_path / "alt-keyring.cfg"
    if isinstance(instance, PlaintextKeyring):  # the real keyrings.alt backend, in tmp_path
        instance.file_path = str(alt_file)
    svc = IdentityService(ctx, KeyStore(instance))
    with pytest.raises(PassphraseRequired, match="does not protect secrets") as exc:
        svc.init()
    assert "encrypted key file" in str(exc.value)
    assert svc.current() is None  # nothing half-created
    info = svc.init(PASS)
    assert info.storage == "encrypted-file"
    assert "does not protect secrets" in info.note and "identity.key" in info.note
    path = ctx.data_dir / "identity.key"
    assert info.key_file == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not alt_file.exists()  # the plaintext backend never received the key
    with pytest.raises(PassphraseRequired, match="passphrase is needed"):
        svc.load_signer()
    with pytest.raises(IdentityError, match="wrong passphrase"):
        svc.load_signer("not the passphrase")
    assert fingerprint(svc.load_signer(lambda: PASS)) == info.fingerprint
    _no_leaks(svc, ctx, tmp_path)


def test_locked_keyring_offers_file_then_refuses_to_read(
    ctx: ServiceContext, isolated_keyring: Path, tmp_path: Path
) -> None:
    (isolated_keyring / "LOCKED").touch()
    svc = IdentityService(ctx)
    with pytest.raises(PassphraseRequired, match="is locked"):
        svc.init()
    info = svc.init(PASS)
    assert info.storage == "encrypted-file"
    _no_leaks(svc, ctx, tmp_path)

    other = ServiceContext(tmp_path / "data2")
    (isolated_keyring / "LOCKED").unlink()
    svc2 = IdentityService(other)
    svc2.init()
    (isolated_keyring / "LOCKED").touch()
    with pytest.raises(IdentityError, match="keyring .* is locked"):
        svc2.load_signer()
    other.close()


def test_missing_key_in_keyring_is_explained(ctx: ServiceContext) -> None:
    svc = IdentityService(ctx)
    info = svc.init()
    KeyStore().delete(info.fingerprint)
    with pytest.raises(IdentityError, match="not in the keyring.*identity import"):
        svc.load_signer()


def test_export_and_import_backup(
    ctx: ServiceContext, isolated_keyring: Path, tmp_path: Path
) -> None:
    svc = IdentityService(ctx)
    info = svc.init()
    backup = tmp_path / "home" / "backup.key"
    svc.export(backup, PASS)
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    _no_leaks(svc, ctx, tmp_path)
    with pytest.raises(IdentityError, match="too short"):
        svc.export(tmp_path / "x.key", "short")

    # A new machine: fresh data dir, empty keyring.
    KeyStore().delete(info.fingerprint)
    fresh = ServiceContext(tmp_path / "data2")
    svc2 = IdentityService(fresh)
    with pytest.raises(IdentityError, match="wrong passphrase"):
        svc2.import_(backup, "wrong passphrase!")
    doc = json.loads(backup.read_text())
    doc["ciphertext"] = doc["ciphertext"][::-1]
    corrupt = tmp_path / "corrupt.key"
    corrupt.write_text(json.dumps(doc))
    with pytest.raises(IdentityError, match="is corrupt"):
        svc2.import_(corrupt, PASS)
    assert svc2.current() is None
    imported = svc2.import_(backup, PASS)
    assert imported.fingerprint == info.fingerprint and imported.storage == "keyring"
    assert fingerprint(svc2.load_signer()) == info.fingerprint
    _no_leaks(svc2, fresh, tmp_path)
    fresh.close()


def test_import_into_insecure_keyring_writes_encrypted_file(
    ctx: ServiceContext, tmp_path: Path
) -> None:
    svc = IdentityService(ctx)
    info = svc.init()
    backup = tmp_path / "backup.key"
    svc.export(backup, PASS)
    fresh = ServiceContext(tmp_path / "data2")
    svc2 = IdentityService(fresh, KeyStore(fail.Keyring()))
    imported = svc2.import_(backup, PASS)
    assert imported.storage == "encrypted-file"
    assert fingerprint(svc2.load_signer(PASS)) == info.fingerprint
    _no_leaks(svc2, fresh, tmp_path)
    fresh.close()


def test_rotation_keeps_old_signatures_verifiable(
    ctx: ServiceContext, folder: Path, tmp_path: Path
) -> None:
    ids = IdentityService(ctx)
    old = ids.init()
    signing = SigningService(ctx, ids)
    item_id = make_item(ctx, folder)
    before = signing.sign_item(item_id, registry_url=REGISTRY, datanet="birds")
    new, statement = ids.rotate()
    assert new.fingerprint != old.fingerprint and new.rotated_from == old.fingerprint
    assert verify_rotation(statement) == (old.fingerprint, new.fingerprint)
    assert ids.show()["fingerprint"] == new.fingerprint
    with ctx.db.session() as s:
        rows = {r.fingerprint: r for r in s.scalars(select(Identity))}
        assert not rows[old.fingerprint].active and rows[new.fingerprint].active
        assert rows[new.fingerprint].rotation_statement == statement
    old_env = json.dumps(before.envelope).encode()
    assert signing.verify_envelope_bytes(old_env).keyid == old.fingerprint
    after = signing.sign_item(item_id, registry_url=REGISTRY, datanet="birds")
    assert after.keyid == new.fingerprint
    _no_leaks(ids, ctx, tmp_path)


def test_rotation_with_key_files(ctx: ServiceContext, tmp_path: Path) -> None:
    ids = IdentityService(ctx, KeyStore(fail.Keyring()))
    old = ids.init(PASS)
    new, statement = ids.rotate(PASS, unlock=PASS)
    assert verify_rotation(statement) == (old.fingerprint, new.fingerprint)
    assert new.key_file == str(ctx.data_dir / "identity.key")
    retired = ctx.data_dir / f"identity-{old.fingerprint[:16]}.key"
    assert retired.exists()
    assert fingerprint(read_key_file(retired, PASS)) == old.fingerprint
    assert fingerprint(ids.load_signer(PASS)) == new.fingerprint
    _no_leaks(ids, ctx, tmp_path)


# -- signing and verifying --------------------------------------------------------------------


def test_sign_item_moves_draft_to_signed_in_one_go(ctx: ServiceContext, folder: Path) -> None:
    ids = IdentityService(ctx)
    info = ids.init()
    item_id = make_item(ctx, folder)
    result = SigningService(ctx, ids).sign_item(item_id, registry_url=REGISTRY, datanet="birds")
    assert result.keyid == info.fingerprint
    env = dsse.Envelope.from_dict(result.envelope)
    statement = json.loads(env.payload)
    assert (
        statement["subject"][0]["digest"]["sha256"] == hashlib.sha256(result.manifest).hexdigest()
    )
    assert statement["predicate"]["registry"] == REGISTRY
    assert statement["predicate"]["datanet"] == "birds"
    assert statement["predicate"]["title"] == "Birds"
    with ctx.db.session() as s:
        item = s.get(Item, item_id)
        assert item is not None and item.state == "signed" and item.datanet == "birds"
        history = s.scalars(select(HistoryEntry).where(HistoryEntry.item_id == item_id)).all()
        assert [(h.from_state, h.to_state, h.event) for h in history] == [
            ("draft", "signed", "signed")
        ]
        stored = s.scalars(select(Envelope)).one()
        assert stored.envelope == result.envelope and stored.keyid == info.fingerprint


def test_sign_refuses_unknown_and_submitted_items(ctx: ServiceContext, folder: Path) -> None:
    IdentityService(ctx).init()
    signing = SigningService(ctx)
    with pytest.raises(NotFoundError, match="no item #99"):
        signing.sign_item(99, registry_url=REGISTRY, datanet="")
    item_id = make_item(ctx, folder, state="submitted")
    with pytest.raises(UsageError, match="is submitted; it can no longer be signed"):
        signing.sign_item(item_id, registry_url=REGISTRY, datanet="")
    with ctx.db.session() as s:
        assert s.scalars(select(Envelope)).all() == []
        assert s.scalars(select(HistoryEntry)).all() == []


@pytest.fixture
def signed(ctx: ServiceContext, folder: Path, tmp_path: Path) -> tuple[Path, Path]:
    IdentityService(ctx).init()
    item_id = make_item(ctx, folder)
    result = SigningService(ctx).sign_item(item_id, registry_url=REGISTRY, datanet="birds")
    env_path, manifest_path = tmp_path / "e.json", tmp_path / "manifest.json"
    env_path.write_text(json.dumps(result.envelope))
    manifest_path.write_bytes(result.manifest)
    return env_path, manifest_path


def test_verify_with_manifest_and_data_folder(
    ctx: ServiceContext, signed: tuple[Path, Path], folder: Path
) -> None:
    env_path, manifest_path = signed
    result = SigningService(ctx).verify_envelope_file(
        env_path, manifest_path, folder, registry=REGISTRY + "/", datanet="birds"
    )
    assert result.ok, result.problems
    assert result.keyid == IdentityService(ctx).show()["fingerprint"]
    text = " | ".join(result.checked)
    assert "received payload" in text and "manifest digest" in text and "3 files in" in text
    # Without --manifest the catalogue's copy of the signed manifest is used.
    assert SigningService(ctx).verify_envelope_file(env_path, None, folder).ok


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: (d / "labels.csv").write_text("file,label\na.jpg,sparrow\nb.jpg,robix\n"),
            ("labels.csv", "content differs"),
        ),
        (lambda d: (d / "img" / "c.jpg").write_bytes(b"new"), ("img/c.jpg", "extra")),
        (lambda d: (d / "img" / "a.jpg").unlink(), ("img/a.jpg", "missing")),
    ],
    ids=["byte-changed", "file-added", "file-removed"],
)
def test_data_folder_no_longer_matching(
    ctx: ServiceContext,
    signed: tuple[Path, Path],
    folder: Path,
    change: object,
    expected: tuple[str, str],
) -> None:
    env_path, manifest_path = signed
    change(folder)  # type: ignore[operator]
    result = SigningService(ctx).verify_envelope_file(env_path, manifest_path, folder)
    assert not result.ok
    assert [(p.path, expected[1] in p.message) for p in result.problems] == [(expected[0], True)]


def test_verify_rejects_other_manifest_replay_and_tampering(
    ctx: ServiceContext, signed: tuple[Path, Path], tmp_path: Path
) -> None:
    env_path, manifest_path = signed
    svc = SigningService(ctx)
    other = Manifest.from_entries([ManifestEntry("x.txt", 1, "c" * 64)])
    other_path = tmp_path / "other.json"
    other_path.write_bytes(other.canonical_bytes())
    with pytest.raises(VerificationError, match="manifest does not match the signed statement"):
        svc.verify_envelope_file(env_path, other_path)
    with pytest.raises(VerificationError, match=r"another registry \(replay\)"):
        svc.verify_envelope_file(env_path, registry="https://other.example")
    env = json.loads(env_path.read_text())
    env["payloadType"] = "application/json"
    env_path.write_text(json.dumps(env))
    with pytest.raises(VerificationError, match="payloadType"):
        svc.verify_envelope_file(env_path)
    env_path.write_text("{")
    with pytest.raises(VerificationError, match="not valid JSON"):
        svc.verify_envelope_file(env_path)


def test_verify_envelope_from_a_stranger(
    ctx: ServiceContext, signed: tuple[Path, Path], tmp_path: Path
) -> None:
    env_path, _ = signed
    fresh = ServiceContext(tmp_path / "data2")
    with pytest.raises(VerificationError, match="unknown key"):
        SigningService(fresh).verify_envelope_file(env_path)
    public = IdentityService(ctx).show()["publicKey"]
    assert SigningService(fresh).verify_envelope_file(env_path, public_keys=[public]).ok
    fresh.close()
