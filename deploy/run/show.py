"""What the tasks show the user: progress lines, tables, summaries and verify lines.

Rendering only: nothing here reads AWS, Terraform or the settings beyond the environment's name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from deploy.progress import Event, Progress, State, plain
from deploy.report import (
    DeployReport,
    emit_json,
    item_lines,
    progress,
    say,
    table,
)
from deploy.steps import Outcome, Status, Step

if TYPE_CHECKING:
    from deploy import plan as plan_mod
    from deploy.aws import attach as attach_mod
    from deploy.aws.transaction import TransactionReport
    from deploy.config import EnvConfig, Targets


def _aws_progress(what: str, message: str) -> None:
    progress(f"{what}: {message}")


@contextlib.contextmanager
def _attach_lines(targets: Targets) -> Iterator[Progress]:
    """attach's per-function steps as one line per function: a spinner showing the step running,
    then a ✓ with what was done once its alias moved (the versions are in the deploy table, said
    once), or a ✗ with the failure. Typed events: the ✓ comes with the alias's DONE, sent when
    Lambda has answered (parsing "moving alias" lines ticked it when the move began)."""
    names = [fn.name for fn in targets.functions]
    done: dict[str, list[str]] = {name: [] for name in names}
    with item_lines(names, "waiting", idle="unchanged") as lines:

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


def _outcome_rows(outcomes: Iterable[Outcome]) -> list[tuple[str, str, str, str]]:
    return [
        (o.name, o.status, live_change(o.old_version, o.new_version), o.detail or "")
        for o in sorted(outcomes, key=lambda o: o.name)
    ]


def _show_transaction(title: str, report: TransactionReport, *, as_json: bool, env: EnvConfig) -> None:
    if as_json:
        emit_json({"env": env.name, **report.to_json()})
        return
    table(title, ["function", "outcome", "live", "detail"], _outcome_rows(report.functions))


def _show_attach(result: attach_mod.AttachResult, *, as_json: bool, env: EnvConfig) -> None:
    if as_json:
        emit_json({"env": env.name, **result.to_json()})
    else:
        table(f"attach {env.name}", ["function", "outcome", "live", "error"], _outcome_rows(result.outcomes))


def _show_rollback(title: str, outcomes: Iterable[Outcome]) -> None:
    table(
        title,
        ["function", "live", "changed"],
        [(o.name, f"{o.old_version} → {o.new_version}", o.status is not Status.UNCHANGED) for o in outcomes],
    )


def _show_plan(title: str, plan: plan_mod.DeployPlan) -> None:
    if plan.functions:
        table(
            title,
            ["function", "live", "would"],
            [(f.name, f.alias_from, f.describe()) for f in sorted(plan.functions, key=lambda f: f.name)],
        )
    for line in plan.lines():
        if not any(line.startswith(f"{f.name}:") for f in plan.functions):
            say(f"  - {line}")


def _partial(fn: Any) -> bool:
    """Passed, but not in full: only imported (no smoke events), or a smoke case skipped: not a ✓."""
    return bool(fn.import_only or any(getattr(r, "skipped", False) for r in fn.results))


def _verify_line(fn: Any) -> str:
    """``import 1972 ms; health ok, admin-cleanup-dry-run ok; 408 ms``: one function's verify result;
    ``import 112 ms; import only (no smoke events)`` for a function whose handler never ran; why not, for
    one the deployed verify did not run again (``deploy.verify.reuse``)."""
    if fn.reused:
        return str(fn.reused)
    if fn.import_only:
        return f"import {fn.import_ms or 0:.0f} ms; import only (no smoke events)"
    smoke = ", ".join(
        f"{r.case} {'skipped' if getattr(r, 'skipped', False) else ('ok' if r.ok else 'FAILED')}" for r in fn.results
    )
    parts = []
    if fn.import_ms is not None:
        parts.append(f"import {fn.import_ms:.0f} ms")
    parts.append(smoke or (fn.error or "no result"))
    if fn.results:
        parts.append(f"{sum(r.duration_ms or 0 for r in fn.results):.0f} ms")
    return "; ".join(parts)


def _show_failures(report: Any) -> None:
    if report.import_only:
        mark = "[red]✗[/]" if report.strict else "[yellow]○[/]"
        say(f"{mark} import only (no smoke events in invoke.yaml): {escape(', '.join(report.import_only))}")
    for fn in report.functions:
        if not fn.ok:
            tail = fn.traceback_tail or next((r.traceback_tail for r in fn.results if r.traceback_tail), None)
            for problem in fn.problems():
                say(f"[red]✗[/] {escape(problem)}")
            if tail:
                say(escape(tail))


def _summary(report: DeployReport) -> None:
    functions = report.functions
    if functions:
        table(
            f"deploy {report.env}" + (" (dry run)" if report.dry_run else ""),
            ["function", "outcome", "live"],
            [(f.name, f.status, live_change(f.old_version, f.new_version)) for f in functions],
        )
    changed = sum(1 for f in functions if f.status is not Status.UNCHANGED)
    if report.dry_run:
        verdict = f"dry run: {changed} function(s) would change" if changed else "dry run: nothing would change"
    else:
        verdict = "deployed" if changed else "nothing changed"
    tf = report.terraform
    say(
        f"{verdict} in {report.seconds} s; {report.aws_write_calls} AWS write call(s); terraform apply {tf.apply}"
        f"{', state written' if tf.state_written else ', state not written'}"
    )
