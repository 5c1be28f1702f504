"""Whether a run needs ``terraform apply``, and the saved plan it would apply.

A first deploy used to plan three times (a plan to decide, the same plan again under the lock,
and the apply's own): 40 s of a 62 s first deploy on 2 cores. Now the plan that decides is saved
(``-out``) and is the one applied, unless the state moved while the run waited for the lock. The
saved plan is also read as data (``terraform show -json``): what it would destroy (a function
removed from the map is shown, and refused without ``--allow-destroy``), its counts, and the
``deploy_targets`` it would produce, so the functions and the runtime a run checks before any
write are the ones its apply makes, not the ones the state had before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.config import Targets
from deploy.errors import TerraformError
from deploy.terraform.targets import OUTPUT_NAME, targets_from_outputs

#: Resources whose destruction loses what a deploy made (versions, aliases, traffic): refused unless allowed.
_GUARDED = {"aws_lambda_function": "function", "aws_lambda_layer_version": "layer version"}


@dataclass(frozen=True, kw_only=True)
class SavedPlan:
    path: Path
    add: int
    change: int
    destroy: int
    #: what the plan destroys (or replaces) that a deploy guards: ``remove function bluemoxon-local-x``
    removals: tuple[str, ...]
    #: ``deploy_targets`` as the apply will leave it (None when the plan cannot tell before applying)
    planned: Targets | None

    def summary(self) -> str:
        return f"{self.add} to add, {self.change} to change, {self.destroy} to destroy"


@dataclass(frozen=True, kw_only=True)
class InfraDecision:
    needed: bool
    reason: str
    #: the state object's identity when this was decided: the saved plan is applied only while it holds
    state: str = ""
    plan: SavedPlan | None = None

    @property
    def removals(self) -> tuple[str, ...]:
        return self.plan.removals if self.plan is not None else ()


def _name(kind: str, before: Mapping[str, Any], address: str) -> str:
    if kind == "function":
        return str(before.get("function_name") or address)
    layer = before.get("layer_name")
    version = before.get("version")
    return f"{layer}:{version}" if layer and version else address


def read_saved_plan(data: Mapping[str, Any], *, env: str, path: Path) -> SavedPlan:
    """``terraform show -json PLAN`` → counts, guarded removals and the planned ``deploy_targets``."""
    add = change = destroy = 0
    removals: list[str] = []
    for rc in data.get("resource_changes") or []:
        actions = list((rc.get("change") or {}).get("actions") or [])
        if "create" in actions:
            add += 1
        if "delete" in actions:
            destroy += 1
        if actions == ["update"]:
            change += 1
        kind = _GUARDED.get(str(rc.get("type")))
        if kind is not None and "delete" in actions and rc.get("mode", "managed") == "managed":
            before = (rc.get("change") or {}).get("before") or {}
            verb = "replace" if "create" in actions else "remove"
            removals.append(f"{verb} {kind} {_name(kind, before, str(rc.get('address')))}")
    outputs = ((data.get("planned_values") or {}).get("outputs")) or {}
    planned: Targets | None = None
    if isinstance(outputs.get(OUTPUT_NAME), Mapping) and "value" in outputs[OUTPUT_NAME]:
        try:
            planned = targets_from_outputs({OUTPUT_NAME: outputs[OUTPUT_NAME]["value"]}, env)
        except TerraformError:
            planned = None  # parts only known after the apply: the run checks again then
    return SavedPlan(
        path=path, add=add, change=change, destroy=destroy, removals=tuple(sorted(removals)), planned=planned
    )
