"""The contributor's key is unlocked once per session (ServiceContext), not once per step.

An encrypted key file costs a scrypt derivation (~0.3 s) and maybe a prompt each time it is
read; sign, create and the upload queue's login all need the key. These tests count the key
file reads and check that the cache never weakens the passphrase check.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.domain.errors import IdentityError, KnownError
from app.registry_client.http import RetryPolicy
from app.services.catalogue import CatalogueService, ImportRequest
from app.services.clients import make_client
from app.services.context import ServiceContext
from app.services.identity import IdentityService
from app.services.signing import unlock_signer
from app.services.submit import SubmitService
from app.services.uploads import QueueOptions, UploadQueue
from app.signing import keyfile
from app.signing.identity import fingerprint

PASS = "correct horse battery staple 42"
UNREACHABLE = "http://127.0.0.1:9"  # discard port: connection refused at once


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every read (decryption) of the key file, in order."""
    seen: list[Path] = []
    real = keyfile.read_key_file

    def counting(path: Path, passphrase: str) -> object:
        seen.append(Path(path))
        return real(path, passphrase)

    monkeypatch.setattr(keyfile, "read_key_file", counting)
    return seen


@pytest.fixture
def ctx(tmp_path: Path, isolated_keyring: Path) -> ServiceContext:
    c = ServiceContext(tmp_path / "desk", UNREACHABLE)
    IdentityService(c).init(PASS, use_key_file=True)
    return c


def test_sign_submit_and_queue_decrypt_the_key_file_once(
    ctx: ServiceContext, tmp_path: Path, reads: list[Path]
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.txt").write_text("hello\n")
    item = CatalogueService(ctx).add(ImportRequest(paths=[folder], title="t")).id
    once = RetryPolicy(attempts=1)
    client = make_client(ctx, passphrase=PASS, retry=once)
    result = SubmitService(ctx).submit(item, passphrase=PASS, client=client)  # sign, login
    client.close()
    assert result.offline
    queue = UploadQueue(ctx, options=QueueOptions(concurrency=1, retry=once), passphrase=PASS)
    queue.run(wait_offline=False)  # create again: login needs the key
    queue.close()
    assert len(reads) == 1, reads
    ctx.close()


def test_a_prompt_is_asked_once_and_a_new_session_asks_again(
    ctx: ServiceContext, tmp_path: Path, reads: list[Path]
) -> None:
    asked: list[int] = []

    def prompt() -> str:
        asked.append(1)
        return PASS

    first = unlock_signer(ctx, prompt)
    assert unlock_signer(ctx, prompt) is first
    assert unlock_signer(ctx, None) is first  # unlocked in this session: no prompt
    assert (len(asked), len(reads)) == (1, 1)
    other = ServiceContext(ctx.data_dir, UNREACHABLE)
    assert fingerprint(unlock_signer(other, prompt)) == fingerprint(first)
    assert (len(asked), len(reads)) == (2, 2)
    ctx.close()
    other.close()


def test_a_wrong_passphrase_is_refused_even_when_the_key_is_unlocked(
    ctx: ServiceContext, reads: list[Path]
) -> None:
    unlock_signer(ctx, PASS)
    with pytest.raises(KnownError):
        unlock_signer(ctx, "not the passphrase")
    assert len(reads) == 2  # the wrong one went to the key file, and failed there
    unlock_signer(ctx, PASS)
    assert len(reads) == 2
    ctx.close()


def test_a_rotated_key_is_loaded_afresh(ctx: ServiceContext, reads: list[Path]) -> None:
    before = unlock_signer(ctx, PASS)
    IdentityService(ctx).rotate(PASS, unlock=PASS)
    after = unlock_signer(ctx, PASS)
    assert fingerprint(after) != fingerprint(before)
    ctx.close()


def test_closing_the_context_forgets_the_key(ctx: ServiceContext, reads: list[Path]) -> None:
    unlock_signer(ctx, PASS)
    ctx.close()
    again: Callable[[], str] = lambda: PASS  # noqa: E731
    unlock_signer(ctx, again)
    assert len(reads) == 2
    ctx.close()


def test_no_identity_is_the_usual_clear_error(tmp_path: Path, isolated_keyring: Path) -> None:
    c = ServiceContext(tmp_path / "empty", UNREACHABLE)
    with pytest.raises(IdentityError, match="no identity"):
        unlock_signer(c, PASS)
    c.close()
