"""Terminal output and machine-readable reports.

Human output goes to stderr (progress, tables), so ``--json`` keeps stdout a single
JSON document a CI step can parse. On a terminal long steps are live (a spinner line that
updates, a byte bar); without one, or with ``CI`` set, each step is one plain line, so a
CI log reads like a list of what happened.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.console import Console, Group
from rich.filesize import decimal
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.spinner import Spinner
from rich.status import Status
from rich.table import Table
from rich.text import Text

from deploy.steps import Outcome

console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass(frozen=True, kw_only=True)
class TerraformResult:
    """What the deploy did with Terraform: its writes are not boto3 calls, so they are reported here."""

    apply: Literal["applied", "skipped", "not run"] = "not run"
    reason: str = ""
    state_written: bool = False  # the state object's ETag changed during the deploy


@dataclass(kw_only=True)
class DeployReport:
    """Filled in by ``deploy`` step by step; ``to_json`` is the ``--json`` / ``--report-file`` document and
    :func:`markdown` renders the job summary from it."""

    env: str
    dry_run: bool
    ok: bool = False
    error: str | None = None
    layer: dict[str, Any] | None = None
    function: dict[str, Any] | None = None
    plan: dict[str, Any] | None = None
    publish: list[dict[str, Any]] = field(default_factory=list)
    #: one per function; its status is a str enum, so the JSON carries the same strings as ever
    functions: list[Outcome] = field(default_factory=list)
    verify: dict[str, Any] = field(default_factory=dict)
    rolled_back: bool = False
    transaction: dict[str, Any] | None = None
    terraform: TerraformResult = field(default_factory=TerraformResult)
    aws_write_calls: int = 0
    aws_write_operations: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: Seconds per step (build, plan, verify local, lock, terraform, upload, attach, verify deployed), summed
    #: when a step runs twice: ``inv bench`` reports them, so a slowdown shows where it lives.
    step_seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.step_seconds[step] = round(self.step_seconds.get(step, 0.0) + elapsed, 3)


def say(message: str) -> None:
    console.print(message)


def raw(line: str) -> None:
    """A line of a tool's own output (Terraform), shown as is: no markup, dimmed."""
    console.print(line, markup=False, highlight=False, style="dim")


def progress(step: str) -> None:
    """One line per long step, so a slow deploy never looks hung."""
    console.print(f"[bold cyan]›[/] {step}")


def live() -> bool:
    """Spinners and bars only on a terminal outside CI; elsewhere one line per step."""
    return console.is_terminal and not os.environ.get("CI")


class StepLine:
    """One long step: on a terminal a spinner line whose text updates; elsewhere only its first line."""

    def __init__(self, text: str, *, announce: bool = True) -> None:
        self._status: Status | None = None
        if live():
            self._status = console.status(f"[bold cyan]›[/] {escape(text)}")
            self._status.start()
        elif announce:
            progress(escape(text))

    def update(self, text: str) -> None:
        if self._status is not None:
            self._status.update(f"[bold cyan]›[/] {escape(text)}")

    def stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


@contextmanager
def step(text: str, *, announce: bool = True) -> Iterator[StepLine]:
    """``announce=False``: without a terminal, the step prints only what its caller prints."""
    line = StepLine(text, announce=announce)
    try:
        yield line
    finally:
        line.stop()


class ItemLines:
    """One line per item (a function being verified): a spinner that turns into its result.
    Without a terminal, each result is printed as it arrives (one line per function)."""

    def __init__(self, names: Sequence[str], running: str, idle: str = "no result") -> None:
        self._names = list(names)
        self._running = running
        self._idle = idle  # what an item that never reported a result shows at the end
        self._current: dict[str, str] = {}
        self._done: dict[str, tuple[str, str]] = {}  # name -> (mark, text)
        self._live: Live | None = None
        if live():
            self._live = Live(self._render(), console=console, refresh_per_second=8, transient=False)
            self._live.start()

    def _render(self) -> Group:
        rows: list[Any] = []
        for name in self._names:
            if name in self._done:
                mark, text = self._done[name]
                # A live display crops at the terminal's edge: cut the middle of a long result instead.
                room = max(20, console.width - len(short(name)) - 4)
                rows.append(Text.from_markup(f"{mark} {escape(short(name))}: {escape(short(text, room))}"))
            else:
                rows.append(Spinner("dots", text=f"{short(name)}: {self._current.get(name, self._running)}"))
        return Group(*rows)

    def done(self, name: str, ok: bool | None, text: str, *, import_only: bool = False) -> None:
        """A ✓ only for what ran and passed in full. ``import_only``: it passed, but not everything was
        checked (no smoke events, or a case skipped): a circle. ``ok=None``: no result at all: a dash."""
        if ok is None:
            mark = "[dim]–[/]"
        else:
            mark = "[red]✗[/]" if not ok else ("[yellow]○[/]" if import_only else "[green]✓[/]")
        self._done[name] = (mark, text)
        if self._live is not None:
            self._live.update(self._render())
        else:
            console.print(f"{mark} {escape(short(name))}: {escape(text)}")

    def update(self, name: str, text: str) -> None:
        """A still-running item's current step (shown on a terminal only)."""
        self._current[name] = text
        if self._live is not None:
            self._live.update(self._render())

    def stop(self) -> None:
        for name in self._names:
            if name not in self._done:
                self.done(name, None, self._idle)  # never a ✓ for a line that found no result
        if self._live is not None:
            self._live.update(self._render())
            self._live.stop()
            self._live = None


