"""Sign and submit agree on the datanet when none is given: an item signed by `sign` (CLI or
GUI) with the setting empty is submitted with that signature, not signed again."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.cli.main import main
from app.services.catalogue import CatalogueService, ImportRequest
from app.services.context import ServiceContext
from app.services.identity import IdentityService
from app.services.signing import DEFAULT_DATANET, SigningService, datanet_for
from app.services.submit import SubmitService
from app.settings import DATANET
from app.store.models import Envelope

PASS = "correct horse battery staple 42"
UNREACHABLE = "http://127.0.0.1:9"


@pytest.fixture
def desk(tmp_path: Path, isolated_keyring: Path) -> tuple[ServiceContext, int]:
    ctx = ServiceContext(tmp_path / "desk", UNREACHABLE)
    IdentityService(ctx).init(PASS, use_key_file=True)
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.txt").write_text("hello\n")
    item = CatalogueService(ctx).add(ImportRequest(paths=[folder], title="t")).id
    return ctx, item


def _envelopes(ctx: ServiceContext, item: int) -> list[str | None]:
    with ctx.db.session() as s:
        return list(s.scalars(select(Envelope.datanet).where(Envelope.item_id == item)))


def test_the_rule_is_asked_then_setting_then_default(desk: tuple[ServiceContext, int]) -> None:
    ctx, _ = desk
    assert datanet_for(ctx, None) == DEFAULT_DATANET
    ctx.settings.set(DATANET, "birds")
    assert datanet_for(ctx, None) == "birds"
    assert datanet_for(ctx, "fish") == "fish"


def test_cli_sign_then_submit_signs_once(
    desk: tuple[ServiceContext, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, item = desk
    monkeypatch.setenv("CONTRIBUTOR_DESK_PASSPHRASE", PASS)
    out = tmp_path / "env.json"
    argv = ["--data-dir", str(ctx.data_dir), "--registry", UNREACHABLE, "sign", str(item)]
    assert main([*argv, "--out", str(out)]) == 0
    assert _envelopes(ctx, item) == [DEFAULT_DATANET]
    SubmitService(ctx).prepare(item, passphrase=PASS)
    assert _envelopes(ctx, item) == [DEFAULT_DATANET]  # the signature from `sign` was kept
    ctx.close()


def test_service_sign_without_datanet_uses_the_setting(desk: tuple[ServiceContext, int]) -> None:
    ctx, item = desk
    ctx.settings.set(DATANET, "birds")
    result = SigningService(ctx).sign_item(item, registry_url=UNREACHABLE, passphrase=PASS)
    assert result.datanet == "birds"
    SubmitService(ctx).prepare(item, passphrase=PASS)
    with ctx.db.session() as s:
        assert s.scalar(select(func.count()).where(Envelope.item_id == item)) == 1
    ctx.close()
