"""Choosing a datanet: the list (cached for offline use), the rule check of an item against
the real registry (content rules from the real format detection, duplicates asked by digest),
and the rules version the signature carries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.domain.errors import BadInputError
from app.services.clients import make_client
from app.services.datanets import DatanetService
from app.services.item_review import review_item
from app.services.submit import SubmitService
from app.signing import dsse
from app.signing.statement import parse_statement
from app.store.models import Envelope
from tests.integration.cli_helpers import run_cli
from tests.integration.faults.helpers import (
    Desk,
    desk_fixture,  # noqa: F401 - fixture 'desk'
    make_desk,
    registry_fixture,  # noqa: F401 - fixture 'registry'
)
from tests.support.registry_actors import Contributor
from tests.support.registry_server import RegistryProcess

pytestmark = pytest.mark.slow

TABLE = b"id,text,label\n1,a,x\n2,b,y\n3,c,z\n"


class Owner:
    """Another key, signed in over HTTP, that owns datanets."""

    def __init__(self, registry: RegistryProcess) -> None:
        self.http = httpx.Client(base_url=registry.base_url, timeout=10)
        self.who = Contributor()
        self.who.sign_in(self.http)  # type: ignore[arg-type]

    def create(self, net_id: str, rules: dict[str, Any], description: str = "") -> Any:
        r = self.http.post(
            "/v1/datanets",
            json={"id": net_id, "name": net_id.title(), "description": description,
                  "rules": rules},
            headers=self.who.headers,
        )  # fmt: skip
        assert r.status_code == 201, r.text
        return r.json()

    def set_rules(self, net_id: str, rules: dict[str, Any]) -> int:
        r = self.http.patch(
            f"/v1/datanets/{net_id}", json={"rules": rules}, headers=self.who.headers
        )
        assert r.status_code == 200, r.text
        return int(r.json()["rulesVersion"])


@pytest.fixture(name="owner")
def owner_fixture(registry: RegistryProcess) -> Any:
    o = Owner(registry)
    yield o
    o.http.close()


def _check(desk: Desk, item: int, net: str) -> Any:
    client = make_client(desk.ctx)
    try:
        return DatanetService(desk.ctx).check_item(item, net, client)
    finally:
        client.close()


def test_content_rules_judge_the_detected_columns_and_records(desk: Desk, owner: Owner) -> None:
    owner.create("labelled", {"requiredColumns": ["id", "label"], "minRecords": 4})
    item = desk.add("t", {"a.csv": TABLE, "b.csv": b"id,text\n9,q\n"})
    check = _check(desk, item, "labelled")
    assert check.checked and check.rules_version == 1
    assert {(p.code, p.path) for p in check.problems} == {("missing_columns", "b.csv")}
    assert any("b.csv: Missing required column(s) label" in t for t in check.texts)
    owner.set_rules("labelled", {"requiredColumns": ["id"], "minRecords": 5})
    check = _check(desk, item, "labelled")
    assert check.rules_version == 2
    assert [p.code for p in check.problems] == ["too_few_records"]  # 3 + 1 rows


def test_duplicates_of_the_datanets_accepted_content_are_found_before_signing(
    desk: Desk, owner: Owner, registry: RegistryProcess
) -> None:
    owner.create("unique", {"noDuplicates": True})
    first = desk.add("first", {"a.csv": TABLE})
    assert SubmitService(desk.ctx).submit(first, datanet="unique").registry_id
    desk.queue().run()
    assert desk.state(first) == "accepted"
    again = desk.add("again", {"copy.csv": TABLE, "new.csv": b"id\n7\n"})
    with pytest.raises(BadInputError) as err:
        SubmitService(desk.ctx).submit(again, datanet="unique")
    assert "copy.csv: The datanet already holds an exact copy" in err.value.message
    assert desk.state(again) == "draft"
    # Another datanet does not hold it: no duplicate there.
    owner.create("other", {"noDuplicates": True})
    assert _check(desk, again, "other").problems == ()


def test_the_signature_carries_the_rules_version_and_a_change_means_signing_again(
    desk: Desk, owner: Owner
) -> None:
    owner.create("birds", {})
    owner.set_rules("birds", {"formats": ["csv"]})  # version 2
    item = desk.add("b", {"a.csv": TABLE})
    result = SubmitService(desk.ctx).submit(item, datanet="birds")
    assert result.registry_id and not result.offline
    with desk.ctx.db.session() as s:
        env = s.query(Envelope).filter_by(item_id=item).one()
        pred = parse_statement(dsse.Envelope.from_dict(env.envelope).payload).predicate
    assert (pred.datanet, pred.rules_version) == ("birds", 2)


def test_datanets_are_listed_and_cached_for_offline_use(
    tmp_path: Path, desk: Desk, owner: Owner, registry: RegistryProcess, data_dir: Path
) -> None:
    owner.create("birds", {"formats": ["csv"], "review": True}, description="Photos of birds")
    cli = run_cli("--registry", registry.base_url, "datanets", "--json", data_dir=data_dir)
    assert cli.code == 0, cli.err
    listed = {d["id"]: d for d in json.loads(cli.out)["datanets"]}
    assert listed["birds"]["owner"] == owner.who.fingerprint
    assert listed["birds"]["description"] == "Photos of birds"
    assert listed["birds"]["rules"]["review"] is True
    human = run_cli("--registry", registry.base_url, "datanets", data_dir=data_dir)
    assert "owner reviews every contribution" in human.out and "Formats: csv" in human.out

    item = desk.add("b", {"a.csv": TABLE, "n.txt": b"x"})
    _check(desk, item, "birds")  # caches it
    registry.kill()
    offline = run_cli("--registry", registry.base_url, "datanets", "--json", data_dir=data_dir)
    body = json.loads(offline.out)
    assert offline.code == 0 and body["offline"] is True
    assert {d["id"] for d in body["datanets"]} >= {"birds", "open-data"}
    review = review_item(desk.ctx, item, datanet="birds")  # offline: judged by the cache
    assert review.rules_checked and "offline" in review.note
    assert any(p.startswith("n.txt: ") for p in review.problems)
    assert review.datanet_name == "Birds" and review.datanet_owner == owner.who.fingerprint


def test_an_unknown_datanet_is_a_clear_problem(desk: Desk) -> None:
    item = desk.add("b", {"a.csv": TABLE})
    review = review_item(desk.ctx, item, datanet="no-such-net")
    assert not review.ready
    assert any("has no datanet 'no-such-net'" in p for p in review.problems)


def test_offline_without_a_cache_notes_the_unchecked_rules(
    tmp_path: Path, data_dir: Path, isolated_keyring: Path
) -> None:
    desk = make_desk(tmp_path, data_dir, "http://127.0.0.1:9")
    try:
        item = desk.add("g", {"g.csv": TABLE})
        check = _check(desk, item, "birds")
        assert not check.checked and "not cached" in check.note
    finally:
        desk.ctx.close()
