"""Parse Terraform's ``deploy_targets`` output into ``Targets``.

Terraform (``infra/terraform``) is the source of truth for every resource name; the
tasks never build one themselves, they read them from this output. The functions are
whatever ``var.functions`` declares (at least one): no key is expected by name, so adding or
removing a function is an edit of that map alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deploy.config import ARCHITECTURES, FunctionTarget, Targets
from deploy.errors import TerraformError

OUTPUT_NAME = "deploy_targets"


def _not_applied(env: str) -> TerraformError:
    return TerraformError(
        f"terraform has not been applied for env {env}: run `inv infra.apply --env {env}`",
        hint=f"the {OUTPUT_NAME} output is missing from the {env} workspace's state",
    )


def _field(tree: Mapping[str, Any], name: str, where: str) -> str:
    value = tree.get(name)
    if not isinstance(value, str) or not value:
        raise TerraformError(f"terraform output {where}.{name} must be a non-empty string, got {value!r}")
    return value


def _architecture(fn: Mapping[str, Any], where: str) -> str | None:
    """Lambda gives a function exactly one architecture, as a one-element list."""
    if "architectures" not in fn:
        return None
    value = fn["architectures"]
    if not isinstance(value, list) or len(value) != 1 or value[0] not in ARCHITECTURES:
        raise TerraformError(
            f"terraform output {where}.architectures must be one of {[[a] for a in ARCHITECTURES]}, got {value!r}"
        )
    return str(value[0])


def _sources(fn: Mapping[str, Any], where: str) -> tuple[str, ...]:
    """The function's sources (var.functions); an output from before they were listed has none."""
    value = fn.get("sources", [])
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        raise TerraformError(f"terraform output {where}.sources must be a list of paths, got {value!r}")
    return tuple(value)


def targets_from_outputs(outputs: Mapping[str, Any], env: str) -> Targets:
    """Parse ``terraform output -json`` (or just its ``deploy_targets`` value) into Targets."""
    if not outputs or OUTPUT_NAME not in outputs:
        raise _not_applied(env)
    raw = outputs[OUTPUT_NAME]
    # `terraform output -json` wraps each output as {"value": ..., "type": ..., "sensitive": ...}.
    if isinstance(raw, Mapping) and "value" in raw and "type" in raw:
        raw = raw["value"]
    if raw is None:
        raise _not_applied(env)
    if not isinstance(raw, Mapping):
        raise TerraformError(f"terraform output {OUTPUT_NAME} must be an object, got {type(raw).__name__}")

    found_env = _field(raw, "env", OUTPUT_NAME)
    if found_env != env:
        raise TerraformError(
            f"terraform state is for env {found_env!r}, not {env!r}: refusing to use another environment's names",
            hint=f"run `inv infra.apply --env {env}`; the state must come from the {env} workspace",
        )

    functions_raw = raw.get("functions")
    if not isinstance(functions_raw, Mapping) or not functions_raw:
        raise TerraformError(f"terraform output {OUTPUT_NAME}.functions must be a non-empty object")
    functions = []
    for key in sorted(functions_raw):
        fn = functions_raw[key]
        where = f"{OUTPUT_NAME}.functions.{key}"
        if not isinstance(fn, Mapping):
            raise TerraformError(f"terraform output {where} must be an object")
        functions.append(
            FunctionTarget(
                key=str(key),
                name=_field(fn, "name", where),
                handler=_field(fn, "handler", where),
                runtime=_field(fn, "runtime", where) if "runtime" in fn else None,
                architecture=_architecture(fn, where),
                region=_field(fn, "region", where) if "region" in fn else None,
                sources=_sources(fn, where),
            )
        )
    names: dict[str, str] = {}
    for fn_target in functions:
        if fn_target.name in names:
            raise TerraformError(
                f"terraform output {OUTPUT_NAME}.functions: {names[fn_target.name]} and {fn_target.key} "
                f"are one function, {fn_target.name}"
            )
        names[fn_target.name] = fn_target.key

    alias = raw.get("alias", "live")
    if not isinstance(alias, str) or not alias:
        raise TerraformError(f"terraform output {OUTPUT_NAME}.alias must be a non-empty string")
    return Targets(
        env=found_env,
        region=_field(raw, "region", OUTPUT_NAME),
        bucket=_field(raw, "bucket", OUTPUT_NAME),
        layer_name=_field(raw, "layer_name", OUTPUT_NAME),
        runtime=_field(raw, "runtime", OUTPUT_NAME),
        architecture=_field(raw, "architecture", OUTPUT_NAME),
        functions=tuple(functions),
        alias=alias,
    )
