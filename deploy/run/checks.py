"""The reading tasks that check a layer or a deployment: ``verify``, ``doctor``, ``layer-report``.

Verify runs the exact bytes (built here, or fetched from Lambda and checked against CodeSha256) in
the sandbox; the lines it prints come from ``deploy.run.show``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from deploy import build, terraform
from deploy import preflight as preflight_mod
from deploy.artifact import Artifact
from deploy.config import FunctionTarget, Targets
from deploy.context import RunContext
from deploy.report import (
    bars,
    emit_json,
    human_size,
    item_lines,
    progress,
    say,
    table,
)
from deploy.run import infra, layer_source, show


def doctor(ctx: RunContext, *, as_json: bool = False) -> preflight_mod.Preflight:
    """``inv doctor``: the checks of a deploy as a table; reads only, exit 0 only when all pass."""
    result = preflight_mod.run(ctx.settings, "doctor")
    if as_json:
        emit_json(result.to_json())
    table(
        f"doctor {ctx.name}",
        ["", "check", "result", "fix"],
        [(c.mark.value, c.name, c.detail, c.fix or "") for c in result.checks],
    )
    if not result.ok:
        raise preflight_mod.PreflightError(
            f"{len(result.failures)} of {len(result.checks)} checks failed: "
            + ", ".join(c.name for c in result.failures)
        )
    say("every prerequisite of `inv deploy --env " + ctx.name + "` is in place")
    return result


def layer_report(ctx: RunContext, *, top: int = 15, imports: bool = False) -> None:
    from deploy.audit import LAMBDA_UNZIPPED_LIMIT

    artifact = layer_source._built_layer(ctx)
    if imports:
        _import_report(ctx, artifact, top=top)
        return
    rows = [(pkg.name, pkg.size) for pkg, _share in build.top_packages(artifact, top)]
    say(f"layer {artifact.identity[:12]}: {human_size(artifact.unzipped_size)} unzipped of the 250 MB budget")
    say(bars(rows, budget=LAMBDA_UNZIPPED_LIMIT))
    share = 100 * artifact.unzipped_size / LAMBDA_UNZIPPED_LIMIT
    say(f"total {human_size(artifact.unzipped_size)} = {share:.1f}% of Lambda's unzipped limit")


def _import_report(ctx: RunContext, layer: Artifact, *, top: int) -> None:
    """Each handler's import under ``python -X importtime`` in the sandbox: what to make lazy."""
    import tempfile

    from deploy import coldstart
    from deploy.verify import find_runtime_python

    python = find_runtime_python(ctx.settings.python_version)
    function = build.build_function(build.function_plan(ctx.settings)).artifact
    with tempfile.TemporaryDirectory(prefix="imports-", dir=ctx.paths.build) as tmp:
        tree = coldstart.extract(layer, function, Path(tmp) / "tree")
        for key, module in coldstart.handlers(terraform.declared_functions(ctx.settings)).items():
            progress(f"{key}: importing {module} under -X importtime")
            init = coldstart.import_once(ctx.settings, python, tree, key, module, Path(tmp) / "run" / key)
            rows = []
            for pkg in coldstart.import_profile(ctx.settings, python, tree, key, module, Path(tmp) / "profile" / key)[
                :top
            ]:
                size, where = coldstart.package_size(tree, pkg.name)
                cumulative, own = f"{pkg.cumulative_s * 1000:.0f} ms", f"{pkg.self_s * 1000:.0f} ms"
                rows.append((pkg.name, cumulative, own, human_size(size) if size else "-", where))
            table(
                f"{key} ({module}): init {init * 1000:.0f} ms",
                ["package", "cumulative", "self", "size", "in"],
                rows,
            )


