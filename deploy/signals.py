"""SIGTERM as an exception, so ``finally`` blocks (the deploy lock, the transaction's restore) run.

CI cancels a job with SIGTERM; Python's default is to die on the spot. Kept tiny on purpose:
``deploy.cli`` imports it for every task, including the ones that never touch AWS.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


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
