"""Terraform for one environment: ``runner`` runs it (init, workspace, apply, plan, output),
``targets`` parses its ``deploy_targets`` output, ``fingerprint`` lets a deploy skip a no-op
apply. The state bucket it needs lives in ``deploy.aws.state_bucket``.

The names below are what ``deploy.run`` and the tests use, so callers write
``from deploy import terraform`` and never depend on which module holds what.
"""

from __future__ import annotations

from deploy.aws.state_bucket import ensure_state_bucket, state_identity
from deploy.terraform.events import Progress
from deploy.terraform.fingerprint import (
    DIGEST_VARIABLE,
    applied_digest,
    apply_needed,
    config_digest,
    fingerprint,
    record_apply,
)
from deploy.terraform.functions import DeclaredFunction, declared_functions
from deploy.terraform.runner import (
    DEFAULT_PLUGIN_MIRROR,
    MIN_VERSION,
    MIRROR_ENV_VAR,
    STDERR_TAIL,
    Echo,
    Terraform,
    apply,
    backend_config,
    backend_hcl,
    find_terraform,
    forget_targets,
    init,
    init_args,
    load_targets,
    orphans,
    output_json,
    parse_version,
    plan,
    registry_unreachable,
    resolve_plugin_mirror,
    select_workspace,
    show_plan_json,
    tail,
    terraform_for,
)
from deploy.terraform.targets import OUTPUT_NAME, targets_from_outputs

__all__ = [
    "DEFAULT_PLUGIN_MIRROR",
    "DIGEST_VARIABLE",
    "MIN_VERSION",
    "MIRROR_ENV_VAR",
    "OUTPUT_NAME",
    "STDERR_TAIL",
    "DeclaredFunction",
    "Echo",
    "Progress",
    "Terraform",
    "applied_digest",
    "apply",
    "apply_needed",
    "backend_config",
    "backend_hcl",
    "config_digest",
    "declared_functions",
    "ensure_state_bucket",
    "find_terraform",
    "fingerprint",
    "forget_targets",
    "init",
    "init_args",
    "load_targets",
    "orphans",
    "output_json",
    "parse_version",
    "plan",
    "record_apply",
    "registry_unreachable",
    "resolve_plugin_mirror",
    "select_workspace",
    "show_plan_json",
    "state_identity",
    "tail",
    "targets_from_outputs",
    "terraform_for",
]
