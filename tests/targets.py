"""Targets for tests, as Terraform's ``deploy_targets`` output gives them: one place for the fields
that tests do not vary (region, runtime, architecture)."""

from __future__ import annotations

from collections.abc import Iterable

from deploy.config import FunctionTarget, Targets

REGION = "us-east-1"


def make_targets(
    env: str,
    functions: Iterable[FunctionTarget],
    *,
    bucket: str = "b",
    layer_name: str | None = None,
    architecture: str = "x86_64",
) -> Targets:
    """``env``'s targets in us-east-1 on python3.12; the layer is ``acme-<env>-deps`` unless named."""
    return Targets(
        env=env,
        region=REGION,
        bucket=bucket,
        layer_name=layer_name if layer_name is not None else f"acme-{env}-deps",
        runtime="python3.12",
        architecture=architecture,
        functions=tuple(functions),
    )
