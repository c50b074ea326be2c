"""The real `contributor-desk` in a subprocess, fed bad input (files, options, a hostile
registry on loopback): every case ends with one clear `error:` line and exit 2, 3 or 4 —
never exit 1 ("this is a bug") — and nothing is stored from a refused answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cli_helpers import ROOT, Result, run_cli
from tests.unit.registry_client.hostile import HostileRegistry, hostile_registry

HIDDEN = ("\x1b", "\u202e", "\x00", "\x07")


def _one_clear_error(r: Result, code: int) -> None:
    assert r.code == code, (r.code, r.out, r.err)
    assert "this is a bug" not in r.err
    assert "Traceback" not in r.err
    errors = [line for line in r.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.err


@pytest.fixture
def hostile() -> Iterator[HostileRegistry]:
    with hostile_registry() as registry:
        registry.json_route("GET", "/v1/models", {"items": [], "nextCursor": None})
        registry.json_route("GET", "/v1/me/rewards", {"items": [], "nextCursor": None})
        yield registry


@pytest.fixture
def identity(data_dir: Path, isolated_keyring: Path) -> Path:
    r = run_cli("identity", "init", data_dir=data_dir)
    assert r.code == 0, r.err
    return data_dir


def _entry(**over: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "cursor": "1",
        "eventId": "e1",
        "contributionId": "c_0123456789abcdef01234567",
        "modelId": "m1",
        "method": "influence",
        "amountMicro": 5,
        "at": "2026-11-26T07:59:58Z",
        "demo": False,
    }
    entry.update(over)
    return entry


def _rewards(data_dir: Path, registry: str) -> dict[str, object]:
    r = run_cli("--registry", registry, "rewards", "--json", data_dir=data_dir)
    assert r.code == 0, r.err
    result: dict[str, object] = r.json()
    return result


# -- registry answers -------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [10**30, 2**63, 2**63 - 1])
def test_sync_refuses_amounts_it_cannot_store_and_stores_nothing(
    identity: Path, hostile: HostileRegistry, amount: int
) -> None:
    hostile.json_route(
        "GET",
        "/v1/me/rewards",
        {"items": [_entry(amountMicro=amount), _entry(cursor="2", amountMicro=amount)]},
    )
    r = run_cli("--registry", hostile.url, "sync", data_dir=identity)
    _one_clear_error(r, 4)
    assert "/v1/me/rewards" in hostile.paths()  # it got that far
    view = _rewards(identity, hostile.url)
    assert (view["totalMicro"], view["entries"]) == (0, 0)


def test_sync_refuses_a_ledger_whose_total_would_overflow(
    identity: Path, hostile: HostileRegistry
) -> None:
    big = 2**62
    hostile.json_route("GET", "/v1/me/rewards", {"items": [_entry(amountMicro=big)]})
    assert run_cli("--registry", hostile.url, "sync", data_dir=identity).code == 0
    hostile.json_route(
        "GET",
        "/v1/me/rewards",
        {"items": [_entry(cursor="2", amountMicro=big)], "nextCursor": "2"},
    )
    _one_clear_error(run_cli("--registry", hostile.url, "sync", data_dir=identity), 4)
    view = _rewards(identity, hostile.url)  # the review still works: exit 0, sums intact
    assert (view["totalMicro"], view["entries"]) == (big, 1)


def test_sync_stops_endless_reward_pages(identity: Path, hostile: HostileRegistry) -> None:
    pages = iter(range(1, 10**9))

    def endless(h: object) -> None:
        n = next(pages)
        body = {"items": [_entry(cursor=str(n))], "nextCursor": str(n), "hasMore": True}
        h.send_json(200, body)  # type: ignore[attr-defined]

    hostile.route("GET", "/v1/me/rewards", endless)
    r = run_cli("--registry", hostile.url, "sync", data_dir=identity, timeout=300)
    _one_clear_error(r, 4)
    assert "more pages" in r.err


def test_a_challenge_without_nonce_is_exit_4(identity: Path, hostile: HostileRegistry) -> None:
    hostile.json_route("POST", "/v1/auth/challenge", {"expiresIn": 300})
    _one_clear_error(run_cli("--registry", hostile.url, "sync", data_dir=identity), 4)


def test_registry_text_reaches_the_terminal_sanitised(
    identity: Path, hostile: HostileRegistry
) -> None:
    evil = "\x1b]0;owned\x07\x1b[2J\u202eevil\x00name"
    hostile.json_route(
        "GET", "/v1/models", {"items": [{"id": "m1", "name": evil}], "nextCursor": None}
    )
    hostile.json_route("GET", "/v1/me/rewards", {"items": [_entry()], "nextCursor": "1"})
    assert run_cli("--registry", hostile.url, "sync", data_dir=identity).code == 0
    shown = run_cli("--registry", hostile.url, "rewards", data_dir=identity)
    assert shown.code == 0, shown.err
    assert "evil" in shown.out
    assert not any(c in shown.out for c in HIDDEN), repr(shown.out)

    hostile.json_route(
        "POST", "/v1/auth/challenge", {"error": {"code": "x", "message": evil}}, status=400
    )
    refused = run_cli("--registry", hostile.url, "sync", data_dir=identity)
    _one_clear_error(refused, 4)
    assert "evil" in refused.err
    assert not any(c in refused.err for c in HIDDEN), repr(refused.err)


# -- files and options ------------------------------------------------------------------------


def test_verify_of_a_deeply_nested_envelope_is_exit_3(data_dir: Path, tmp_path: Path) -> None:
    envelope = tmp_path / "deep.dsse.json"
    envelope.write_text("[" * 200_000 + "]" * 200_000)
    r = run_cli("verify", envelope, data_dir=data_dir)
    _one_clear_error(r, 3)
    assert "nested deeper" in r.err


def test_verify_reads_are_bounded(data_dir: Path, tmp_path: Path) -> None:
    _one_clear_error(run_cli("verify", "/dev/zero", data_dir=data_dir, timeout=60), 3)
    envelope = tmp_path / "e.json"
    envelope.write_text("{}")
    r = run_cli("verify", envelope, "--manifest", "/dev/zero", data_dir=data_dir, timeout=60)
    _one_clear_error(r, 3)


def test_a_passphrase_file_that_never_ends_is_a_usage_error(data_dir: Path) -> None:
    r = run_cli(
        "identity", "init", "--key-file", "--passphrase-file", "/dev/zero", data_dir=data_dir
    )
    _one_clear_error(r, 2)
    assert "larger than" in r.err


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    r = run_cli("--data-dir", afile, "list", data_dir=tmp_path / "unused")
    _one_clear_error(r, 2)
    assert "is a file" in r.err
    _one_clear_error(run_cli("list", data_dir=afile), 2)  # CONTRIBUTOR_DESK_DATA_DIR too
    under = run_cli("--data-dir", afile / "sub", "list", data_dir=tmp_path / "unused")
    _one_clear_error(under, 2)
    assert "Not a directory" in under.err


@pytest.mark.parametrize(
    "option",
    [
        ("--chunk-mb", "-1"),
        ("--chunk-mb", "0"),
        ("--chunk-mb", "99999999999"),
        ("--concurrency", "0"),
        ("--limit-kbps", "-5"),
    ],
)
def test_upload_options_out_of_range_are_usage_errors(
    data_dir: Path, option: tuple[str, str]
) -> None:
    r = run_cli("upload", *option, data_dir=data_dir)
    assert r.code == 2, (r.out, r.err)
    assert "this is a bug" not in r.err


def test_adding_json_nested_100000_deep_reports_a_problem_of_that_file(
    data_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "deep"
    folder.mkdir()
    (folder / "array.json").write_text("[" * 100_000 + "]" * 100_000)
    (folder / "object.json").write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    (folder / "lines.jsonl").write_text("[" * 100_000 + "]" * 100_000 + '\n{"ok": 1}\n')
    (folder / "fine.json").write_text('[{"a": [[[1]]]}]')
    r = run_cli("add", folder, "--json", data_dir=data_dir)
    assert r.code in (0, 3), (r.code, r.err)
    assert "this is a bug" not in r.err
    text = json.dumps(r.json())
    for name in ("array.json", "object.json", "lines.jsonl"):
        assert f"'{name}'" in text
    assert text.count("nest deeper than") + text.count("nests deeper than") >= 3


def test_a_closed_output_pipe_ends_quietly(data_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(300):
        (folder / f"f{i:03}.csv").write_text("a,b\n1,2\n")
    assert run_cli("add", folder, data_dir=data_dir).code == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte (`| head -c 0`)
    env = {**os.environ, "CONTRIBUTOR_DESK_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    for args in (["show", "1", "--json"], ["list"], ["show", "1"]):
        proc = subprocess.run(
            [sys.executable, "-m", "app", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=120,
        )
        assert proc.stderr == "", proc.stderr
        assert proc.returncode == 141
    os.close(write_end)
