"""build-layer's glue, light enough that a no-op build starts fast.

``inv build-layer`` with nothing to do is run before every deploy and by hand all day; it
must not pay for boto3, Terraform or the verify sandbox (about a second of imports). This
module imports only the build itself: a layer already built, or built without the remote
cache, is answered here; only reading the remote cache goes through ``deploy.pipeline``.
"""

from __future__ import annotations

from deploy import build
from deploy.config import ARCHITECTURES, EnvConfig
from deploy.errors import ConfigError
from deploy.install import INSTALLERS, builder_names
from deploy.report import progress


def check_flags(architecture: str | None, builder: str | None) -> None:
    if architecture is not None and architecture not in ARCHITECTURES:
        raise ConfigError(f"--arch {architecture!r} is not one of {', '.join(ARCHITECTURES)}")
    if builder is not None and builder not in INSTALLERS:
        raise ConfigError(f"--builder {builder!r} is not one of {builder_names()}")


def build_layer(
    env: EnvConfig, *, architecture: str | None = None, builder: str | None = None, remote_cache: bool = True
) -> None:
    check_flags(architecture, builder)
    plan = build.layer_plan(env, builder=builder, architecture=architecture)
    # The manifest's presence is enough to choose this path: build_layer checks the zip against it
    # (hashing 40 MB once, not twice) and rebuilds on a mismatch.
    if plan.manifest_path.is_file() or not (remote_cache and env.remote_cache.enabled):
        build.build_layer(plan, progress=progress)  # it says what it did, once
        return
    from deploy import pipeline  # only reading the remote cache needs Terraform outputs and S3

    pipeline.build_layer(env, architecture=architecture, builder=builder, remote_cache=remote_cache)
