"""What the tasks show the user: progress lines, tables, summaries and verify lines.

Rendering only: nothing here reads AWS, Terraform or the settings beyond the environment's name.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from deploy.report import (
    DeployReport,
    emit_json,
    item_lines,
    progress,
    say,
    table,
)

if TYPE_CHECKING:
    from deploy import plan as plan_mod
    from deploy import transaction
    from deploy.aws import attach as attach_mod
    from deploy.config import EnvConfig, Targets


def _aws_progress(what: str, message: str) -> None:
    progress(f"{what}: {message}")


@contextlib.contextmanager
def _attach_lines(targets: Targets) -> Any:
    """attach's per-function steps as one line per function: a spinner showing the current
    step, then what was done (the versions are in the deploy table, said once)."""
    names = [fn.name for fn in targets.functions]
    steps: dict[str, list[str]] = {name: [] for name in names}
    with item_lines(names, "waiting", idle="unchanged") as lines:

        def on_step(name: str, message: str) -> None:
            if name not in steps:
                progress(f"{name}: {message}")  # not one function (the code upload)
            elif message.startswith(("failed", "rolling")):
                lines.done(name, False, message)
            elif message.startswith("moving alias"):
                done = [*steps[name], "alias moved"]
                lines.done(name, True, ", ".join(done))
            else:
                steps[name].append(
                    message.replace("updating code", "code updated")
                    .replace("setting layers", "layers set")
                    .replace("publishing a version", "version published")
                )
                lines.update(name, message)

        yield on_step


def live_change(old: Any, new: Any) -> str:
    """``1 → 2``, or ``3 (unchanged)`` when the alias did not move (never ``3 → None``)."""
    if new is None or str(new) == str(old):
        return f"{old} (unchanged)"
    return f"{old} → {new}"


def _attach_rows(result: attach_mod.AttachResult) -> list[tuple[str, str, str, str]]:
    return [
        (o.name, o.status, live_change(o.old_version, o.new_version), o.error or "")
        for o in sorted(result.outcomes, key=lambda o: o.name)
    ]


def _show_transaction(title: str, report: transaction.TransactionReport, *, as_json: bool, env: EnvConfig) -> None:
    if as_json:
        emit_json({"env": env.name, **report.to_json()})
        return
    table(
        title,
        ["function", "outcome", "live", "detail"],
        [
            (f.name, f.outcome, live_change(f.old_version, f.new_version), f.detail or "")
            for f in sorted(report.functions, key=lambda f: f.name)
        ],
    )


def _show_attach(result: attach_mod.AttachResult, *, as_json: bool, env: EnvConfig) -> None:
    if as_json:
        emit_json({"env": env.name, **result.to_json()})
    else:
        table(f"attach {env.name}", ["function", "outcome", "live", "error"], _attach_rows(result))


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
    ``import 112 ms; import only (no smoke events)`` for a function whose handler never ran."""
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
    changed = sum(1 for f in functions if f.status != "unchanged")
    if report.dry_run:
        verdict = f"dry run: {changed} function(s) would change" if changed else "dry run: nothing would change"
    else:
        verdict = "deployed" if changed else "nothing changed"
    tf = report.terraform
    say(
        f"{verdict} in {report.seconds} s; {report.aws_write_calls} AWS write call(s); terraform apply {tf.apply}"
        f"{', state written' if tf.state_written else ', state not written'}"
    )
