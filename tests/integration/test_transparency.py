"""The app verifies rewards against the registry's transparency log, against a real registry
process whose database the tests tamper with (as a dishonest or broken registry would): each
tampering is detected, what was stored stays as it was, and audit exports evidence that
verifies."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from app.registry_client.usage import usage_window
from app.services.clients import make_client
from app.services.context import ServiceContext
from app.services.identity import IdentityService
from app.services.rewards import RewardsSync
from app.services.transparency import (
    LogSync,
    LogVerificationFailed,
    audit,
    compare,
    export_evidence,
    figures,
    log_status,
)
from app.store.rewards_models import LedgerScope, RewardRecord, UsageDay
from app.store.tlog_models import LogCheckpoint, LogFailure, LogPin, LogProof, ledger_proofs
from app.tlog import Checkpoint, Signer, Verifier, open_checkpoint, tiles_for_size
from registry import translog
from tests.integration.cli_helpers import run_cli
from tests.integration.faults.helpers import (
    Desk,
    desk_fixture,  # noqa: F401 - fixture 'desk'
    make_desk,
    operator_fixture,  # noqa: F401 - fixture 'operator'
    operator_registry_fixture,  # noqa: F401 - fixture 'registry', taking the operator's usage
)
from tests.support.registry_actors import Contributor
from tests.support.registry_server import RegistryProcess
from tests.support.rewards_flow import (
    accepted_items,
    age_summary_check,
    age_usage_windows,
    post_usage,
    usage_events,
)
from tests.unit.tlog.test_tlog_go_interop import gocheck  # noqa: F401 - fixture

pytestmark = pytest.mark.slow


def _db(tmp_path: Path) -> Path:
    return tmp_path / "registry" / "registry.sqlite3"


# The registry's log tables (a rebuilt log replaces them all).
LOG_TABLES = ("log_leaves", "log_bundles", "log_ranges", "log_tiles", "log_checkpoints")


def _tamper(tmp_path: Path, *statements: str) -> None:
    """Change the registry's database behind its back (append-only triggers dropped)."""
    con = sqlite3.connect(_db(tmp_path), timeout=30)
    try:
        con.execute("DROP TRIGGER IF EXISTS ledger_no_update")
        con.execute("DROP TRIGGER IF EXISTS ledger_no_delete")
        for sql in statements:
            con.execute(sql)
        con.commit()
    finally:
        con.close()


def _sync(desk: Desk) -> Any:
    owner = IdentityService(desk.ctx).current()
    assert owner is not None
    client = make_client(desk.ctx)
    try:
        return RewardsSync(desk.ctx, client, owner.fingerprint).run()
    finally:
        client.close()


def _go_check(
    run: Callable[[Path], dict[str, Any]],
    folder: Path,
    note: str,
    vkey: str,
    inclusion: list[dict[str, Any]] = (),  # type: ignore[assignment]
    tiles_from: str | None = None,
) -> dict[str, Any]:
    """Go's reference implementation (x/mod sumdb note and tlog) checks a signed checkpoint
    from the exported evidence with the log key, and inclusion proofs against it."""
    folder.mkdir(parents=True)
    (folder / "checkpoint").write_text(note, encoding="utf-8")
    if tiles_from is not None:  # the hash tiles of that tree, as the registry serves them
        size = int(note.split("\n")[1])
        with httpx.Client(base_url=tiles_from) as http:
            for t in tiles_for_size(size):
                r = http.get("/v1/log/" + t.path)
                assert r.status_code == 200, t.path
                (folder / t.path).parent.mkdir(parents=True, exist_ok=True)
                (folder / t.path).write_bytes(r.content)
    request = {
        "vkey": vkey,
        "skey": Signer.generate("go-check").skey,
        "signText": "unused\n",
        "inclusion": list(inclusion),
        "consistency": [],
        "bundles": [],
    }
    (folder / "request.json").write_text(json.dumps(request), encoding="utf-8")
    return run(folder)


