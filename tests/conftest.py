"""Shared fixtures: free ports and a moto server per test that needs one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy import emulator
from deploy.config import EmulatorSettings
from deploy.emulator import free_port

__all__ = ["free_port", "moto_server"]


@pytest.fixture
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[emulator.EmulatorState]:
    """A real moto server over HTTP on a free port, started and stopped by the project's own code."""
    settings = EmulatorSettings(host="127.0.0.1", port=free_port())
    state_dir: Path = tmp_path_factory.mktemp("emulator")
    state = emulator.up(settings, state_dir)
    try:
        yield state
    finally:
        emulator.down(settings, state_dir)


@pytest.fixture(autouse=True)
def _own_content_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test builds with its own, empty content cache (deploy.content_cache), never the user's;
    subprocesses (inv …) inherit it."""
    from deploy.content_cache import ENV_DIR, ENV_OFF

    monkeypatch.setenv(ENV_DIR, str(tmp_path_factory.mktemp("content-cache")))
    monkeypatch.delenv(ENV_OFF, raising=False)
