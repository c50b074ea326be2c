"""The canonical manifest is what gets signed: its bytes must never drift."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from pathlib import Path

import pytest

from app.domain.errors import VerificationError
from app.manifest.canonical import MAX_PATH_BYTES, Manifest, ManifestEntry, verify_against_folder

EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
HELLO = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

# Written by hand; root and digest computed with `printf ... | sha256sum`.
GOLDEN = (
    '{"fileCount":3,"files":['
    f'{{"path":"B.txt","sha256":"{EMPTY}","size":0}},'
    f'{{"path":"a.txt","sha256":"{ABC}","size":3}},'
    f'{{"path":"d/é","sha256":"{HELLO}","size":5}}],'
    '"hashAlg":"sha256",'
    '"root":"307869cfbe7869ec1960e5a1424b1d7f7d198985ccba94f7d19ab1538b8494c0",'
    '"schema":"contributor-desk/manifest/v1","totalSize":8}'
).encode()
GOLDEN_DIGEST = "c0b5febfbef90aa20c5724037b96a9edf33620ad8d3e17b440eb650d07dfaeca"


def golden_manifest() -> Manifest:
    return Manifest.from_entries(
        [
            ManifestEntry("d/é", 5, HELLO),
            ManifestEntry("a.txt", 3, ABC),
            ManifestEntry("B.txt", 0, EMPTY),
        ]
    )


def test_canonical_bytes_golden() -> None:
    m = golden_manifest()
    assert m.canonical_bytes() == GOLDEN
    assert m.root == "307869cfbe7869ec1960e5a1424b1d7f7d198985ccba94f7d19ab1538b8494c0"
    assert m.digest() == GOLDEN_DIGEST
    assert (m.file_count, m.total_size) == (3, 8)


def test_sorted_by_utf8_bytes_not_locale_or_case() -> None:
    m = Manifest.from_entries(ManifestEntry(p, 1, ABC) for p in ["é", "a", "B", "c/b", "c-b", "Z"])
    # '-' (0x2d) < '/' (0x2f); uppercase before lowercase; é (0xc3..) last.
    assert [e.path for e in m.files] == ["B", "Z", "a", "c-b", "c/b", "é"]


def test_nfc_required_and_nfd_rejected() -> None:
    nfd = unicodedata.normalize("NFD", "café.txt")
    assert nfd != "café.txt"
    with pytest.raises(VerificationError, match="not NFC"):
        Manifest.from_entries([ManifestEntry(nfd, 1, ABC)])
    assert Manifest.from_entries([ManifestEntry("café.txt", 1, ABC)]).files[0].path == "café.txt"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/etc/passwd", "absolute"),
        ("C:/x", "absolute"),
        ("a/../b", r"'\.\.'"),
        ("..", r"'\.\.'"),
        ("a//b", "empty"),
        ("./a", "empty or '.'"),
        ("a/", "empty"),
        ("a\\b", "backslash"),
        ("", "empty"),
        ("a\x00b", "NUL"),
        ("a\nb", "control character U\\+000A"),
        ("a\rb", "control character U\\+000D"),
        ("a\tb", "control character U\\+0009"),
        ("dir/\x1b[31mred", "control character U\\+001B"),
        ("a\x7fb", "control character U\\+007F"),
        ("a\x85b", "control character U\\+0085"),
        ("x" * 1025, "longer than 1024 bytes"),
        ("é" * 513, "longer than 1024 bytes"),
        ("d/" + "x" * 256, "component is longer than 255 bytes"),
        ("é" * 128, "component is longer than 255 bytes"),
    ],
)
def test_bad_paths_rejected(path: str, reason: str) -> None:
    with pytest.raises(VerificationError, match=reason):
        Manifest.from_entries([ManifestEntry(path, 1, ABC)])


def test_paths_at_the_length_limits_are_accepted() -> None:
    longest = "/".join(["x" * 254] * 4) + "/" + "y" * 4  # 1024 bytes
    assert len(longest.encode()) == MAX_PATH_BYTES
    near = "é" * 127 + "z"  # a name of 255 bytes
    m = Manifest.from_entries([ManifestEntry(longest, 1, ABC), ManifestEntry(near, 1, ABC)])
    assert Manifest.parse(m.canonical_bytes()) == m


def test_a_newline_cannot_make_two_manifests_share_a_root() -> None:
    """Before paths refused control characters, {"a\\n<h2> 5 b": h1} hashed like
    {"a": h1, "b": h2} (the root is "<sha256> <size> <path>\\n" lines)."""
    two = Manifest.from_entries([ManifestEntry("a", 5, ABC), ManifestEntry("b", 5, HELLO)])
    smuggled = f"a\n{HELLO} 5 b"
    with pytest.raises(VerificationError, match="control character"):
        Manifest.from_entries([ManifestEntry(smuggled, 5, ABC)])
    forged = two.canonical_bytes().replace(b'"path":"a"', json_path(smuggled), 1)
    with pytest.raises(VerificationError, match="control character"):
        Manifest.parse(forged)


def json_path(path: str) -> bytes:
    return b'"path":' + json.dumps(path, ensure_ascii=False).encode()


def test_duplicates_and_file_folder_clash_rejected() -> None:
    with pytest.raises(VerificationError, match="listed twice"):
        Manifest.from_entries([ManifestEntry("a", 1, ABC), ManifestEntry("a", 2, ABC)])
    with pytest.raises(VerificationError, match="also listed as a file"):
        Manifest.from_entries([ManifestEntry("a", 1, ABC), ManifestEntry("a/b", 2, ABC)])


def test_parse_round_trip() -> None:
    m = golden_manifest()
    assert Manifest.parse(GOLDEN) == m
    tricky = Manifest.from_entries(
        [ManifestEntry('we"ird\u2028name \\ ☃.txt'.replace("\\", "_"), 7, HELLO)]
    )
    assert Manifest.parse(tricky.canonical_bytes()) == tricky


def _mutated(**changes: object) -> bytes:
    obj = json.loads(GOLDEN)
    obj.update(changes)
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def _with_files(files: list[dict[str, object]], **changes: object) -> bytes:
    """A manifest with consistent counts and root for `files`, then `changes` applied."""
    lines = "".join(f"{f['sha256']} {f.get('size')} {f['path']}\n" for f in files)
    obj: dict[str, object] = {
        "fileCount": len(files),
        "files": files,
        "hashAlg": "sha256",
        "root": hashlib.sha256(lines.encode()).hexdigest(),
        "schema": "contributor-desk/manifest/v1",
        "totalSize": sum(int(float(str(f.get("size", 0)))) for f in files),
    }
    obj.update(changes)
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe", "not valid UTF-8"),
        (b"{not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (_mutated(schema="contributor-desk/manifest/v2"), "wrong schema"),
        (_mutated(hashAlg="sha512"), "wrong hashAlg"),
        (_mutated(root="0" * 64), "root mismatch"),
        (_mutated(fileCount=2), "fileCount mismatch"),
        (_mutated(fileCount=True), "fileCount mismatch"),
        (_mutated(totalSize=9), "totalSize mismatch"),
        (_mutated(extra=1), "unexpected \\['extra'\\]"),
        (GOLDEN.replace(b'"root"', b'"rooot"'), "missing \\['root'\\]"),
        (GOLDEN.replace(b',"hashAlg"', b', "hashAlg"'), "not canonical"),
        (GOLDEN + b"\n", "not canonical"),
        (GOLDEN.replace(b"\xc3\xa9", b"\\u00e9"), "not canonical"),
        (GOLDEN[:-1] + b',"schema":"x"}', "duplicate key"),
        (_with_files([{"path": "../x", "sha256": ABC, "size": 3}]), "bad path"),
        (_with_files([{"path": "/x", "sha256": ABC, "size": 3}]), "bad path"),
        (
            _with_files([{"path": unicodedata.normalize("NFD", "é"), "sha256": ABC, "size": 3}]),
            "not NFC",
        ),
        (_with_files([{"path": "x", "sha256": ABC.upper(), "size": 3}]), "bad sha256"),
        (_with_files([{"path": "x", "sha256": ABC, "size": -1}]), "bad size"),
        (_with_files([{"path": "x", "sha256": ABC, "size": 1.0}]), "bad size"),
        (_with_files([{"path": "x", "sha256": ABC}]), "exactly path, size, sha256"),
        (
            _with_files(
                [{"path": "b", "sha256": ABC, "size": 3}, {"path": "a", "sha256": ABC, "size": 3}]
            ),
            "not sorted",
        ),
        (
            _with_files(
                [{"path": "a", "sha256": ABC, "size": 3}, {"path": "a", "sha256": ABC, "size": 3}]
            ),
            "listed twice",
        ),
    ],
)
def test_parse_rejects_precisely(data: bytes, reason: str) -> None:
    with pytest.raises(VerificationError, match=reason):
        Manifest.parse(data)


def test_verify_against_folder_lists_each_difference(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "sub").mkdir(parents=True)
    for name, body in {"same": b"x", "grew": b"12", "edited": b"abc", "gone": b"z"}.items():
        (root / "sub" / name).write_bytes(body)
    entries = [
        ManifestEntry(f"sub/{n}", len(b), hashlib.sha256(b).hexdigest())
        for n, b in {"same": b"x", "grew": b"12", "edited": b"abc", "gone": b"z"}.items()
    ]
    m = Manifest.from_entries(entries)
    assert verify_against_folder(m, root) == []

    (root / "sub" / "grew").write_bytes(b"123")
    (root / "sub" / "edited").write_bytes(b"abd")
    (root / "sub" / "gone").unlink()
    (root / "new").write_bytes(b"n")
    found = {(p.path, p.message.split(":")[0]) for p in verify_against_folder(m, root)}
    assert found == {
        ("sub/grew", "changed"),
        ("sub/edited", "changed"),
        ("sub/gone", "missing"),
        ("new", "extra"),
    }
    messages = {p.path: p.message for p in verify_against_folder(m, root)}
    assert "size is 3 bytes" in messages["sub/grew"]
    assert "sha256" in messages["sub/edited"]


def test_colon_names_are_not_mistaken_for_drives() -> None:
    assert Manifest.from_entries([ManifestEntry("C:notes.txt", 1, ABC)]).file_count == 1


def test_verify_single_file_contribution_ignores_siblings(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_bytes(b"abc")
    (tmp_path / "unrelated.txt").write_bytes(b"zzz")
    m = Manifest.from_entries([ManifestEntry("data.csv", 3, ABC)])
    assert verify_against_folder(m, tmp_path, report_extra=False) == []
    assert [p.path for p in verify_against_folder(m, tmp_path)] == ["unrelated.txt"]