def _snapshot(ctx: ServiceContext) -> dict[str, Any]:
    """Everything the app stored about rewards and the log, except recorded failures."""
    with ctx.db.session() as s:
        return {
            "records": sorted(
                tuple(r)
                for r in s.execute(
                    select(
                        LedgerScope.registry_key,
                        RewardRecord.cursor,
                        RewardRecord.amount_micro,
                        RewardRecord.contribution_id,
                    ).join(LedgerScope, LedgerScope.id == RewardRecord.scope)
                )  # fmt: skip
            ),
            "checkpoints": sorted(
                (c.registry_key, c.size, c.note) for c in s.scalars(select(LogCheckpoint))
            ),
            "proofs": sorted(
                (p.cursor, p.tree_size, p.leaf, p.proof) for p in s.scalars(select(LogProof))
            ),
            "pins": sorted((p.origin, p.vkey) for p in s.scalars(select(LogPin))),
            "days": {
                cid: _days(ctx, cid)
                for cid in set(s.scalars(select(UsageDay.contribution_id).distinct()))
            },
        }


def _days(ctx: ServiceContext, contribution_id: str) -> list[tuple[Any, ...]]:
    """The usage days stored for one contribution."""
    with ctx.db.session() as s:
        return sorted(
            (d.day, d.model_id, d.method, d.events, d.reward_micro)
            for d in s.scalars(select(UsageDay).where(UsageDay.contribution_id == contribution_id))
        )


def _failures(ctx: ServiceContext) -> list[str]:
    with ctx.db.session() as s:
        return [f.what for f in s.scalars(select(LogFailure).order_by(LogFailure.id))]


def _mine(desk: Desk, tmp_path: Path) -> list[int]:
    """Ledger ids of the desk's contributor entries, from the registry's database."""
    owner = IdentityService(desk.ctx).current()
    assert owner is not None
    con = sqlite3.connect(_db(tmp_path), timeout=30)
    try:
        rows = con.execute(
            "SELECT id FROM ledger WHERE owner_fingerprint = ? ORDER BY id", (owner.fingerprint,)
        ).fetchall()
    finally:
        con.close()
    return [int(r[0]) for r in rows]


@pytest.fixture
def synced(desk: Desk, registry: RegistryProcess, operator: Contributor) -> tuple[Desk, list[str]]:
    """A desk with accepted contributions, usage settled and synced once: all verified."""
    cids = accepted_items(desk, "alpha", "beta")
    post_usage(registry, operator, usage_events("first", cids, 40))
    report = _sync(desk)
    assert report.new_entries > 0
    result = audit(desk.ctx)
    assert result.ok, result.to_json()
    [reg] = result.registries
    assert reg["verifiedEntries"] == report.new_entries and reg["pendingEntries"] == 0
    return desk, cids


def test_sync_verifies_every_entry_and_audit_passes_offline(
    synced: tuple[Desk, list[str]], registry: RegistryProcess, data_dir: Path
) -> None:
    desk, cids = synced
    with desk.ctx.db.session() as s:
        [pin] = s.scalars(select(LogPin)).all()
        records = s.scalar(select(func.count()).select_from(RewardRecord))
        cursors = list(s.scalars(select(LogProof.cursor)))
        keys = set(
            s.scalars(
                select(LedgerScope.registry_key).join(
                    RewardRecord, RewardRecord.scope == LedgerScope.id
                )
            )
        )
    assert pin.source == "first-contact"
    assert keys == {pin.vkey}  # the registry's identity is its log key
    accepted = sorted(c for c in cursors if c.startswith("acceptance:"))
    assert records == len(cursors) - len(accepted)
    with desk.ctx.db.session() as s:  # the proofs' count, kept by triggers, says the same
        [owner] = set(
            s.scalars(
                select(LedgerScope.owner).join(RewardRecord, RewardRecord.scope == LedgerScope.id)
            )
        )
        assert ledger_proofs(s, pin.vkey, owner) == records
    assert accepted == sorted(f"acceptance:{c}" for c in cids)  # both acceptances in the log
    pins = run_cli("log-key", "--json", data_dir=data_dir)
    assert pins.code == 0, pins.err
    assert json.loads(pins.out)["keys"][0]["logKey"] == pin.vkey
    out = run_cli("audit", "--json", data_dir=data_dir)
    assert out.code == 0 and json.loads(out.out)["ok"] is True
    assert json.loads(out.out)["registries"][0]["verifiedAcceptances"] == len(cids)
    text = run_cli("audit", data_dir=data_dir)  # the text output says the same
    assert text.code == 0, text.err
    assert f"{len(cids)} contribution acceptances verified" in text.out, text.out


