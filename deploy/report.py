"""Terminal output and machine-readable reports.

Human output goes to stderr (progress, tables), so ``--json`` keeps stdout a single
JSON document a CI step can parse.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(stderr=True, highlight=False, soft_wrap=True)


def say(message: str) -> None:
    console.print(message)


def raw(line: str) -> None:
    """A line of a tool's own output (Terraform), shown as is: no markup, dimmed."""
    console.print(line, markup=False, highlight=False, style="dim")


def progress(step: str) -> None:
    """One line per long step, so a slow deploy never looks hung."""
    console.print(f"[bold cyan]›[/] {step}")


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    t = Table(title=title, title_justify="left")
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*(str(v) for v in row))
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
