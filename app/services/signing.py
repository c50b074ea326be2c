"""Sign a catalogued item and verify envelopes: the contributor's proof of what they submitted.

Signing builds the in-toto statement from the item and its latest canonical manifest, signs
it, and stores the envelope and the draft→signed transition in ONE transaction. Verification
checks the envelope over the received payload bytes, then the statement, then (optionally)
the manifest file and every file in the data folder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select

from app.domain.errors import BadInputError, NotFoundError, UsageError, VerificationError
from app.domain.limits import (
    MAX_ENVELOPE_BYTES,
    MAX_MANIFEST_BYTES,
    TooLarge,
    describe_bytes,
    read_limited,
)
from app.domain.problems import Problem
from app.domain.states import InvalidTransition, State
from app.domain.units import plural
from app.manifest.canonical import Manifest, verify_against_folder
from app.services.context import ServiceContext
from app.services.history import transition
from app.services.identity import STORAGE_FILE, IdentityService, PassphraseFn
from app.settings import DATANET
from app.signing import dsse
from app.signing.identity import fingerprint, grouped, load_public_hex
from app.signing.statement import (
    ContributionStatement,
    build_statement,
    check_statement,
    parse_statement,
)
from app.store.latest import latest_manifest
from app.store.models import Envelope, Identity, Item, ManifestRecord

DEFAULT_DATANET = "open-data"


@dataclass(frozen=True, slots=True)
class SignResult:
    envelope_id: int
    item_id: int
    keyid: str
    manifest_digest: str
    registry_url: str
    datanet: str
    envelope: dict[str, Any]
    manifest: bytes  # the canonical manifest bytes the statement names


@dataclass(slots=True)
class VerifyResult:
    """What was checked and by whom; `problems` lists files that no longer match."""

    keyid: str
    statement: ContributionStatement
    checked: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        p = self.statement.predicate
        return {
            "ok": self.ok,
            "fingerprint": self.keyid,
            "grouped": grouped(self.keyid),
            "manifestDigest": self.statement.manifest_digest,
            "predicate": p.to_dict(),
            "checked": list(self.checked),
            "problems": [x.to_dict() for x in self.problems],
        }


def unlock_signer(
    ctx: ServiceContext,
    passphrase: str | PassphraseFn | None = None,
    identities: IdentityService | None = None,
) -> Ed25519PrivateKey:
    """The active private key, unlocked at most once per ServiceContext (see SignerCache).

    Signing, creating the contribution and the upload queue (login) all need the key; an
    encrypted key file costs a scrypt derivation (and maybe a prompt) each time it is read.
    A prompt (callable) is only called when the key is not unlocked yet; a passphrase given
    as text must still be the right one."""
    identities = identities or IdentityService(ctx)
    with ctx.db.session() as s:
        row = s.execute(
            select(Identity.fingerprint, Identity.storage, Identity.key_file)
            .where(Identity.active.is_(True))
            .order_by(Identity.id.desc())
        ).first()
    if row is None:
        return identities.load_signer(passphrase)  # raises the usual "no identity" error
    fpr, storage, key_file = row
    stamp: tuple[int, int] | None = None
    if storage == STORAGE_FILE:
        try:
            st = Path(key_file or identities.key_file_path).stat()
            stamp = (st.st_size, st.st_mtime_ns)
        except OSError:
            return identities.load_signer(passphrase)  # its own clear error
    ident = (fpr, storage, key_file, stamp)
    given = passphrase if isinstance(passphrase, str) else None
    key = ctx.signers.get(ident, given)
    if key is not None:
        return key
    secret = passphrase() if callable(passphrase) and storage == STORAGE_FILE else passphrase
    key = identities.load_signer(secret)
    ctx.signers.put(ident, secret if isinstance(secret, str) else None, key)
    return key


def datanet_for(ctx: ServiceContext, datanet: str | None) -> str:
    """The datanet to sign for and submit to: the one asked for, else the user's setting, else
    DEFAULT_DATANET. Sign, review and submit all use this rule, so an item signed for the
    default is not signed again at submit."""
    return datanet or ctx.settings.get(DATANET) or DEFAULT_DATANET


def cached_rules_version(ctx: ServiceContext, registry_url: str, datanet: str) -> int | None:
    """The rules version of the datanet as last read from this registry (None: never read)."""
    from app.signing.statement import normalise_registry
    from app.store.datanet_models import CachedDatanet

    with ctx.db.session() as s:
        row = s.get(CachedDatanet, (normalise_registry(registry_url), datanet))
        return row.rules_version if row is not None else None


class SigningService:
    def __init__(self, ctx: ServiceContext, identities: IdentityService | None = None) -> None:
        self._ctx = ctx
        self._identities = identities or IdentityService(ctx)

    def sign_item(
        self,
        item_id: int,
        *,
        registry_url: str,
        datanet: str | None = None,
        passphrase: str | PassphraseFn | None = None,
        rules_version: int | None = None,
    ) -> SignResult:
        """Sign the item's latest manifest for one registry and datanet (None: `datanet_for`'s
        choice), and the version of the datanet's rules it was checked against (default: the
        cached datanet's; none cached: left out, which the registry reads as version 1)."""
        datanet = datanet_for(self._ctx, datanet)
        if rules_version is None:
            rules_version = cached_rules_version(self._ctx, registry_url, datanet)
        with self._ctx.db.session() as s:
            if s.get(Item, item_id) is None:
                raise NotFoundError(f"there is no item #{item_id} in the catalogue")
        # may prompt (once per session): before the transaction
        key = unlock_signer(self._ctx, passphrase, self._identities)
        keyid = fingerprint(key)
        with self._ctx.db.session() as s:
            item = s.get(Item, item_id)
            if item is None:
                raise NotFoundError(f"there is no item #{item_id} in the catalogue")
            rec = latest_manifest(s, item_id)
            if rec is None:
                raise BadInputError(f"item #{item_id} has no manifest yet; add it again")
            digest = hashlib.sha256(rec.canonical).hexdigest()
            if digest != rec.digest:
                raise BadInputError(
                    f"the stored manifest of item #{item_id} is damaged (digest mismatch)",
                    hint="remove the item and add it again",
                )
            parent = item.parent_registry_id
            if parent is None and item.parent is not None:
                parent = item.parent.registry_id
            payload = build_statement(
                manifest_digest=digest,
                registry=registry_url,
                datanet=datanet,
                title=item.title,
                kind=item.kind,
                parent=parent,
                license=item.license,
                root=rec.root,
                rules_version=rules_version,
            )
            env = dsse.sign(payload, dsse.PAYLOAD_TYPE_INTOTO, [key])
            env_dict = env.to_dict()
            try:
                transition(s, item, State.SIGNED, "signed", f"key {grouped(keyid)[:19]}")
            except InvalidTransition:
                raise UsageError(
                    f"item #{item_id} is {item.state}; it can no longer be signed",
                    hint="only local (draft, signed or rejected) items can be signed",
                ) from None
            item.registry_url = registry_url
            item.datanet = datanet
            item.manifest_digest = digest
            row = Envelope(
                item_id=item.id,
                keyid=keyid,
                registry_url=registry_url,
                datanet=datanet,
                manifest_digest=digest,
                envelope=env_dict,
            )
            s.add(row)
            s.flush()
            return SignResult(
                row.id, item.id, keyid, digest, registry_url, datanet, env_dict, rec.canonical
            )

    def trusted_keys(
        self, extra_public_keys: list[str] | None = None
    ) -> dict[str, Ed25519PublicKey]:
        """The user's own keys (current and rotated) plus any given on the command line."""
        keys = dict(self._identities.public_keys())
        for text in extra_public_keys or []:
            pub = load_public_hex(text)
            keys[fingerprint(pub)] = pub
        return keys

    def verify_envelope_bytes(
        self,
        data: bytes,
        *,
        manifest: bytes | None = None,
        data_folder: Path | None = None,
        registry: str | None = None,
        datanet: str | None = None,
        public_keys: list[str] | None = None,
    ) -> VerifyResult:
        """Verify an envelope; raises VerificationError on the first failed check."""
        env = dsse.Envelope.from_json(data)
        trusted = self.trusted_keys(public_keys)
        unknown = [s.keyid for s in env.signatures if s.keyid not in trusted]
        if unknown:
            raise VerificationError(
                f"envelope is signed by unknown key {unknown[0]}",
                hint="it is not one of your identities; pass its --public-key HEX",
            )
        keyids = dsse.verify(env, trusted, payload_type=dsse.PAYLOAD_TYPE_INTOTO)
        checked = [
            f"signature by {grouped(keyids[0])} over the received payload",
            f"payloadType {dsse.PAYLOAD_TYPE_INTOTO}",
        ]
        statement = parse_statement(env.payload)
        checked.append("in-toto Statement v1, predicateType contribution/v1")
        check_statement(statement, registry=registry, datanet=datanet)
        if registry is not None:
            checked.append(f"registry {statement.predicate.registry}")
        if datanet is not None:
            checked.append(f"datanet {statement.predicate.datanet!r}")
        result = VerifyResult(keyids[0], statement, checked)
        parsed: Manifest | None = None
        if manifest is not None:
            check_statement(statement, manifest_digest=hashlib.sha256(manifest).hexdigest())
            parsed = Manifest.parse(manifest)
            check_statement(statement, root=parsed.root)
            checked.append(f"manifest digest {statement.manifest_digest} and root")
        elif data_folder is not None:
            parsed = self._catalogue_manifest(statement.manifest_digest)
            checked.append("manifest from the catalogue (digest matches)")
        if data_folder is not None and parsed is not None:
            if not data_folder.is_dir():
                raise BadInputError(f"data folder {data_folder} does not exist")
            result.problems = verify_against_folder(parsed, data_folder)
            files = plural(parsed.file_count, "file")
            checked.append(f"{files} in {data_folder} against the manifest")
        return result

    def verify_envelope_file(
        self,
        path: Path,
        manifest_file: Path | None = None,
        data_folder: Path | None = None,
        *,
        registry: str | None = None,
        datanet: str | None = None,
        public_keys: list[str] | None = None,
    ) -> VerifyResult:
        return self.verify_envelope_bytes(
            _read(path, "envelope"),
            manifest=None if manifest_file is None else _read(manifest_file, "manifest"),
            data_folder=data_folder,
            registry=registry,
            datanet=datanet,
            public_keys=public_keys,
        )

    def _catalogue_manifest(self, digest: str) -> Manifest:
        with self._ctx.db.session() as s:
            rec = s.scalars(select(ManifestRecord).where(ManifestRecord.digest == digest)).first()
            if rec is None:
                raise UsageError(
                    "checking a data folder needs the signed manifest",
                    hint="pass it with --manifest FILE",
                )
            return Manifest.parse(rec.canonical)


def _read(path: Path, what: str) -> bytes:
    """A file given to verify, read with a bound (it may be /dev/zero or a FIFO)."""
    limit = MAX_ENVELOPE_BYTES if what == "envelope" else MAX_MANIFEST_BYTES
    try:
        return read_limited(path, limit)
    except FileNotFoundError:
        raise BadInputError(f"{what} file {path} does not exist") from None
    except OSError as exc:
        raise BadInputError(f"cannot read {what} file {path}: {exc.strerror}") from None
    except TooLarge:
        raise BadInputError(
            f"{what} file {path} is larger than {describe_bytes(limit)}; it was not read"
        ) from None