@contextmanager
def item_lines(names: Sequence[str], running: str, idle: str = "no result") -> Iterator[ItemLines]:
    lines = ItemLines(names, running, idle)
    try:
        yield lines
    finally:
        lines.stop()


@contextmanager
def transfer(text: str, total: int) -> Iterator[Callable[[int], None]]:
    """A byte progress bar for an upload (the callback takes bytes sent since the last call)."""
    if not live():
        progress(f"{escape(text)} ({decimal(total)})")
        yield lambda _sent: None
        return
    columns = (TextColumn("[bold cyan]›[/] {task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(escape(text), total=total)
        yield lambda sent: bar.advance(task, sent)
    progress(f"{escape(text)}: {decimal(total)} sent")


def human_size(n: float) -> str:
    """``14.9 kB``: SI units, as S3 and Lambda count bytes."""
    return decimal(int(n))


def short(text: str, width: int = 28) -> str:
    """Fit ``text`` in ``width`` by cutting its middle: names differ at their ends
    (``bluemoxon-local-eval-runbook-worker`` → ``bluemoxon-loc…runbook-worker``)."""
    if len(text) <= width:
        return text
    keep = width - 1
    return f"{text[: keep // 2]}…{text[len(text) - (keep - keep // 2) :]}"


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A table that fits 80 columns: the first column (names) is shortened in its middle."""
    t = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        t.add_column(col, no_wrap=i == 0)
    for row in rows:
        cells = [str(v) for v in row]
        if cells:
            cells[0] = short(cells[0])
        t.add_row(*cells)
    console.print(t)


def bars(rows: Sequence[tuple[str, int]], *, budget: int, width: int = 40) -> str:
    """A plain-text bar chart of sizes against ``budget`` (Lambda's unzipped limit)."""
    if not rows:
        return "(empty)"
    widest = max(size for _, size in rows)
    name_w = max(len(name) for name, _ in rows)
    lines = []
    for name, size in rows:
        filled = max(1, round(width * size / widest)) if size else 0
        lines.append(f"{name:<{name_w}}  {'█' * filled:<{width}}  {human_size(size):>9}  {100 * size / budget:5.1f}%")
    return "\n".join(lines)


def emit_json(data: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_report(data: Mapping[str, Any], path: Path) -> tuple[Path, Path]:
    """Write the JSON report and a Markdown summary beside it (for $GITHUB_STEP_SUMMARY)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    md = path.with_suffix(".md")
    md.write_text(markdown(data))
    return path, md


def markdown(data: Mapping[str, Any]) -> str:
    lines = [f"## Deploy `{data.get('env', '?')}`: {'✅ ok' if data.get('ok') else '❌ failed'}", ""]
    if data.get("error"):
        lines += [f"**Error:** {data['error']}", ""]
    layer = data.get("layer") or {}
    if layer:
        lines += [
            f"- layer identity `{str(layer.get('identity', ''))[:16]}`, "
            f"{human_size(layer.get('zipped_size', 0))} zipped / {human_size(layer.get('unzipped_size', 0))} unzipped"
            + (f" ({layer['source']})" if layer.get("source") else "")
        ]
    function = data.get("function") or {}
    if function:
        commit = str(function.get("commit") or "unknown")
        lines.append(
            f"- function code `{str(function.get('sha256', ''))[:16]}` from commit `{commit[:12]}`"
            + (" (dirty)" if function.get("dirty", True) else "")
        )
    for pub in data.get("publish", []) or []:
        lines.append(f"- {pub.get('region')}: layer version `{pub.get('layer_version_arn')}` ({pub.get('action')})")
    functions = data.get("functions") or []
    if functions:
        lines += ["", "| function | outcome | live version | verify |", "|---|---|---|---|"]
        for fn in functions:
            lines.append(
                f"| {fn.get('name')} | {fn.get('status')} | {fn.get('old_version')} → {fn.get('new_version')} "
                f"| {fn.get('verify', '')} |"
            )
    return "\n".join(lines) + "\n"