def test_log_status_counts_what_the_sync_verified(synced: tuple[Desk, list[str]]) -> None:
    desk, cids = synced
    with desk.ctx.db.session() as s:
        [(key, owner)] = s.execute(
            select(LedgerScope.registry_key, LedgerScope.owner)
            .join(RewardRecord, RewardRecord.scope == LedgerScope.id)
            .distinct()
        ).all()
        per: dict[str, int] = {}
        for cid in s.scalars(select(RewardRecord.contribution_id)):
            per[cid] = per.get(cid, 0) + 1
        entry = s.scalars(
            select(LogProof).where(~LogProof.cursor.startswith("acceptance:"))
        ).first()
        assert entry is not None
        s.delete(entry)  # one entry of one contribution loses its proof: pending again
        pending_cid = s.scalar(
            select(RewardRecord.contribution_id).where(RewardRecord.cursor == entry.cursor)
        )
        s.commit()
    status = log_status(desk.ctx, key, owner)
    assert status is not None
    assert status.acceptances == frozenset(cids)
    assert (status.verified, status.pending) == (sum(per.values()) - 1, 1)
    assert status.per_contribution == {
        c: (n - (c == pending_cid), int(c == pending_cid)) for c, n in per.items()
    }
    assert pending_cid is not None and status.contribution_state(pending_cid) == "pending"


def test_amount_changed_in_the_database_is_detected(
    gocheck: Callable[[Path], dict[str, Any]],  # noqa: F811
    synced: tuple[Desk, list[str]],
    registry: RegistryProcess,
    operator: Contributor,
    tmp_path: Path,
    data_dir: Path,
) -> None:
    desk, cids = synced
    _changed_amount_is_caught(gocheck, desk, cids, registry, operator, tmp_path, data_dir)


def _changed_amount_is_caught(
    gocheck: Callable[[Path], dict[str, Any]],  # noqa: F811
    desk: Desk,
    cids: list[str],
    registry: RegistryProcess,
    operator: Contributor,
    tmp_path: Path,
    data_dir: Path,
) -> None:
    """A new entry's amount changed in the registry's database fails the sync as (entry), keeps
    the copy as it was, and the exported evidence verifies, by our code and by Go's tlog."""
    before = _snapshot(desk.ctx)
    known = set(_mine(desk, tmp_path))
    post_usage(registry, operator, usage_events("second", cids, 10))
    new = [i for i in _mine(desk, tmp_path) if i not in known]
    _tamper(tmp_path, f"UPDATE ledger SET amount_micro = amount_micro + 1000 WHERE id = {new[0]}")
    with pytest.raises(LogVerificationFailed, match=r"\(entry\).*amountMicro"):
        _sync(desk)
    after = _snapshot(desk.ctx)
    assert after["records"] == before["records"] and after["proofs"] == before["proofs"]
    assert _failures(desk.ctx) == ["entry"]
    # the CLI says so too, with exit code 4, and the evidence verifies
    res = run_cli("audit", "--export", str(tmp_path / "ev.json"), data_dir=data_dir)
    assert res.code == 4 and "FAILED" in res.out
    doc = json.loads((tmp_path / "ev.json").read_text())
    [failure] = doc["logs"][0]["failures"]
    ev, vkey = failure["evidence"], doc["logs"][0]["logKey"]
    _check_inclusion_evidence(ev, vkey)
    go = _go_check(
        gocheck, tmp_path / "go", ev["checkpoint"], vkey,
        [{"index": ev["leafIndex"], "entry": ev["leaf"], "proof": ev["proof"]}],
        tiles_from=registry.base_url,
    )  # fmt: skip
    assert go["checkpointError"] == "" and go["inclusionErrors"] in (None, [""])


