"""attach: put the new function code and layer version behind each function's ``live`` alias.

Traffic reaches the functions only through the alias, so the alias is the commit point:
code and layer are changed on ``$LATEST`` (invisible to alias callers), frozen into a
published version, and only when every function has its version staged do the aliases
move. Every write is recorded in the caller's :class:`deploy.aws.transaction.Transaction`
before it is sent; on any failure or interrupt the transaction (the one restore path for
attach, deploy and rollback) moves back what this run changed, compare-and-set. Callers
never see new code with an old layer or the reverse (design property 4), and any failure
leaves every function serving what it served before (property 5).

A function whose code, layers and alias already match makes no write call at all.
"""

from __future__ import annotations

from deploy.aws.attach_apply import (
    DEADLINE_S,
    AttachResult,
    Recorder,
    apply_attach,
    attach,
    previous_marker,
)
from deploy.aws.attach_plan import AttachPlan, desired_layers, frozen_config, plan_attach
from deploy.lambda_facts import MAX_LAYERS

__all__ = [
    "DEADLINE_S",
    "MAX_LAYERS",
    "AttachPlan",
    "AttachResult",
    "Recorder",
    "apply_attach",
    "attach",
    "desired_layers",
    "frozen_config",
    "plan_attach",
    "previous_marker",
]
