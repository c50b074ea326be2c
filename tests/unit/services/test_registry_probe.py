"""The Settings / first-run "Test connection" probe has the registry client's bounds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.domain.errors import RegistryUnavailable, UsageError
from app.services.registry_probe import check_registry
from tests.unit.registry_client.hostile import HostileRegistry, hostile_registry


@pytest.fixture
def hostile() -> Iterator[HostileRegistry]:
    with hostile_registry() as registry:
        yield registry


def test_a_registry_that_answers_health_is_reported_with_its_version(
    hostile: HostileRegistry,
) -> None:
    result = check_registry(hostile.url + "/")
    assert (result.url, result.version) == (hostile.url, "hostile")


def test_hidden_characters_in_the_version_are_not_shown(hostile: HostileRegistry) -> None:
    hostile.json_route("GET", "/v1/health", {"status": "ok", "version": "1.0\x1b[2J\u202e"})
    assert check_registry(hostile.url).version == "1.0\ufffd[2J\ufffd"


def test_a_redirect_to_another_host_is_not_followed(hostile: HostileRegistry) -> None:
    with hostile_registry() as elsewhere:
        hostile.route(
            "GET",
            "/v1/health",
            lambda h: h.send_raw(
                307, {"Location": f"{elsewhere.url}/v1/health", "Content-Length": "0"}
            ),
        )
        with pytest.raises(RegistryUnavailable, match=f"registry at {hostile.url}"):
            check_registry(hostile.url)
        assert elsewhere.seen == []


def test_a_deeply_nested_answer_is_a_clear_error(hostile: HostileRegistry) -> None:
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    hostile.route(
        "GET",
        "/v1/health",
        lambda h: h.send_raw(
            200, {"Content-Type": "application/json", "Content-Length": str(len(deep))}, deep
        ),
    )
    with pytest.raises(RegistryUnavailable, match=f"registry at {hostile.url}"):
        check_registry(hostile.url)


def test_a_dripping_answer_ends_within_the_probe_time(hostile: HostileRegistry) -> None:
    hostile.route("GET", "/v1/health", lambda h: h.drip(0.5))
    with pytest.raises(RegistryUnavailable):
        check_registry(hostile.url, timeout=0.5)


def test_an_address_that_is_not_http_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="not a registry address"):
        check_registry("ftp://example.org")


def test_nobody_listening_is_unreachable_and_the_address_is_named_once() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(RegistryUnavailable) as caught:
        check_registry(url, timeout=1.0)
    assert caught.value.message == f"the registry at {url} is unreachable"