def test_an_acknowledged_failure_is_kept_and_no_longer_fails_the_audit(
    synced: tuple[Desk, list[str]],
    registry: RegistryProcess,
    operator: Contributor,
    tmp_path: Path,
    data_dir: Path,
) -> None:
    """`audit --acknowledge`: the recorded failure stays, with its evidence, in the audit and
    the export, but no longer fails the audit nor shows on the Rewards page; a new failure
    fails both again."""
    desk, cids = synced
    known = set(_mine(desk, tmp_path))
    post_usage(registry, operator, usage_events("second", cids, 10))
    new = [i for i in _mine(desk, tmp_path) if i not in known]
    _tamper(tmp_path, f"UPDATE ledger SET amount_micro = amount_micro + 1000 WHERE id = {new[0]}")
    with pytest.raises(LogVerificationFailed):
        _sync(desk)
    with desk.ctx.db.session() as s:
        [(key, owner)] = s.execute(
            select(LedgerScope.registry_key, LedgerScope.owner)
            .join(RewardRecord, RewardRecord.scope == LedgerScope.id)
            .distinct()
        ).all()
    status = log_status(desk.ctx, key, owner)
    assert status is not None and status.failure is not None
    assert run_cli("audit", data_dir=data_dir).code == 4

    res = run_cli("audit", "--acknowledge", "--json", data_dir=data_dir)
    assert res.code == 0, res.out
    out = json.loads(res.out)
    assert out["ok"] is True and out["acknowledged"] == 1
    [failure] = out["registries"][0]["failures"]
    assert failure["what"] == "entry" and failure["acknowledgedAt"] is not None
    status = log_status(desk.ctx, key, owner)
    assert status is not None and status.failure is None
    text = run_cli("audit", data_dir=data_dir)  # nothing left to acknowledge: still passes
    assert text.code == 0 and "(acknowledged " in text.out and "Audit: OK" in text.out
    assert run_cli("audit", "--export", str(tmp_path / "ev.json"), data_dir=data_dir).code == 0
    [kept] = json.loads((tmp_path / "ev.json").read_text())["logs"][0]["failures"]
    assert kept["acknowledgedAt"] == failure["acknowledgedAt"] and kept["evidence"]["reported"]

    with pytest.raises(LogVerificationFailed):  # the registry still lies: a new failure
        _sync(desk)
    assert _failures(desk.ctx) == ["entry", "entry"]
    status = log_status(desk.ctx, key, owner)
    assert status is not None and status.failure is not None
    assert run_cli("audit", data_dir=data_dir).code == 4


def _check_inclusion_evidence(ev: dict[str, Any], vkey: str) -> None:
    """The exported leaf is in the signed checkpoint, and says another amount than reported."""
    import base64

    from app.tlog import leaf_hash, verify_inclusion

    cp, _ = open_checkpoint(ev["checkpoint"].encode(), Verifier.from_vkey(vkey))
    leaf = base64.b64decode(ev["leaf"])
    proof = [base64.b64decode(h) for h in ev["proof"]]
    verify_inclusion(ev["leafIndex"], cp.size, leaf_hash(leaf), proof, cp.root)
    assert json.loads(leaf)["amountMicro"] != ev["reported"]["amountMicro"]


