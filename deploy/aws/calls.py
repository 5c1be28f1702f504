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

import copy
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
_clients: dict[tuple[Any, ...], Any] = {}


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
            for key in [key for key in _clients if hook in key[-1]]:
                del _clients[key]  # built for this block: never handed out again


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
    rooms that still take the settings, an ``EnvConfig``): only its region, profile and endpoint count.

    One client per (profile, region, endpoint, service, configuration, active hooks) for the process:
    botocore clients are thread-safe, and building one costs 15-40 ms (endpoint rules, event copies);
    a deploy asked for the same few clients a dozen times, the moto-backed tests about 900 times in one
    module. A client built inside a :func:`client_hook` block is keyed by that block's hooks, so the
    block gets its own clients (its faults reach no other caller) and they are dropped when it ends."""
    region = region or env.region
    merged = session.CLIENT_CONFIG.merge(config) if config is not None else session.CLIENT_CONFIG
    with _lock:
        hooks = tuple(_hooks)
        key = (env.profile, region, env.endpoint_url, service, _config_key(merged), hooks)
        found = _clients.get(key)
    if found is not None:
        return found
    sess = _session(env, region)
    with _session_lock:
        # A copy: botocore rewrites the retries dict it is given (max_attempts -> total_max_attempts),
        # which would change the shared configuration, and so the key, under the next caller.
        made = sess.client(service, endpoint_url=env.endpoint_url, config=copy.deepcopy(merged))
    made.meta.events.register("before-call", _record(service))
    for hook in hooks:
        hook(service, made)
    with _lock:
        if not all(hook in _hooks for hook in hooks):
            return made  # its block ended while it was built: used by this caller, never cached
        return _clients.setdefault(key, made)  # two threads built one each: both use the first


def _config_key(config: Config) -> str:
    """What a Config was given, as text (Config objects compare by identity; ``merge`` makes new ones)."""
    given: dict[str, Any] = getattr(config, "_user_provided_options", {})
    return repr(sorted(given.items()))


def forget_clients() -> None:
    """Drop every cached client (a test that changes what a client is built from, e.g. credentials)."""
    with _lock:
        _clients.clear()
