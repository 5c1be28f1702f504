"""Sandboxes run in parallel up to the usable cores, and a parallel verify reports exactly as a serial one."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import pytest

from deploy import verify
from deploy.config import FunctionTarget
from deploy.verify import sandbox
from deploy.verify.results import FunctionVerify, VerifyReport
from tests.unit.test_verify import ECHO, OK_HANDLER, env_with, function_zip, layer_zip

KEYS = ("alpha", "bravo", "charlie", "delta")


@pytest.fixture(scope="module")
def python312() -> Path:
    return verify.find_runtime_python("3.12")


def without_timings(report: VerifyReport) -> VerifyReport:
    """What may differ between two runs of the same bytes: how long each step took."""
    return dataclasses.replace(
        report,
        functions=tuple(
            dataclasses.replace(
                fn,
                import_ms=None,
                results=tuple(dataclasses.replace(r, duration_ms=0.0) for r in fn.results),
            )
            for fn in report.functions
        ),
    )


def test_a_parallel_verify_reports_exactly_as_a_serial_one(tmp_path: Path, python312: Path) -> None:
    modules = {f"lambdas/{key}/__init__.py": "" for key in KEYS}
    modules |= {f"lambdas/{key}/handler.py": OK_HANDLER for key in KEYS}
    layer = layer_zip(tmp_path)
    code = function_zip(tmp_path, modules)
    functions = [
        FunctionTarget(key=key, name=f"bluemoxon-test-{key}", handler=f"lambdas.{key}.handler.handler") for key in KEYS
    ]
    env = env_with({key: ECHO for key in KEYS})
    reports = {
        workers: verify.verify_local(env, functions, layer=layer, function=code, python=python312, workers=workers)
        for workers in (1, len(KEYS))
    }
    serial, parallel = (without_timings(reports[w]) for w in (1, len(KEYS)))
    assert serial.ok, serial.problems()
    assert [fn.key for fn in parallel.functions] == list(KEYS)
    assert parallel == serial


@dataclasses.dataclass
class Runs:
    """Fake sandbox runs: which started, and the most that ran at once."""

    started: list[str] = dataclasses.field(default_factory=list)
    running: int = 0
    most: int = 0
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


def _fake_runs(
    monkeypatch: pytest.MonkeyPatch, *, first_waits_for: threading.Event | None = None, all_at_once: bool = False
) -> Runs:
    """Sandbox runs that finish in a chosen order: the first job waits for ``first_waits_for``; with
    ``all_at_once`` every job waits until all have started. Only parallel runs can do either."""
    together = threading.Barrier(len(KEYS))
    runs = Runs()

    def run(session: Any, job: Any, *, scratch: Path, timeout_s: float) -> FunctionVerify:
        with runs.lock:
            runs.started.append(job.target.key)
            runs.running += 1
            runs.most = max(runs.most, runs.running)
        if all_at_once:
            try:
                together.wait(timeout=30)
            except threading.BrokenBarrierError:
                raise AssertionError("not every job ran at once") from None
        if first_waits_for is not None and job.target.key == KEYS[0]:
            assert first_waits_for.wait(timeout=30), "the first job waited in vain: not parallel"
        with runs.lock:
            runs.running -= 1
        return FunctionVerify(key=job.target.key, name=job.target.name, import_ms=1.0, results=(), ok=True)

    class Session:
        def __enter__(self) -> Session:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(sandbox, "_run_sandbox", run)
    monkeypatch.setattr(sandbox, "open_session", lambda *a, **kw: Session())
    return runs


def _jobs(tmp_path: Path) -> list[Any]:
    tree = sandbox.Tree(task_root=tmp_path, opt=tmp_path)
    return [
        sandbox._Job(target=FunctionTarget(key=key, name=key, handler="m.h"), tree=tree, cases=(), environment={})
        for key in KEYS
    ]


def test_results_come_back_in_the_order_of_the_functions_whatever_finished_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    heard: list[str] = []
    heard_the_last = threading.Event()

    def hear(fn: FunctionVerify) -> None:
        heard.append(fn.key)
        if fn.key == KEYS[-1]:
            heard_the_last.set()

    _fake_runs(monkeypatch, first_waits_for=heard_the_last)  # the first finishes after the last was reported
    results = sandbox._run_jobs(
        env_with(),
        _jobs(tmp_path),
        python=Path("/unused"),
        root=tmp_path,
        timeout_s=1,
        workers=len(KEYS),
        on_result=hear,
    )
    assert [r.key for r in results] == list(KEYS)
    assert heard.index(KEYS[-1]) < heard.index(KEYS[0])  # progress hears them as they finish


def test_sandboxes_run_up_to_the_usable_cores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default is the cores this process may use (its affinity), not a fixed two."""
    monkeypatch.setattr(sandbox.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5}, raising=False)
    assert sandbox.usable_cores() == 6
    runs = _fake_runs(monkeypatch, all_at_once=True)  # four jobs, six cores: all four at once
    results = sandbox._run_jobs(env_with(), _jobs(tmp_path), python=Path("/unused"), root=tmp_path, timeout_s=1)
    assert [r.key for r in results] == list(KEYS)
    assert runs.most == len(KEYS)


def test_one_usable_core_runs_one_sandbox_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert sandbox.usable_cores() == 1
    runs = _fake_runs(monkeypatch)
    results = sandbox._run_jobs(env_with(), _jobs(tmp_path), python=Path("/unused"), root=tmp_path, timeout_s=1)
    assert runs.started == list(KEYS)
    assert runs.most == 1
    assert [r.key for r in results] == list(KEYS)
