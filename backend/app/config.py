"""Settings read from the environment on each request.

Lambda hands configuration to code only through environment variables, and reading them per call
(instead of once at import) keeps tests free to change them with monkeypatch without reloading modules.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

# The task root (backend/ locally, /var/task on Lambda) holds VERSION next to the app package.
VERSION_FILE = Path(__file__).resolve().parent.parent / "VERSION"
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True, kw_only=True)
class Settings:
    cleanup_function_name: str | None
    region: str
    lambda_endpoint_url: str | None
    invoke_read_timeout: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            cleanup_function_name=env.get("CLEANUP_FUNCTION_NAME", "").strip() or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
            lambda_endpoint_url=endpoint_url("lambda", env),
            # RequestResponse waits for the whole cleanup run; botocore's 60 s default would
            # cut a long run short and then retry it.
            invoke_read_timeout=float(env.get("CLEANUP_INVOKE_TIMEOUT", "300")),
        )


def endpoint_url(service: str, env: Mapping[str, str] | None = None) -> str | None:
    """The service-specific override first, then the global one, as botocore itself orders them.

    Passing it explicitly keeps the local moto server working with any botocore, not only the
    releases that read AWS_ENDPOINT_URL themselves.
    """
    env = os.environ if env is None else env
    specific = env.get(f"AWS_ENDPOINT_URL_{service.upper()}", "").strip()
    return specific or env.get("AWS_ENDPOINT_URL", "").strip() or None


@lru_cache(maxsize=1)
def app_version() -> str:
    try:
        return VERSION_FILE.read_text(encoding="utf-8").strip() or "unknown"
    except OSError:
        return "unknown"
