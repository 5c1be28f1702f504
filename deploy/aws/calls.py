"""Every AWS client the deploy library uses, and a recorder of the write calls they make.

Property 2 of the design ("a deploy with nothing changed makes no write call") is only
worth stating if a test can prove it, so every client is built here and gets a
``before-call`` handler that feeds the active :class:`WriteCounter` objects. A write is
any operation that is not a read by AWS's naming convention (Get*, List*, Head*,
Describe*); waiters and paginators only read, so they never count.

Tests also use :func:`client_hook` to reach the clients the library creates, e.g. to
inject ``ResourceConflictException`` through botocore events, which moto never raises.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.config import Config

from deploy.aws import session

_READ_PREFIXES = ("Get", "List", "Head", "Describe")

ClientHook = Callable[[str, Any], None]

_lock = threading.Lock()
_counters: list[WriteCounter] = []
_hooks: list[ClientHook] = []
_sessions: dict[tuple[str | None, str, str | None], Any] = {}
_session_lock = threading.Lock()


def is_write(operation: str) -> bool:
    return not operation.startswith(_READ_PREFIXES)


@dataclass(kw_only=True, eq=False)  # identity: nested counters with equal calls must stay distinct
class WriteCounter:
    """The write calls made while it was active, as ``(service, operation)`` in call order."""

    calls: list[tuple[str, str]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.calls)

    def operations(self, service: str | None = None) -> list[str]:
        return [op for svc, op in self.calls if service is None or svc == service]


def _record(service: str) -> Callable[..., None]:
    def handler(model: Any = None, **_: Any) -> None:
        operation = str(getattr(model, "name", ""))
        if not operation or not is_write(operation):
            return
        with _lock:
            for counter in _counters:
                counter.calls.append((service, operation))

    return handler


@contextmanager
def count_writes() -> Iterator[WriteCounter]:
    """Count write calls of every client built by :func:`client` (in any thread) inside the block."""
    counter = WriteCounter()
    with _lock:
        _counters.append(counter)
    try:
        yield counter
    finally:
        with _lock:
            _counters.remove(counter)


@contextmanager
def client_hook(hook: ClientHook) -> Iterator[None]:
    """Call ``hook(service, client)`` for every client built inside the block (test fault injection)."""
    with _lock:
        _hooks.append(hook)
    try:
        yield
    finally:
        with _lock:
            _hooks.remove(hook)


def _session(env: session.Endpoint, region: str) -> Any:
    # Building a client from a fresh Session re-reads the service model (~0.1 s); one Session per
    # (profile, region, endpoint) reuses it. Sessions are not thread-safe, hence the lock.
    key = (env.profile, region, env.endpoint_url)
    with _lock:
        if key not in _sessions:
            _sessions[key] = session.session_for(env, region)
        return _sessions[key]


def client(env: session.Endpoint, service: str, region: str | None = None, *, config: Config | None = None) -> Any:
    """A client with :data:`deploy.aws.session.CLIENT_CONFIG` (``config`` overrides parts of
    it), whose write calls are recorded. ``env``: the run's ``deploy.context.Aws`` (or, from the
    rooms that still take the settings, an ``EnvConfig``): only its region, profile and endpoint count."""
    sess = _session(env, region or env.region)
    merged = session.CLIENT_CONFIG.merge(config) if config is not None else session.CLIENT_CONFIG
    with _session_lock:
        made = sess.client(service, endpoint_url=env.endpoint_url, config=merged)
    made.meta.events.register("before-call", _record(service))
    with _lock:
        hooks = list(_hooks)
    for hook in hooks:
        hook(service, made)
    return made
