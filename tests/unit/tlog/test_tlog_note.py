"""C2SP signed notes and checkpoints: the Go reference's published example, strict parsing."""

from __future__ import annotations

import base64

import pytest

from app.domain.errors import KnownError
from app.tlog import (
    Checkpoint,
    MalformedError,
    SignatureError,
    Signer,
    Verifier,
    open_checkpoint,
    open_note,
    parse_checkpoint_text,
    parse_note,
    sign_note,
)
from app.tlog.note import key_id

# The example key pair and note published in golang.org/x/mod/sumdb/note's documentation.
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZS"
    "NXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
PETER_NOTE = (PETER_TEXT + "\n" + PETER_SIG).encode()


def test_the_published_example_keys_and_note() -> None:
    verifier = Verifier.from_vkey(PETER_VKEY)
    assert verifier.key_id == 0xC74F20A3
    assert verifier.vkey == PETER_VKEY
    signer = Signer.from_skey(PETER_SKEY)
    assert signer.skey == PETER_SKEY
    assert signer.verifier == verifier
    # Ed25519 is deterministic: our signature is the published one
    assert sign_note(PETER_TEXT, signer) == PETER_NOTE
    note = open_note(PETER_NOTE, [verifier])
    assert note.text == PETER_TEXT
    assert [(s.name, s.key_id) for s in note.signatures] == [("PeterNeumann", 0xC74F20A3)]


def test_key_id_is_the_signed_note_formula() -> None:
    v = Verifier.from_vkey(PETER_VKEY)
    assert key_id("PeterNeumann", 1, v.public_key) == 0xC74F20A3
    assert key_id("PeterNeumann", 4, v.public_key) != 0xC74F20A3


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong hash
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # upper case
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # algorithm
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW+x",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  # not base64
        "",
        "x" * 5000,
    ],
)
def test_bad_verifier_keys_are_rejected(vkey: str) -> None:
    with pytest.raises(MalformedError):
        Verifier.from_vkey(vkey)


def test_bad_signer_keys_are_rejected() -> None:
    for skey in [
        PETER_SKEY.replace("c74f20a3", "c74f20a4"),
        PETER_SKEY.removeprefix("PRIVATE+"),
        PETER_SKEY.replace("+AYEK", "+AoEK"),
        PETER_VKEY,
    ]:
        with pytest.raises(MalformedError):
            Signer.from_skey(skey)


def test_generated_keys_round_trip_and_never_show_the_private_key() -> None:
    signer = Signer.generate("registry.example/log")
    assert Signer.from_skey(signer.skey).verifier == signer.verifier
    assert Verifier.from_vkey(signer.verifier.vkey) == signer.verifier
    assert "PRIVATE" not in repr(signer)


def test_unknown_keys_are_ignored_and_a_known_bad_signature_rejects() -> None:
    peter = Signer.from_skey(PETER_SKEY)
    other = Signer.generate("witness.example")
    both = sign_note(PETER_TEXT, other, peter)
    note = open_note(both, [peter.verifier])
    assert [s.name for s in note.signatures] == ["PeterNeumann"]
    with pytest.raises(SignatureError):
        open_note(sign_note(PETER_TEXT, other), [peter.verifier])
    # same name, other key ID: an unknown key, ignored → no known signature at all
    impostor = Signer("PeterNeumann", Signer.generate("x")._key)
    with pytest.raises(SignatureError, match="not signed by a known key"):
        open_note(sign_note(PETER_TEXT, impostor), [peter.verifier])
    # a signature by the known key over other text
    tampered = PETER_NOTE.replace(b"problem is", b"problem was")
    with pytest.raises(SignatureError, match="bad signature"):
        open_note(tampered, [peter.verifier])
    assert issubclass(SignatureError, KnownError) and SignatureError.exit_code == 4


@pytest.mark.parametrize(
    "data",
    [
        PETER_TEXT.encode() + PETER_SIG.encode(),  # no blank line
        (PETER_TEXT + "\n").encode(),  # no signatures
        PETER_NOTE[:-1],  # no final newline
        PETER_NOTE.replace("\u2014 ".encode(), b"- "),
        PETER_NOTE.replace(b"PeterNeumann ", b"PeterNeumann  "),
        PETER_NOTE.replace(b"If you", b"If\tyou"),
        PETER_NOTE.replace(b"If you", b"If \xff"),
        PETER_NOTE.replace(b"AM=\n", b"AM\n"),  # not padded base64
        (PETER_TEXT + "\n\u2014 PeterNeumann AAAA\n").encode(),  # too short
        PETER_NOTE + b"x" * 70000,
        (PETER_TEXT + "\n" + PETER_SIG * 101).encode(),
    ],
)
def test_malformed_notes_are_rejected(data: bytes) -> None:
    with pytest.raises(MalformedError):
        open_note(data, [Verifier.from_vkey(PETER_VKEY)])


def test_text_may_hold_blank_lines_and_signatures_follow_the_last() -> None:
    signer = Signer.generate("a.example")
    text = "one\n\ntwo\n"
    note = parse_note(sign_note(text, signer))
    assert note.text == text
    with pytest.raises(MalformedError):
        sign_note("no newline", signer)


ROOT = bytes(range(32))


def test_checkpoint_round_trip() -> None:
    signer = Signer.generate("registry.example/log")
    cp = Checkpoint("registry.example/log", 20852163, ROOT, ("ext one",))
    data = cp.sign(signer)
    text = data.decode().split("\n\n")[0] + "\n"
    assert text == (f"registry.example/log\n20852163\n{base64.b64encode(ROOT).decode()}\next one\n")
    got, note = open_checkpoint(data, signer.verifier, origin="registry.example/log")
    assert got == cp
    with pytest.raises(SignatureError, match="not 'other'"):
        open_checkpoint(data, signer.verifier, origin="other")
    with pytest.raises(SignatureError):
        open_checkpoint(data, Signer.generate("registry.example/log").verifier)


B64 = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    "text",
    [
        f"o\n0{5}\n{B64}\n",  # leading zero
        f"o\n-5\n{B64}\n",
        f"o\n+5\n{B64}\n",
        f"o\n 5\n{B64}\n",
        f"o\n{2**63}\n{B64}\n",
        f"o\n5\n{B64[:-1]}\n",
        f"o\n5\n{base64.b64encode(ROOT[:31]).decode()}\n",
        f"o\n5\n{B64}",  # no newline
        f"o\n5\n{B64}\n\n",  # empty extension line
        f"\n5\n{B64}\n",  # empty origin
        "o\n5\n",
    ],
)
def test_malformed_checkpoints_are_rejected(text: str) -> None:
    with pytest.raises(MalformedError):
        parse_checkpoint_text(text)


def test_checkpoint_sizes() -> None:
    assert parse_checkpoint_text(f"o\n0\n{B64}\n").size == 0
    assert parse_checkpoint_text(f"o\n{2**63 - 1}\n{B64}\n").size == 2**63 - 1
