"""Test a registry connection: GET {url}/v1/health with a short timeout.

Why here: the registry client (issue 5) is not in this build yet; this one blocking call runs
only inside a background task, never on the GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.errors import RegistryUnavailable, UsageError

HEALTH_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class HealthResult:
    url: str
    version: str
    detail: str


def check_registry(url: str, timeout: float = HEALTH_TIMEOUT_S) -> HealthResult:
    """Raise a KnownError the user can act on when the registry is not reachable."""
    import requests  # imported lazily: not needed for the first paint

    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(
            f"“{url or '(empty)'}” is not a registry address",
            hint="it starts with http:// or https://, e.g. https://registry.example.org",
        )
    try:
        response = requests.get(f"{url}/v1/health", timeout=timeout)
    except requests.RequestException as exc:
        reason = type(exc).__name__.replace("Error", " error").strip()
        raise RegistryUnavailable(
            f"the registry at {url} is unreachable ({reason})",
            hint="check the address and your connection, then test again",
        ) from exc
    if response.status_code >= 400:
        raise RegistryUnavailable(
            f"the registry at {url} answered HTTP {response.status_code}",
            hint="check the address; the registry may be down for maintenance",
        )
    version = ""
    try:
        body = response.json()
        if isinstance(body, dict):
            version = str(body.get("version", ""))
    except ValueError:
        pass
    return HealthResult(url=url, version=version, detail=f"HTTP {response.status_code}")
