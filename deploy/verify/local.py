"""``verify --local`` without AWS: the function map from Terraform's configuration, the sandbox
environment from the settings, nothing asked of an account.

CI's build job installs and runs every package of the layer, so it holds no credentials (no
``id-token``, no role): it must verify the zips it hands over without any AWS call. Everything the
sandbox needs is in the checkout: the functions and their handlers are Terraform's ``var.functions``
(``deploy.terraform.functions`` evaluates the configuration and the environment's var-file, never
the state), the smoke events and forced variables are invoke.yaml's (``verify.smoke``,
``verify.sandbox_env``). What only Lambda knows (the variables Terraform derives from the account,
such as another function's ARN, and the memory size) is absent: a case that needs such a variable is
reported as skipped (``requires_env``), and the deploy's own local verify, which reads them, still runs
before anything is uploaded.

The functions are named by their keys here: their Lambda names come from Terraform's state.

With AWS at hand (the deploy), :func:`configured` reads each function's configuration so that the
local sandbox is the one the deployed verify builds (``deploy.verify.reuse``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.artifact import Artifact
from deploy.config import EnvConfig, FunctionTarget
from deploy.verify.extracted import ExtractionCache
from deploy.verify.results import VerifyReport
from deploy.verify.sandbox import OnResult, verify_local


@dataclass(frozen=True, kw_only=True)
class Configured:
    """What Lambda holds for a function that shapes its sandbox: its variables and memory size."""

    variables: dict[str, str]
    memory_mb: int


def configured(lam: Any, functions: Sequence[FunctionTarget]) -> dict[str, Configured]:
    """Each existing function's configuration ($LATEST, what the next version is published from), by key;
    a function not created yet is left out."""
    out: dict[str, Configured] = {}
    for fn in functions:
        try:
            config = lam.get_function_configuration(FunctionName=fn.name)
        except lam.exceptions.ResourceNotFoundException:
            continue
        out[fn.key] = Configured(
            variables=dict((config.get("Environment") or {}).get("Variables") or {}),
            memory_mb=int(config.get("MemorySize") or 128),
        )
    return out


def declared_targets(env: EnvConfig) -> tuple[FunctionTarget, ...]:
    """The functions of Terraform's configuration for ``env`` (not its state), named by key."""
    from deploy.terraform.functions import declared_functions

    return tuple(
        FunctionTarget(key=fn.key, name=fn.key, handler=fn.handler, sources=fn.sources)
        for fn in declared_functions(env)
    )


def verify_offline(
    env: EnvConfig,
    *,
    layer: Artifact,
    function: Artifact,
    python: Path | None = None,
    on_result: OnResult | None = None,
    trees: ExtractionCache | None = None,
) -> VerifyReport:
    """Run the built artifacts in the sandbox for every declared function; no AWS call, no credentials."""
    return verify_local(
        env,
        declared_targets(env),
        layer=layer,
        function=function,
        python=python,
        on_result=on_result,
        trees=trees,
    )
