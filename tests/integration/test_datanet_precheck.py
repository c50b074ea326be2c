"""Submitting to a datanet whose rules the item breaks stops before anything is signed or sent
(the same rule code as the registry's), through the service and the real CLI."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.domain.errors import BadInputError
from app.services.submit import SubmitService
from app.store.models import Envelope
from tests.integration.cli_helpers import run_cli
from tests.integration.faults.helpers import (
    Desk,
    desk_fixture,  # noqa: F401 - fixture 'desk'
    registry_fixture,  # noqa: F401 - fixture 'registry'
)
from tests.support.registry_server import RegistryProcess

pytestmark = pytest.mark.slow

STRICT = {
    "kinds": ["dataset"],
    "formats": ["csv"],
    "licenses": ["CC0-1.0"],
    "maxTotalSize": None,
    "maxFiles": 5,
    "review": False,
}


def _add_datanet(registry: RegistryProcess, datanet_id: str, rules: dict[str, object]) -> None:
    path = registry.db_url.split("///", 1)[1]
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO datanets (id, name, description, rules, created_at) VALUES (?,?,?,?,?)",
            (datanet_id, "Strict", "", json.dumps(rules), datetime.now(UTC).isoformat(" ")),
        )


def _registry_contributions(desk: Desk) -> int:
    from app.services.clients import make_client

    client = make_client(desk.ctx)
    try:
        return len(list(client.list_mine()))
    finally:
        client.close()


def test_broken_rules_stop_the_submit_before_signing(
    desk: Desk, registry: RegistryProcess, data_dir: Path
) -> None:
    _add_datanet(registry, "strict", STRICT)
    item = desk.add("birds", {"a.csv": b"x,y\n1,2\n", "notes/readme.txt": b"hi"})  # CC-BY-4.0
    with pytest.raises(BadInputError) as err:
        SubmitService(desk.ctx).submit(item, datanet="strict")
    message = err.value.message
    assert "would be rejected by datanet 'strict'" in message
    assert "License 'CC-BY-4.0' is not one of CC0-1.0." in message
    assert "notes/readme.txt: This file type is not accepted" in message
    assert desk.state(item) == "draft"
    with desk.ctx.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Envelope)) == 0  # nothing signed
    assert _registry_contributions(desk) == 0  # nothing sent

    cli = run_cli(
        "--registry", registry.base_url, "submit", str(item), "--datanet", "strict",
        data_dir=data_dir,
    )  # fmt: skip
    assert cli.code == 3 and "would be rejected by datanet 'strict'" in cli.err

    # The default datanet accepts it: the same item goes through.
    result = SubmitService(desk.ctx).submit(item)
    assert not result.offline and result.registry_id
