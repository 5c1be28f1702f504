"""Terraform's machine-readable UI (``apply -json``, ``plan -json``): one JSON object per line.

Streamed raw, a first apply is hundreds of lines a person cannot follow. Read as events it
is one progress line (to add / change / destroy, done so far, the resource in progress) and,
for the log file and error messages, each event's own human text (``@message``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def parse(line: str) -> Mapping[str, Any] | None:
    """The event on ``line``, or None for a plain text line (init, workspace, a fake in tests)."""
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, Mapping) else None


def text(event: Mapping[str, Any]) -> str:
    """What Terraform would have printed for ``event``; diagnostics in full (summary, detail,
    the resource address: ``with <address>,`` as in Terraform's own text)."""
    diagnostic = event.get("diagnostic") if event.get("type") == "diagnostic" else None
    if not isinstance(diagnostic, Mapping):
        return str(event.get("@message", ""))
    lines = [f"{str(diagnostic.get('severity', 'error')).capitalize()}: {diagnostic.get('summary', '')}"]
    if diagnostic.get("detail"):
        lines.append(str(diagnostic["detail"]))
    if diagnostic.get("address"):
        lines.append(f"  with {diagnostic['address']},")
    return "\n".join(lines)


_VERBS = {"create": "creating", "update": "updating", "delete": "destroying", "replace": "replacing", "read": "reading"}


@dataclass(kw_only=True)
class Progress:
    """Counts of one ``apply``/``plan`` run, fed event by event."""

    add: int = 0
    change: int = 0
    remove: int = 0
    done: int = 0
    planned: bool = False  # the plan's change summary arrived
    in_progress: dict[str, str] = field(default_factory=dict)  # address -> verb

    def feed(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        if kind == "change_summary":
            changes = event.get("changes") or {}
            # A saved plan's apply sends no plan summary, only the apply's own at the end.
            if changes.get("operation", "plan") == "plan" or not self.planned:
                self.add = int(changes.get("add", 0))
                self.change = int(changes.get("change", 0))
                self.remove = int(changes.get("remove", 0))
                self.planned = True
            return
        hook = event.get("hook") or {}
        address = str((hook.get("resource") or {}).get("addr", ""))
        if kind == "apply_start" and address:
            self.in_progress[address] = _VERBS.get(str(hook.get("action", "")), "changing")
        elif kind in ("apply_complete", "apply_errored") and address:
            self.in_progress.pop(address, None)
            if kind == "apply_complete":
                self.done += 1

    @property
    def total(self) -> int:
        return self.add + self.change + self.remove

    def summary(self) -> str:
        return f"{self.add} to add, {self.change} to change, {self.remove} to destroy"

    def line(self) -> str:
        """``28 to add, 0 to change, 0 to destroy; 12/28 done; creating module.api.aws_lambda_function.this``."""
        if not self.planned:
            return "planning"
        parts = [self.summary(), f"{self.done}/{self.total} done"]
        if self.in_progress:
            address, verb = next(reversed(self.in_progress.items()))
            more = f" (+{len(self.in_progress) - 1})" if len(self.in_progress) > 1 else ""
            parts.append(f"{verb} {address}{more}")
        return "; ".join(parts)
