"""Signals a worker thread takes: the case a bare ``join()`` or ``result()`` in the main thread misses.

The kernel hands a process-wide SIGINT to any thread that does not block it; ``signal.pthread_kill``
on a worker makes that case happen every time instead of once in a while (CI saw it once)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import ModuleType


def until_the_main_thread_waits_in(module: ModuleType, function: str) -> None:
    """Return once the main thread is inside ``module.function`` (a hang guard of 30 s, never reached)."""
    main = threading.main_thread().ident
    for _ in range(30_000):
        frame = sys._current_frames().get(main)  # the one way to see where another thread is
        while frame is not None and (frame.f_code.co_filename, frame.f_code.co_name) != (module.__file__, function):
            frame = frame.f_back
        if frame is not None:
            return
        threading.Event().wait(0.001)
    raise AssertionError(f"the main thread never reached {module.__name__}.{function}")


def interrupt(thread_ident: int | None) -> None:
    """SIGINT to one thread, or to the process (the kernel picks the thread) when ``thread_ident`` is None."""
    if thread_ident is None:
        os.kill(os.getpid(), signal.SIGINT)
    else:
        signal.pthread_kill(thread_ident, signal.SIGINT)