def test_deleted_entry_is_detected_by_the_figures(
    synced: tuple[Desk, list[str]],
    registry: RegistryProcess,
    operator: Contributor,
    tmp_path: Path,
) -> None:
    desk, cids = synced
    before = _snapshot(desk.ctx)
    known = set(_mine(desk, tmp_path))
    post_usage(registry, operator, usage_events("third", cids, 10))
    new = [i for i in _mine(desk, tmp_path) if i not in known]
    _tamper(tmp_path, f"DELETE FROM ledger WHERE id = {new[-1]}")
    with pytest.raises(LogVerificationFailed, match=r"\(usage\)") as failed:
        _sync(desk)
    after = _snapshot(desk.ctx)
    # entries stored before are untouched (the verified new ones were added next to them)
    assert set(before["records"]) <= set(after["records"])
    assert set(before["checkpoints"]) <= set(after["checkpoints"])
    assert _failures(desk.ctx) == ["usage"]
    # the usage of the contribution that does not add up is not stored
    cid = next(c for c in cids if c in str(failed.value))
    assert _days(desk.ctx, cid) == before["days"][cid]


@pytest.mark.parametrize("how", ["truncated", "replayed"])
def test_truncated_log_or_replayed_checkpoint_is_detected(
    synced: tuple[Desk, list[str]],
    registry: RegistryProcess,
    operator: Contributor,
    tmp_path: Path,
    data_dir: Path,
    how: str,
) -> None:
    desk, cids = synced
    post_usage(registry, operator, usage_events("fourth", cids, 5))
    _sync(desk)  # a second checkpoint stored
    before = _snapshot(desk.ctx)
    sizes = sorted(size for _k, size, _n in before["checkpoints"])
    old = sizes[-2]
    if how == "truncated":
        _tamper(
            tmp_path,
            f"DELETE FROM log_leaves WHERE idx >= {old}",
            f"DELETE FROM log_checkpoints WHERE size > {old}",
            f"UPDATE log_state SET size = {old}, ledger_id = (SELECT max(id) FROM ledger)",
        )
    else:  # the tree stays, the registry serves an older signed checkpoint
        _tamper(tmp_path, f"DELETE FROM log_checkpoints WHERE size > {old}")
    with pytest.raises(LogVerificationFailed, match=r"\(rollback\)"):
        _sync(desk)
    assert _snapshot(desk.ctx) == before
    assert run_cli("audit", "--export", str(tmp_path / "ev.json"), data_dir=data_dir).code == 4
    doc = json.loads((tmp_path / "ev.json").read_text())
    [failure] = doc["logs"][0]["failures"]
    vkey = doc["logs"][0]["logKey"]
    newer, older = (
        open_checkpoint(n.encode(), Verifier.from_vkey(vkey))[0]
        for n in failure["evidence"]["checkpoints"]
    )
    assert older.size < newer.size  # both signed by the log key: the rollback is proven


def test_checkpoint_signed_by_another_key_is_detected(
    synced: tuple[Desk, list[str]], tmp_path: Path
) -> None:
    desk, _ = synced
    before = _snapshot(desk.ctx)
    engine = create_engine(f"sqlite:///{_db(tmp_path)}")
    with Session(engine) as s:
        origin = s.execute(text("SELECT value FROM registry_meta WHERE key='log_origin'")).scalar()
        size = translog.tree_size(s)
        root = translog.tiled_log(s, size).root()
        forged = Checkpoint(str(origin), size + 1, root).sign(Signer.generate(str(origin)))
        s.execute(
            text(
                "INSERT INTO log_checkpoints (size, note, created_at) VALUES (:s, :n, '2030-01-01')"
            ),
            {"s": size + 1, "n": forged},
        )
        s.commit()
    engine.dispose()
    with pytest.raises(LogVerificationFailed, match=r"\(signature\)"):
        _sync(desk)
    assert _snapshot(desk.ctx) == before


