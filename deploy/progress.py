"""Progress as typed events, and what the user sees of them and of the outcomes.

The attach, the transaction and ``rollback`` emit an :class:`Event` (function, step, state, detail)
through a callback; the display decides what to show. Before, they emitted sentences that the
display parsed back (``startswith("moving alias")``), which could not tell the start of a step from
its end: "alias moved" was ticked when the move began. Now the ✓ comes with the ``DONE`` event, sent
when Lambda has answered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rich.markup import escape

from deploy import report
from deploy.steps import Outcome, Status, Step


class State(StrEnum):
    STARTED = "started"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
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


@contextmanager
def function_lines(names: Sequence[str]) -> Iterator[Progress]:
    """One line per function: a spinner showing the step running, then a ✓ with what was done once
    its alias moved (the versions are in the outcome table, said once), or a ✗ with the failure."""
    done: dict[str, list[str]] = {name: [] for name in names}
    with report.item_lines(names, "waiting", idle="unchanged") as lines:

        def on_event(event: Event) -> None:
            name = event.function
            if name is None or name not in done:
                plain(event)  # not one function's step (the code upload)
            elif event.state is State.FAILED:
                lines.done(name, False, event.line().removeprefix(f"{name}: "))
            elif event.state is State.DONE:
                done[name].append(event.step.done)
                if event.step is Step.ALIAS:
                    lines.done(name, True, ", ".join(done[name]))
                else:
                    lines.update(name, event.step.done)
            else:
                lines.update(name, event.line().removeprefix(f"{name}: "))

        yield on_event


def live_change(old: Any, new: Any) -> str:
    """``1 → 2``, or ``3 (unchanged)`` when the alias did not move (never ``3 → None``)."""
    if new is None or str(new) == str(old):
        return f"{old} (unchanged)"
    return f"{old} → {new}"


def outcome_rows(outcomes: Iterable[Outcome]) -> list[tuple[str, str, str, str]]:
    return [
        (o.name, o.status, live_change(o.old_version, o.new_version), o.detail or "")
        for o in sorted(outcomes, key=lambda o: o.name)
    ]


def show_outcomes(title: str, outcomes: Iterable[Outcome], *, last: str = "detail") -> None:
    report.table(title, ["function", "outcome", "live", last], outcome_rows(outcomes))


def show_rollback(title: str, outcomes: Iterable[Outcome]) -> None:
    report.table(
        title,
        ["function", "live", "changed"],
        [(o.name, f"{o.old_version} → {o.new_version}", o.status is not Status.UNCHANGED) for o in outcomes],
    )


def summary(deploy: report.DeployReport) -> None:
    """The deploy's closing table and one line: what changed, how long, how many writes."""
    functions = deploy.functions
    if functions:
        report.table(
            f"deploy {deploy.env}" + (" (dry run)" if deploy.dry_run else ""),
            ["function", "outcome", "live"],
            [(f.name, f.status, live_change(f.old_version, f.new_version)) for f in functions],
        )
    changed = sum(1 for f in functions if f.status is not Status.UNCHANGED)
    if deploy.dry_run:
        verdict = f"dry run: {changed} function(s) would change" if changed else "dry run: nothing would change"
    else:
        verdict = "deployed" if changed else "nothing changed"
    tf = deploy.terraform
    report.say(
        f"{verdict} in {deploy.seconds} s; {deploy.aws_write_calls} AWS write call(s); terraform apply {tf.apply}"
        f"{', state written' if tf.state_written else ', state not written'}"
    )