def _extracted(ctx: RunContext) -> Any:
    """Verify's extracted zips, kept by sha256 under .build/extracted: the deployed verify and later
    deploys reuse the layer's tree instead of extracting 84 MB again (see deploy/verify/extracted.py)."""
    from deploy.verify.extracted import ExtractionCache

    return ExtractionCache(root=ctx.paths.build / "extracted")


def _shown(ctx: RunContext, functions: Sequence[FunctionTarget], doing: str, verify: Callable[..., Any]) -> Any:
    """Run ``verify`` (one of deploy.verify's, its own arguments bound) the way every verify of a task
    runs: its trees kept in the run's extraction cache, each function's line printed as it finishes,
    then the failures in full."""
    with item_lines([fn.name for fn in functions], doing) as lines:
        report = verify(
            on_result=lambda fn: lines.done(fn.name, fn.ok, show._verify_line(fn), import_only=show._partial(fn)),
            trees=_extracted(ctx),
        )
    show._show_failures(report)
    return report


def _verify_local(ctx: RunContext, targets: Targets, layer: Artifact, function: Artifact) -> Any:
    from deploy import verify as verify_mod
    from deploy.terraform.functions import as_declared
    from deploy.verify.local import configured

    progress(f"verify --local: each handler on the built zips under python{ctx.settings.python_version}")
    # As Lambda has them, so that the sandbox is the one the deployed verify builds (deploy.verify.reuse).
    config = configured(ctx.aws.client("lambda", targets.region), targets.functions)
    targets = as_declared(targets, terraform.declared_functions(ctx.settings))  # the map may be ahead of the state
    return _shown(
        ctx,
        targets.functions,
        "running its smoke events",
        partial(
            verify_mod.verify_local,
            ctx.settings,
            targets,
            layer=layer,
            function=function,
            environment={key: c.variables for key, c in config.items()},
            memory_mb={key: c.memory_mb for key, c in config.items()},
        ),
    )


def _verify_offline(ctx: RunContext) -> Any:
    """verify --local without AWS (CI's build job holds no credentials): deploy.verify.local."""
    from deploy.verify.local import declared_targets, verify_offline

    progress(
        f"verify --local: each declared handler on the built zips under python{ctx.settings.python_version}, no AWS"
    )
    function = build.build_function(build.function_plan(ctx.settings)).artifact
    layer = layer_source._built_layer(ctx)
    return _shown(
        ctx,
        declared_targets(ctx.settings),
        "running its smoke events",
        partial(verify_offline, ctx.settings, layer=layer, function=function),
    )


def _verify_deployed(
    ctx: RunContext,
    targets: Targets,
    layer: Artifact | None,
    function: Artifact | None,
    *,
    local_reports: Sequence[Any] = (),
    layer_arns: tuple[str, ...] = (),
    qualifiers: Mapping[str, str] | None = None,
) -> Any:
    """``local_reports``: this run's local verify, and ``layer_arns`` the layer versions the run attached:
    the emulator's deployed verify stands on it for the functions proven to serve exactly what it ran
    (``deploy.verify.reuse``). ``qualifiers``: the versions to check instead of the alias (a gradual
    rollout's new versions)."""
    from deploy import verify as verify_mod
    from deploy.verify.reuse import RanLocally

    ran = RanLocally.of(local_reports, layer_arns=layer_arns) if local_reports else None

    progress(
        f"verify: the deployed bytes (fetched, checked against CodeSha256) under python{ctx.settings.python_version}"
    )
    return _shown(
        ctx,
        targets.functions,
        "fetching and running",
        partial(
            verify_mod.verify_deployed,
            ctx.settings,
            targets,
            expected_layer=layer,
            expected_function=function,
            ran_locally=ran,
            qualifiers=qualifiers,
        ),
    )


def verify(ctx: RunContext, *, local: bool = False, as_json: bool = False) -> None:
    report = _verify_offline(ctx) if local else _verify_deployed(ctx, infra._targets(ctx), None, None)
    if as_json:
        emit_json(report.to_json())
    report.raise_for_failures()