def test_a_changed_log_key_is_refused(synced: tuple[Desk, list[str]], tmp_path: Path) -> None:
    desk, _ = synced
    before = _snapshot(desk.ctx)
    engine = create_engine(f"sqlite:///{_db(tmp_path)}")
    with Session(engine) as s:
        origin = s.execute(text("SELECT value FROM registry_meta WHERE key='log_origin'")).scalar()
        s.execute(
            text("UPDATE registry_meta SET value = :v WHERE key = 'log_skey'"),
            {"v": Signer.generate(str(origin)).skey},
        )
        s.commit()
    engine.dispose()
    with pytest.raises(LogVerificationFailed, match=r"\(key\).*log key changed"):
        _sync(desk)
    assert _snapshot(desk.ctx) == before


def test_a_fork_served_to_two_clients_is_detected(
    gocheck: Callable[[Path], dict[str, Any]],  # noqa: F811
    data_dir: Path,
    synced: tuple[Desk, list[str]],
    registry: RegistryProcess,
    tmp_path: Path,
    isolated_keyring: Path,
) -> None:
    desk, _ = synced
    # The registry rewrites its history (one protocol entry's leaf) and signs the new tree
    # of the same size with its real key, then shows it to another contributor.
    engine = create_engine(f"sqlite:///{_db(tmp_path)}")
    with Session(engine) as s:
        size = translog.tree_size(s)
        leaves = translog.all_leaves(s)
        i = next(n for n, lf in enumerate(leaves) if b'"kind":"protocol"' in lf.data)
        leaves[i] = translog.Leaf(
            leaves[i].kind,
            leaves[i].ref,
            leaves[i].data.replace(b'"amountMicro":', b'"amountMicro":9'),
        )
        for table in LOG_TABLES:
            s.execute(text(f"DELETE FROM {table}"))
        s.execute(text("UPDATE log_state SET size = 0"))
        translog.append(s, leaves)
        assert translog.tree_size(s) == size
        s.commit()
    engine.dispose()
    (tmp_path / "b").mkdir()
    other = make_desk(tmp_path / "b", tmp_path / "b-data", registry.base_url)
    try:
        _sync(other)  # sees the forked tree only: nothing to notice on its own
        export_evidence(other.ctx, tmp_path / "other.json")
        # contributor A compares with B's export: two signed trees of one size
        result = compare(desk.ctx, tmp_path / "other.json")
        assert result.compared >= 1 and len(result.split_views) == 1
        sv = result.split_views[0]
        vkey = _snapshot(desk.ctx)["pins"][0][1]
        ours = open_checkpoint(sv["ours"].encode(), Verifier.from_vkey(vkey))[0]
        theirs = open_checkpoint(sv["theirs"].encode(), Verifier.from_vkey(vkey))[0]
        assert ours.size == theirs.size and ours.root != theirs.root
        # Go's note and tlog packages accept both signed checkpoints: the split view is proven
        go = [_go_check(gocheck, tmp_path / f"go-{n}", sv[n], vkey) for n in ("ours", "theirs")]
        assert [g["checkpointError"] for g in go] == ["", ""]
        assert go[0]["size"] == go[1]["size"] and go[0]["root"] != go[1]["root"]
        # the CLI says so with exit code 4
        cli = run_cli("audit", "--compare", str(tmp_path / "other.json"), data_dir=data_dir)
        assert cli.code == 4 and "SPLIT VIEW" in cli.out, cli.out + cli.err
        # and A's own next sync sees the fork too
        before = _snapshot(desk.ctx)
        with pytest.raises(LogVerificationFailed, match=r"\(fork\)"):
            _sync(desk)
        assert _snapshot(desk.ctx) == before
    finally:
        other.ctx.close()


