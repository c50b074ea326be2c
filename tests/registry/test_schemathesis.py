"""schemathesis against the live registry's OpenAPI schema: no 5xx, responses match the schema.

The server is the real `contributor-registry serve` subprocess, on SQLite and on PostgreSQL
(NUL characters, long strings and big numbers behave differently there), seeded with accepted
contributions (with files) and demo usage (with evidence) so the reads return real rows, and
called with real bearer tokens of registered keys (an operator's for the operator routes, a
contributor's elsewhere): every token-protected operation must answer at least one generated
request with something other than 401, so it is fuzzed, not only refused. Examples are bounded
to keep each run short.
schemathesis keeps state in `./.schemathesis/`: the run works in a temporary directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from registry.blobstore import FileBlobStore
from registry.db.session import make_engine, make_sessionmaker, migrate
from registry.seed import seed_demo
from tests.registry.conftest import fresh_pg_database
from tests.support.registry_actors import Contributor
from tests.support.registry_server import RegistryProcess
from tests.support.usage_data import add_contributions, add_files

REPO = Path(__file__).resolve().parents[2]
OPERATOR_ROUTES = {("POST", "/v1/usage"), ("POST", "/v1/models")}
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    status_code_conformance,
]


@pytest.fixture(scope="module")
def fuzz_actors() -> tuple[Contributor, Contributor]:
    return Contributor(), Contributor()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def fuzz_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    fuzz_actors: tuple[Contributor, Contributor],
) -> Iterator[str]:
    operator, contributor = fuzz_actors
    root = tmp_path_factory.mktemp("fuzz")
    if request.param == "sqlite":
        db = f"sqlite:///{root / 'fuzz.sqlite3'}"
    else:
        db = fresh_pg_database(request.getfixturevalue("pg_url"))
    engine = make_engine(db)
    migrate(engine)
    sessions = make_sessionmaker(engine)
    store = FileBlobStore(root / "blobs")
    with sessions() as s:
        cids = add_contributions(s, contributor.fingerprint, 3, public_key=contributor.public_key)
        for cid in cids:  # files, so the demo usage carries evidence (the events read shows it)
            add_files(
                s, cid, {"a.txt": b"first line\nsecond line\n" * 40, "b.bin": cid.encode()}, store
            )
    store.close()
    seed_demo(sessions, days=7, blobs_dir=root / "blobs")
    engine.dispose()
    server = RegistryProcess(
        db,
        root / "blobs",
        extra_args=("--operator-key", operator.public_key, "--rate-limit", "0"),
    )
    server.start()
    try:
        with httpx.Client(base_url=server.base_url) as http:
            operator.sign_in(http)
            contributor.sign_in(http)
        yield server.base_url
    finally:
        server.kill()


@pytest.fixture(scope="module")
def registry_schema(fuzz_server: str) -> Any:
    return schemathesis.openapi.from_url(f"{fuzz_server}/openapi.json")


def _fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    headers: dict[str, str],
    examples: int,
    statuses: list[int],
) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)
        statuses.append(response.status_code)

    run()


def _needs_token(operation: Any) -> bool:
    return bool(operation.definition.raw.get("security"))


@pytest.mark.slow
def test_api_conforms_to_its_schema(
    registry_schema: Any,
    fuzz_server: str,
    fuzz_actors: tuple[Contributor, Contributor],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every operation, positive and negative examples; all failures reported together.

    (schemathesis' pytest plugin does not work with pytest 9 yet, so operations are driven
    through their hypothesis strategies directly.)
    """
    had_state_dir = (REPO / ".schemathesis").exists()
    monkeypatch.chdir(tmp_path)
    operator, contributor = fuzz_actors
    failures: list[str] = []
    operations = [result.ok() for result in registry_schema.get_all_operations()]
    assert len(operations) >= 15
    protected: dict[str, list[int]] = {}
    for operation in operations:
        key = (operation.method.upper(), operation.path)
        who = operator if key in OPERATOR_ROUTES else contributor
        statuses: list[int] = []
        if _needs_token(operation):
            protected[f"{key[0]} {key[1]}"] = statuses
        for mode, examples in ((GenerationMode.POSITIVE, 15), (GenerationMode.NEGATIVE, 6)):
            try:
                _fuzz_operation(operation, mode, fuzz_server, who.headers, examples, statuses)
            except Unsatisfiable:
                continue  # nothing can be invalid about it (no parameters, no body)
            except (Exception, BaseExceptionGroup) as exc:  # collect every broken operation
                failures.append(f"{key[0]} {key[1]} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
    assert len(protected) >= 12, sorted(protected)
    only_401 = sorted(op for op, seen in protected.items() if not seen or set(seen) == {401})
    assert only_401 == [], f"never got past authentication: {only_401}"
    assert (REPO / ".schemathesis").exists() == had_state_dir
