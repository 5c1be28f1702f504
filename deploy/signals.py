"""SIGTERM as an exception, so ``finally`` blocks (the deploy lock, the transaction's restore) run.

CI cancels a job with SIGTERM; Python's default is to die on the spot. Kept tiny on purpose:
``deploy.cli`` imports it for every task, including the ones that never touch AWS.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from concurrent import futures
from concurrent.futures import Future
from contextlib import contextmanager
from types import FrameType
from typing import TypeVar

T = TypeVar("T")

#: How long a signal that another thread took may wait before the main thread raises it.
POLL_SECONDS = 0.05


def on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class SigTerm(BaseException):
    """SIGTERM, raised in the main thread so it takes the same path as KeyboardInterrupt."""


def raise_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise SigTerm()


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`SigTerm` (``finally`` blocks run: locks are released)."""
    if not on_main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, raise_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# The kernel hands a process-wide signal (a Ctrl-C, CI's SIGTERM) to any thread that does not block
# it. When a worker thread takes it, Python only sets a flag that the main thread reads the next time
# it runs bytecode, and a bare ``Thread.join()`` or ``Future.result()`` runs none until the worker
# ends, so an interrupt would wait for a call stuck on the network. These waits wake to look. They
# serve the waits an interrupt must not sit behind (preflight's checks, attach's workers, which stop
# writing on an interrupt); a wait inside a ``with ThreadPoolExecutor`` gains nothing from them, as
# the pool's exit waits for its workers anyway.


def join(thread: threading.Thread) -> None:
    """``thread.join()`` that a signal taken by any thread interrupts within :data:`POLL_SECONDS`."""
    thread.join(timeout=POLL_SECONDS)  # first, as a bare join would: a thread never started raises
    while thread.is_alive():
        thread.join(timeout=POLL_SECONDS)


def result(future: Future[T]) -> T:
    """``future.result()`` that a signal taken by any thread interrupts within :data:`POLL_SECONDS`.

    Waits with ``concurrent.futures.wait``, not ``result(timeout=...)``: the job's own ``TimeoutError``
    (a socket timeout) is the same class as the wait's own, and would be taken for "not done yet"."""
    while not future.done():
        futures.wait([future], timeout=POLL_SECONDS)
    return future.result()
