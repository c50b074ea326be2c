"""Test a registry connection (Settings, first run, the status bar): GET {url}/v1/health.

The probe goes through `RegistryClient`, so it has the client's bounds (no redirects, a total
time limit, a size limit on the answer, bounded JSON) like every other call to a registry. It
blocks: the GUI runs it on its task runner, never on the GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.errors import KnownError, RegistryUnavailable, UsageError
from app.domain.text import display_text
from app.registry_client.api import RegistryClient
from app.registry_client.http import RetryPolicy, Timeouts

HEALTH_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class HealthResult:
    url: str
    version: str
    detail: str


def check_registry(url: str, timeout: float = HEALTH_TIMEOUT_S) -> HealthResult:
    """Raise a KnownError the user can act on when the registry is not reachable."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(
            f"“{url or '(empty)'}” is not a registry address",
            hint="it starts with http:// or https://, e.g. https://registry.example.org",
        )
    client = RegistryClient(
        url,
        timeouts=Timeouts(connect=timeout, read=timeout, total=timeout * 2),
        retry=RetryPolicy(attempts=1),
        pool_size=1,
    )
    try:
        health = client.health(retry=False)
    except RegistryUnavailable as exc:
        # The client's message names the address already ("cannot reach the registry at …",
        # "the registry at … did not answer in time"): say what happened once.
        said = exc.message
        if said.startswith("cannot reach the registry"):
            said = f"the registry at {url} is unreachable"
        elif url not in said:
            said = f"the registry at {url} is unreachable ({said})"
        raise RegistryUnavailable(
            said, hint="check the address and your connection, then try again"
        ) from exc
    except KnownError as exc:
        raise RegistryUnavailable(
            f"the registry at {url} did not answer as a registry ({exc.message})",
            hint="check the address; the registry may be down for maintenance",
        ) from exc
    finally:
        client.close()
    return HealthResult(url=url, version=display_text(health.version, max_chars=40), detail="OK")
