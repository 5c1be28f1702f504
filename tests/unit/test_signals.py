"""Waits in the main thread that a Ctrl-C interrupts even when a worker thread took the signal."""

from __future__ import annotations

import threading
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

import pytest

from deploy import signals
from tests import interrupts


class Blocked:
    """A worker that waits until released (a hang guard of 30 s, never reached)."""

    def __init__(self) -> None:
        self.started, self.release, self.finished = threading.Event(), threading.Event(), threading.Event()
        self.ident: list[int] = []
        self.returned: list[bool] = []

    def __call__(self) -> bool:
        self.ident.append(threading.get_ident())
        self.started.set()
        self.returned.append(self.release.wait(timeout=30))
        self.finished.set()
        return self.returned[-1]


def _interrupt_once_waited_on(work: Blocked, module: ModuleType, where: str) -> threading.Thread:
    """SIGINT to ``work``'s thread once the main thread waits in ``module.where``."""

    def send() -> None:
        work.started.wait(timeout=30)
        interrupts.until_the_main_thread_waits_in(module, where)
        interrupts.interrupt(work.ident[0])

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    return sender


def test_join_is_interrupted_by_a_signal_the_joined_thread_took() -> None:
    work = Blocked()
    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    sender = _interrupt_once_waited_on(work, threading, "join")
    try:
        with pytest.raises(KeyboardInterrupt):
            signals.join(worker)
        # Interrupted while the worker still waits. Not ``worker.is_alive()``: Python 3.11's join, when
        # interrupted, marks a thread stopped that is still running (its bpo-45274 handling).
        assert work.returned == []
    finally:
        work.release.set()
        sender.join()
        work.finished.wait(timeout=30)  # not ``worker.join()``: on 3.11 it returns at once, see above
    assert work.returned == [True]


def test_result_is_interrupted_by_a_signal_the_worker_took() -> None:
    work = Blocked()
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(work)
        sender = _interrupt_once_waited_on(work, futures._base, "wait")
        try:
            with pytest.raises(KeyboardInterrupt):
                signals.result(future)
            assert work.returned == [] and not future.done()  # interrupted while the worker still waits
        finally:
            work.release.set()
            sender.join()
    assert future.result() is True


def _times_out() -> None:
    raise TimeoutError("the job's own timeout (a socket's)")


def test_join_and_result_return_what_the_worker_did() -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert signals.result(pool.submit(lambda: 42)) == 42
        with pytest.raises(ZeroDivisionError):
            signals.result(pool.submit(lambda: 1 / 0))
        # The job's TimeoutError is its answer, not "not done yet" (the same class as the wait's own).
        with pytest.raises(TimeoutError, match="the job's own timeout"):
            signals.result(pool.submit(_times_out))
        gate = threading.Event()
        pool.submit(gate.wait, 30)  # holds the one worker, so the next job is still queued
        queued = pool.submit(lambda: 1)
        assert queued.cancel()
        gate.set()
        with pytest.raises(futures.CancelledError):
            signals.result(queued)
    with pytest.raises(RuntimeError, match="before it is started"):
        signals.join(threading.Thread(target=lambda: None))  # as a bare join: a thread never started
    done: list[bool] = []
    worker = threading.Thread(target=lambda: done.append(True))
    worker.start()
    signals.join(worker)
    assert done == [True] and not worker.is_alive()
