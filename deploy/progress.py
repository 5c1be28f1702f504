"""Progress as typed events: the attach, the transaction and ``rollback`` emit an :class:`Event`
(function, step, state, detail) through a callback, and the display (``deploy.run.show``) decides
what to show; :func:`plain` is the one-line-per-event rendering (CI logs, the restore).

Before, they emitted sentences that the display parsed back (``startswith("moving alias")``), which
could not tell the start of a step from its end: "alias moved" was ticked when the move began. Now
the ✓ comes with the ``DONE`` event, sent when Lambda has answered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from rich.markup import escape

from deploy import report
from deploy.steps import Step


class State(StrEnum):
    STARTED = "started"
    DONE = "done"
    FAILED = "failed"
    RETRYING = "retrying"  # a compare-and-set write lost to another writer: re-read, then again
    WAITING = "waiting"  # held until something else finishes (a signal during the restore)
    UNDOING = "undoing"  # the restore is putting this step's change back


@dataclass(frozen=True, kw_only=True)
class Event:
    """``function`` None: the step concerns the whole run (the code upload, the restore)."""

    function: str | None
    step: Step
    state: State
    detail: str = ""

    def line(self) -> str:
        """The event as one plain line (a CI log, a test's transcript): its detail, else the step's words."""
        words = {State.STARTED: self.step.doing, State.DONE: self.step.done}.get(self.state)
        text = self.detail or words or f"{self.step.noun} {self.state}"
        return f"{self.function}: {text}" if self.function else text


Progress = Callable[[Event], None]


def ignore(_event: Event) -> None:
    return None


def plain(event: Event) -> None:
    """One line per event: what runs without a terminal, and the restore everywhere."""
    report.progress(escape(event.line()))
