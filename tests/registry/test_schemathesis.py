"""schemathesis against the live registry's OpenAPI schema: no 5xx, responses match the schema.

The server is the real `contributor-registry serve` subprocess on SQLite, seeded with accepted
contributions and demo usage so the reads return real rows, and called with real bearer tokens
(an operator's for the operator routes, a contributor's elsewhere) so authenticated routes are
exercised, not just their 401s. Examples are bounded to keep the whole run under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
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

from registry.db.session import make_engine, make_sessionmaker, migrate
from registry.seed import seed_demo
from tests.support.registry_actors import Contributor
from tests.support.registry_server import RegistryProcess
from tests.support.usage_data import add_contributions

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


@pytest.fixture(scope="module")
def fuzz_server(
    tmp_path_factory: pytest.TempPathFactory, fuzz_actors: tuple[Contributor, Contributor]
) -> Iterator[str]:
    operator, contributor = fuzz_actors
    root = tmp_path_factory.mktemp("fuzz")
    db = f"sqlite:///{root / 'fuzz.sqlite3'}"
    engine = make_engine(db)
    migrate(engine)
    sessions = make_sessionmaker(engine)
    with sessions() as s:
        add_contributions(s, contributor.fingerprint, 3, public_key=contributor.public_key)
    seed_demo(sessions, days=7)
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
    operation: Any, mode: GenerationMode, base_url: str, headers: dict[str, str], examples: int
) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

    run()


@pytest.mark.slow
def test_api_conforms_to_its_schema(
    registry_schema: Any, fuzz_server: str, fuzz_actors: tuple[Contributor, Contributor]
) -> None:
    """Every operation, positive and negative examples; all failures reported together.

    (schemathesis' pytest plugin does not work with pytest 9 yet, so operations are driven
    through their hypothesis strategies directly.)
    """
    operator, contributor = fuzz_actors
    failures: list[str] = []
    operations = [result.ok() for result in registry_schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:
        key = (operation.method.upper(), operation.path)
        who = operator if key in OPERATOR_ROUTES else contributor
        for mode, examples in ((GenerationMode.POSITIVE, 15), (GenerationMode.NEGATIVE, 6)):
            try:
                _fuzz_operation(operation, mode, fuzz_server, who.headers, examples)
            except Unsatisfiable:
                continue  # nothing can be invalid about it (no parameters, no body)
            except (Exception, BaseExceptionGroup) as exc:  # collect every broken operation
                failures.append(f"{key[0]} {key[1]} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
