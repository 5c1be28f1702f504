"""Shared fixtures: free ports and a moto server per test that needs one; xdist groups."""

from __future__ import annotations

import ast
import functools
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy import emulator
from deploy.aws import calls
from deploy.config import EmulatorSettings
from deploy.emulator import free_port

__all__ = ["free_port", "moto_server"]

#: Fixture scopes that outlive one test: a worker that runs any test needing one makes it.
_SHARED_SCOPES = frozenset({"module", "package", "class"})


def pytest_configure(config: pytest.Config) -> None:
    """Python's own Ctrl-C handler, whoever started the run: the suite tests what a Ctrl-C does.

    A non-interactive shell that starts a job in the background (a script's ``nox &``, ``sh -c '… &'``)
    hands it SIGINT ignored, and Python then installs no handler: ``os.kill(pid, SIGINT)`` did nothing and the
    tests that wait for it hung. Set here, it holds in every xdist worker and every process a test
    starts (an ignored signal stays ignored across exec, a handled one is reset to the default)."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` as the nox sessions run it: the tests of a module that defines a
    module-scoped fixture go to one worker, so the fixture is made once per run, not once per worker
    that draws one of its tests (two_builds builds the real layer; relock's ``tools`` installs Poetry;
    the e2e ``project`` deploys). xdist's own loadgroup reads ``xdist_group`` marks by renaming node
    ids, which pytest 9 no longer allows (its ``nodeid`` is read-only): with it, every mark was ignored.
    The controller never collects, so the groups come from the test files themselves."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleFixtureScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.rfind("@") > nodeid.rfind("]"):  # an explicit xdist_group, should xdist get one through
                return nodeid.rsplit("@", 1)[-1]
            module = nodeid.split("::", 1)[0]
            return module if _defines_a_shared_fixture(config.rootpath / module) else nodeid

        def _assign_work_unit(self, node: Any) -> None:
            # Longest first: the queue is ordered by each unit's expected seconds before the first unit
            # goes out, so a long e2e module never starts last (or queued behind another on one worker).
            if not getattr(self, "_by_cost", False):
                self._by_cost = True
                per_module: dict[str, int] = {}
                for nodeid in self.collection or ():
                    module = nodeid.split("::", 1)[0]
                    per_module[module] = per_module.get(module, 0) + 1

                def cost(item: tuple[str, dict[str, bool]]) -> tuple[float, int]:
                    module = item[0].split("::", 1)[0]
                    seconds = _expected_seconds(config.rootpath / module) * len(item[1]) / per_module.get(module, 1)
                    return (-seconds, -len(item[1]))

                ordered = sorted(self.workqueue.items(), key=cost)
                self.workqueue.clear()
                self.workqueue.update(ordered)
            super()._assign_work_unit(node)

    return ModuleFixtureScheduling(config, log)


#: A test module's ``XDIST_SECONDS = N``: what its tests take together on 2 idle cores, measured (see
#: ``--durations``). The scheduler starts the costliest units first; a module without it counts as 0
#: and keeps xdist's order (the units with the most tests first).
_COST_NAME = "XDIST_SECONDS"


@functools.cache
def _expected_seconds(path: Path) -> float:
    try:
        tree = ast.parse(path.read_text(), str(path))
    except (OSError, SyntaxError, ValueError):
        return 0.0
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == [_COST_NAME]
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, int | float)
        ):
            return float(node.value.value)
    return 0.0


@functools.cache
def _defines_a_shared_fixture(path: Path) -> bool:
    """Whether the test file defines a ``@pytest.fixture(scope=...)`` that outlives one test."""
    try:
        tree = ast.parse(path.read_text(), str(path))
    except (OSError, SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                if not isinstance(decorator, ast.Call):
                    continue
                for keyword in decorator.keywords:
                    if (
                        keyword.arg == "scope"
                        and isinstance(keyword.value, ast.Constant)
                        and keyword.value.value in _SHARED_SCOPES
                    ):
                        return True
    return False


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
def _own_aws_clients() -> Iterator[None]:
    """Each test starts with none of the library's cached clients (deploy.aws.calls): a test may
    register a handler on a client it reached through the library, and that handler must not reach
    the next test's calls."""
    yield
    calls.forget_clients()


class _SearchPaths(list[str]):
    """A loader's search paths where boto3's append of its own data folder, made by every
    ``boto3.Session``, happens once."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


@pytest.fixture(autouse=True, scope="session")
def _one_botocore_loader() -> Iterator[None]:
    """Every botocore session in a test process reads the service models through one loader.

    Each ``boto3.Session`` (the code under test makes one per run, moto's mock one per test) has
    its own loader and parses the JSON models of Lambda, S3 and IAM again: about 20 files, 0.2
    CPU-seconds, per test. botocore already hands the same parsed model to every client of a
    session; this shares it across sessions too. Only the test process: ``inv`` and the moto
    server run as they ship."""
    import botocore.loaders
    import botocore.session

    made: dict[str | None, botocore.loaders.Loader] = {}
    real = botocore.session.create_loader

    def shared(search_path_string: str | None = None) -> botocore.loaders.Loader:
        if search_path_string not in made:
            loader = real(search_path_string)
            loader._search_paths = _SearchPaths(loader.search_paths)
            made[search_path_string] = loader
        return made[search_path_string]

    botocore.session.create_loader = shared
    try:
        yield
    finally:
        botocore.session.create_loader = real


@pytest.fixture(autouse=True)
def _own_content_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test builds with its own, empty content cache (deploy.content_cache), never the user's;
    subprocesses (inv …) inherit it."""
    from deploy.content_cache import ENV_DIR, ENV_OFF

    monkeypatch.setenv(ENV_DIR, str(tmp_path_factory.mktemp("content-cache")))
    monkeypatch.delenv(ENV_OFF, raising=False)
