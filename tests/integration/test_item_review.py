"""The pre-sign review (the GUI's review sheet) and editing a draft, against the real registry."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from app.domain.errors import BadInputError
from app.services.catalogue import CatalogueService
from app.services.item_review import review_item, update_details
from app.services.signing import SigningService
from app.store.models import HistoryEntry
from tests.integration.faults.helpers import (
    Desk,
    desk_fixture,  # noqa: F401 - fixture 'desk'
    make_desk,
    registry_fixture,  # noqa: F401 - fixture 'registry'
)
from tests.integration.test_datanet_precheck import STRICT, _add_datanet
from tests.support.registry_server import RegistryProcess

pytestmark = pytest.mark.slow


def test_review_lists_every_broken_rule_and_a_missing_license(
    desk: Desk, registry: RegistryProcess
) -> None:
    _add_datanet(registry, "strict", STRICT)
    item = desk.add("birds", {"a.csv": b"x,y\n1,2\n", "notes/readme.txt": b"hi"})
    review = review_item(desk.ctx, item, datanet="strict")
    assert review.rules_checked and not review.ready
    assert "License 'CC-BY-4.0' is not one of CC0-1.0. (License rule)" in review.problems
    assert any(p.startswith("notes/readme.txt: ") for p in review.problems)
    assert (review.title, review.license, review.datanet) == ("birds", "CC-BY-4.0", "strict")
    assert review.file_count == 2

    update_details(desk.ctx, item, title="Birds", license="")
    unlicensed = review_item(desk.ctx, item)  # the default datanet accepts any license...
    assert unlicensed.rules_checked
    assert unlicensed.problems == ("No license is chosen: edit the details and choose one.",)
    update_details(desk.ctx, item, title="Birds", license="CC0-1.0")
    assert review_item(desk.ctx, item).ready  # ...but the app asks for one before signing


def test_review_offline_notes_the_unchecked_rules(
    tmp_path: Path, data_dir: Path, isolated_keyring: Path
) -> None:
    desk = make_desk(tmp_path, data_dir, "http://127.0.0.1:9")  # nothing listens there
    try:
        item = desk.add("gulls", {"g.csv": b"a\n1\n"})
        review = review_item(desk.ctx, item)
        assert review.ready and not review.rules_checked
        assert "offline" in review.note
    finally:
        desk.ctx.close()


def test_editing_a_signed_item_withdraws_the_signature(desk: Desk) -> None:
    item = desk.add("wrens", {"w.csv": b"a\n1\n"})
    SigningService(desk.ctx).sign_item(item, registry_url=desk.ctx.registry_url, datanet="d")
    assert desk.state(item) == "signed"
    # The description is not in the signed statement: changing it keeps the signature.
    update_details(desk.ctx, item, title="wrens", license="CC-BY-4.0", description=" Small. ")
    assert desk.state(item) == "signed"
    assert CatalogueService(desk.ctx).get(item).description == "Small."
    update_details(desk.ctx, item, title="  Wrens   of the  north ", license="CC-BY-4.0")
    with desk.ctx.db.session() as s:
        last = s.scalars(
            select(HistoryEntry).where(HistoryEntry.item_id == item).order_by(HistoryEntry.id)
        ).all()[-1]
        assert (last.from_state, last.to_state, last.event) == ("signed", "draft", "edited")
        assert "“wrens” → “Wrens of the north”" in last.detail
    assert desk.state(item) == "draft"
    with pytest.raises(BadInputError, match="title is empty"):
        update_details(desk.ctx, item, title="   ", license="")
    with pytest.raises(BadInputError, match="not an SPDX license id"):
        update_details(desk.ctx, item, title="ok", license="CC BY 4.0")
    result = desk.submit(item)
    assert result.registry_id
    desk.queue().run()
    assert desk.state(item) == "accepted"
    with pytest.raises(BadInputError, match="details are fixed now"):
        update_details(desk.ctx, item, title="Renamed after acceptance", license="CC0-1.0")
