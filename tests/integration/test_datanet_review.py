"""Review end to end: a contribution to a datanet with review waits in pending-review; the
owner (another key, or this app's own through DatanetOwnerService) decides with a note; the
contributor's catalogue and timeline show it after sync, and still offline."""

from __future__ import annotations

from typing import Any

import pytest

from app.domain.errors import BadInputError
from app.services.catalogue import CatalogueService
from app.services.clients import make_client
from app.services.datanet_owner import DatanetDraft, DatanetOwnerService
from app.services.submit import SubmitService
from app.store.models import Item
from tests.integration.faults.helpers import (
    Desk,
    desk_fixture,  # noqa: F401 - fixture 'desk'
    registry_fixture,  # noqa: F401 - fixture 'registry'
)
from tests.integration.test_datanet_choice import (
    TABLE,
    Owner,
    owner_fixture,  # noqa: F401 - fixture 'owner'
)
from tests.support.registry_server import RegistryProcess

pytestmark = pytest.mark.slow


def _review(owner: Owner, cid: str, decision: str, note: str) -> None:
    r = owner.http.post(
        f"/v1/contributions/{cid}/review",
        json={"decision": decision, "note": note},
        headers=owner.who.headers,
    )
    assert r.status_code == 200, r.text


def test_pending_review_and_the_decision_reach_the_contributor_online_and_offline(
    desk: Desk, owner: Owner, registry: RegistryProcess
) -> None:
    owner.create("reviewed", {"review": True})
    good = desk.add("good", {"a.csv": TABLE})
    bad = desk.add("bad", {"b.csv": b"id\n1\n"})
    for item in (good, bad):
        assert SubmitService(desk.ctx).submit(item, datanet="reviewed").registry_id
    desk.queue().run()
    assert desk.state(good) == desk.state(bad) == "pending-review"
    ids = {i: CatalogueService(desk.ctx).get(i).registry_id for i in (good, bad)}
    _review(owner, str(ids[good]), "accept", "Clean table, thank you")
    _review(owner, str(ids[bad]), "reject", "One row is not enough")
    desk.queue().sync()
    assert desk.state(good) == "accepted" and desk.state(bad) == "rejected"

    registry.kill()  # offline: everything below is read from the catalogue
    detail = CatalogueService(desk.ctx).get(good)
    events = [(h.event, h.detail) for h in detail.history]
    assert ("pending-review", "the datanet's owner reviews it") in events
    assert ("accepted", "the owner: Clean table, thank you") in events
    with desk.ctx.db.session() as s:
        assert s.get_one(Item, good).review_note == "Clean table, thank you"
        rejected = s.get_one(Item, bad)
        assert rejected.rejection_reasons[0]["code"] == "rejected_by_owner"
        assert rejected.rejection_reasons[0]["message"] == "One row is not enough"


def test_the_app_user_owns_datanets_and_reviews_from_the_app(
    desk: Desk, owner: Owner, registry: RegistryProcess
) -> None:
    service = DatanetOwnerService(desk.ctx)
    client = make_client(desk.ctx)
    try:
        made = service.save(
            client,
            DatanetDraft("my-birds", "My birds", "Bird sightings", {"review": True}),
            new=True,
        )
        assert made.rules_version == 1 and made.owner is not None
        edited = service.save(
            client,
            DatanetDraft("my-birds", "My birds", "Bird sightings",
                         {"review": True, "formats": ["csv"]}),
            new=False,
        )  # fmt: skip
        assert edited.rules_version == 2
        assert [v.id for v in service.mine(client).mine] == ["my-birds"]
        with pytest.raises(BadInputError):
            service.save(client, DatanetDraft("Bad Id", "x", "", {}), new=True)
        with pytest.raises(BadInputError):
            service.save(client, DatanetDraft("ok-id", "x", "", {"minRecords": -1}), new=True)

        # Another key contributes; this app's user sees it in the queue and decides.
        body = _contribution_for(owner, registry, "my-birds", 2)
        r = owner.http.post("/v1/contributions", json=body, headers=owner.who.headers)
        cid = r.json()["id"]
        _upload_and_finalize(owner, cid)
        queue = service.queue(client, "my-birds")
        assert [e.id for e in queue] == [cid]
        assert queue[0].contributor == owner.who.fingerprint and queue[0].rules_version == 2
        with pytest.raises(BadInputError):
            service.decide(client, cid, accept=False, note="  ")  # a rejection needs a note
        assert service.decide(client, cid, accept=True, note="Welcome") == "accepted"
        assert service.queue(client, "my-birds") == []
    finally:
        client.close()


DATA = b"species,count\ngull,3\n"


def _contribution_for(owner: Owner, registry: RegistryProcess, net: str, version: int) -> Any:
    from tests.support.registry_actors import contribution_body

    return contribution_body(
        owner.who.key, {"gulls.csv": DATA}, registry=registry.base_url, datanet=net,
        rules_version=version,
    )  # fmt: skip


def _upload_and_finalize(owner: Owner, cid: str) -> None:
    import base64
    import hashlib

    sha = hashlib.sha256(DATA).hexdigest()
    meta = (
        f"sha256 {base64.b64encode(sha.encode()).decode()},"
        f"contribution {base64.b64encode(cid.encode()).decode()}"
    )
    h = {**owner.who.headers, "Tus-Resumable": "1.0.0"}
    r = owner.http.post(
        "/v1/uploads/", headers={**h, "Upload-Length": str(len(DATA)), "Upload-Metadata": meta}
    )
    assert r.status_code == 201, r.text
    p = owner.http.patch(
        r.headers["location"],
        content=DATA,
        headers={**h, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
    )
    assert p.status_code == 204, p.text
    f = owner.http.post(f"/v1/contributions/{cid}/finalize", headers=owner.who.headers)
    assert f.json()["state"] == "pending-review", f.text