def _registry_rows(tmp_path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(_db(tmp_path), timeout=30)
    try:
        return [tuple(r) for r in con.execute(sql, params).fetchall()]
    finally:
        con.close()


@pytest.mark.parametrize(
    ("change", "which", "chunk"),
    [("reward", 0, 50), ("events", 0, 50), ("reward", 1, 1), ("events", 1, 1)],
)
def test_a_changed_usage_bucket_is_detected(
    synced: tuple[Desk, list[str]],
    tmp_path: Path,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: str,
    which: int,
    chunk: int,
) -> None:
    """The usage series must add up to the ledger entries of its days, models and methods:
    a day bucket changed in the database (no entry changed) fails the sync, and the stored
    usage of that contribution stays as it was. Also when the stored days are read one
    contribution at a time and the changed window is not the first (figures.StoredDays)."""
    monkeypatch.setattr(figures, "STORED_DAYS_CHUNK", chunk)
    desk, cids = synced
    before = _snapshot(desk.ctx)
    cid = cids[which]
    [(day, model, method, events)] = _registry_rows(
        tmp_path,
        "SELECT bucket_start, model_id, method, events FROM usage_buckets "
        "WHERE contribution_id = ? AND reward_micro > 0 ORDER BY bucket_start DESC LIMIT 1",
        cid,
    )
    assert events > 0
    where = (
        f"WHERE contribution_id = '{cid}' AND bucket_start = '{day}' "
        f"AND model_id = '{model}' AND method = '{method}'"
    )
    if change == "reward":
        _tamper(tmp_path, f"UPDATE usage_buckets SET reward_micro = reward_micro + 1 {where}")
    else:  # fewer events than the verified entries of that day say they sum
        _tamper(tmp_path, f"UPDATE usage_buckets SET events = 0 {where}")
    age_usage_windows(desk.ctx)  # no settlement moved: windows are read again once a day old
    with pytest.raises(LogVerificationFailed, match=rf"\(usage\).*{cid}"):
        _sync(desk)
    assert _snapshot(desk.ctx) == before
    assert _failures(desk.ctx) == ["usage"]
    res = run_cli("audit", "--export", str(tmp_path / "ev.json"), data_dir=data_dir)
    assert res.code == 4 and "FAILED" in res.out
    [failure] = json.loads((tmp_path / "ev.json").read_text())["logs"][0]["failures"]
    assert failure["evidence"]["contributionId"] == cid and failure["evidence"]["cells"]


def test_usage_settled_during_the_sync_is_fetched_once_and_checked(
    synced: tuple[Desk, list[str]],
    registry: RegistryProcess,
    operator: Contributor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Usage settled after the sync read the ledger and before it reads the windows: the
    first window counts entries the sync has not fetched, so they are fetched then (once),
    and every later window is checked against the stored days with them (the stored days
    read before are read again, not used stale): the sync passes, the audit too, and the
    stored usage is the registry's."""
    desk, cids = synced
    late = usage_events("late", cids, 12)
    catch_ups: list[int] = []
    verify_acceptances = LogSync.verify_acceptances
    catch_up = RewardsSync._catch_up

    def settle_then_verify(self: LogSync, ids: Any) -> None:
        post_usage(registry, operator, late)  # settled when it returns
        verify_acceptances(self, ids)

    def counted(self: RewardsSync, say: Any) -> None:
        catch_ups.append(1)
        catch_up(self, say)

    monkeypatch.setattr(LogSync, "verify_acceptances", settle_then_verify)
    monkeypatch.setattr(RewardsSync, "_catch_up", counted)
    age_usage_windows(desk.ctx)  # every window is read again
    report = _sync(desk)
    assert len(catch_ups) == 1
    assert report.new_entries > 0  # the late entries, fetched by the catch-up
    result = audit(desk.ctx)
    assert result.ok, result.to_json()
    assert _failures(desk.ctx) == []
    client = make_client(desk.ctx)
    try:
        for cid in cids:
            served = usage_window(client, cid, since=datetime.now(UTC).date() - timedelta(days=89))
            with desk.ctx.db.session() as s:
                stored = s.scalar(
                    select(func.sum(UsageDay.reward_micro)).where(
                        UsageDay.contribution_id == cid,
                        UsageDay.day >= served.since,
                    )
                )
            assert stored == sum(p.reward_micro for p in served.points) > 0
    finally:
        client.close()


def test_a_changed_model_total_is_detected(
    desk: Desk, registry: RegistryProcess, operator: Contributor, tmp_path: Path
) -> None:
    """The summary's per-model totals must add up to the entries of each model: usage from
    200 days ago (older than any usage window fetched) moved to another model in the database
    leaves the total and the per-contribution figures as they were, and fails the sync."""
    cids = accepted_items(desk, "alpha", "beta")
    old = usage_events("old", cids, 6)
    for e in old:
        e["at"] = (datetime.fromisoformat(e["at"]) - timedelta(days=200)).isoformat()
    post_usage(registry, operator, old + usage_events("new", cids, 6))
    _sync(desk)
    before = _snapshot(desk.ctx)
    _tamper(
        tmp_path,
        "UPDATE usage_buckets SET model_id = 'other-model' WHERE bucket_start < "
        f"'{(datetime.now(UTC) - timedelta(days=150)).date()}'",
    )
    # Nothing new since the last sync: its summary is read again once a day.
    age_summary_check(desk.ctx)
    with pytest.raises(LogVerificationFailed, match=r"\(summary\).*for model sync-model"):
        _sync(desk)
    assert _snapshot(desk.ctx) == before
    assert _failures(desk.ctx) == ["summary"]


@pytest.mark.parametrize("how", ["leaf row", "relogged"])
def test_a_changed_acceptance_is_detected(
    desk: Desk, registry: RegistryProcess, operator: Contributor, tmp_path: Path, how: str
) -> None:
    """Each accepted contribution's acceptance leaf must be in the log and name what the
    catalogue submitted: a leaf row changed behind the tree (its proof fails), or a log
    rebuilt and signed whose acceptance names another manifest, fails the first sync."""
    cids = accepted_items(desk, "alpha", "beta")
    post_usage(registry, operator, usage_events("first", cids, 10))
    [(idx, leaf)] = _registry_rows(
        tmp_path, "SELECT idx, leaf FROM log_leaves WHERE kind = 'acceptance' AND ref = ?", cids[1]
    )
    obj = json.loads(leaf)
    obj["manifestSha256"] = "0" * 64
    forged = translog.canonical_json(obj)
    if how == "leaf row":
        con = sqlite3.connect(_db(tmp_path), timeout=30)
        con.execute("UPDATE log_leaves SET leaf = ? WHERE idx = ?", (forged, idx))
        con.commit()
        con.close()
        expected = r"\(acceptance\).*not in the log"
    else:  # the whole log rebuilt around the forged leaf and signed with the real key
        engine = create_engine(f"sqlite:///{_db(tmp_path)}")
        with Session(engine) as s:
            leaves = [
                translog.Leaf(lf.kind, lf.ref, forged if i == idx else lf.data)
                for i, lf in enumerate(translog.all_leaves(s))
            ]
            for table in LOG_TABLES:
                s.execute(text(f"DELETE FROM {table}"))
            s.execute(text("UPDATE log_state SET size = 0"))
            translog.append(s, leaves)
            s.commit()
        engine.dispose()
        expected = r"\(acceptance\).*manifest 0{64}"
    with pytest.raises(LogVerificationFailed, match=expected):
        _sync(desk)
    assert _failures(desk.ctx) == ["acceptance"]
    with desk.ctx.db.session() as s:
        stored = set(s.scalars(select(LogProof.cursor)))
    assert f"acceptance:{cids[1]}" not in stored
    assert not audit(desk.ctx).ok  # the recorded failure
