"""One run's context, made once at the top (tasks.py) from the environment's name and the flags.

Before it, every task re-derived the same facts from the settings: the layer plan at five call
sites (so ``--arch`` and ``--builder`` meant something only to ``build-layer``), an AWS client at
each call, and "is this the emulator?" three ways. A ``RunContext`` answers each once:

- ``settings``: the environment's ``EnvConfig``, with the run's ``--arch``/``--builder`` already in
  it, so the layer plan, the platform checks and Terraform all see the same target;
- ``aws``: the one object that makes boto3 clients (each write counted, see deploy/aws/calls.py)
  and knows whether they reach the emulator;
- ``layer_plan``: computed on first use, then the same object for the rest of the run (reading the
  lock and asking the builder its version cost tens of milliseconds and a subprocess each time).

The task flows (deploy/run/) take a ``RunContext``; the rooms below them take only what they read.
"""

from __future__ import annotations

import dataclasses
import functools
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deploy.config import ARCHITECTURES, EmulatorSettings, EnvConfig, Paths
from deploy.errors import ConfigError
from deploy.install import INSTALLERS, builder_names

if TYPE_CHECKING:
    from botocore.config import Config

    from deploy.aws.calls import WriteCounter
    from deploy.build import LayerPlan


@dataclass(frozen=True, kw_only=True)
class Aws:
    """The environment's AWS as this run reaches it: where (region, profile, endpoint) and how
    (clients whose writes are counted). boto3 is imported on the first client, not before."""

    region: str
    profile: str | None = None
    endpoint_url: str | None = None
    emulator: EmulatorSettings | None = None

    @classmethod
    def of(cls, settings: EnvConfig) -> Aws:
        return cls(
            region=settings.region,
            profile=settings.profile,
            endpoint_url=settings.endpoint_url,
            emulator=settings.emulator,
        )

    @property
    def is_emulator(self) -> bool:
        """The one answer: an environment with an ``emulator`` section runs against the moto server."""
        return self.emulator is not None

    def client(self, service: str, region: str | None = None, *, config: Config | None = None) -> Any:
        from deploy.aws import calls

        return calls.client(self, service, region, config=config)

    def count_writes(self) -> AbstractContextManager[WriteCounter]:
        """Every write call made by any client (in any thread) inside the block: property 2's proof."""
        from deploy.aws import calls

        return calls.count_writes()


def check_flags(architecture: str | None, builder: str | None) -> None:
    if architecture is not None and architecture not in ARCHITECTURES:
        raise ConfigError(f"--arch {architecture!r} is not one of {', '.join(ARCHITECTURES)}")
    if builder is not None and builder not in INSTALLERS:
        raise ConfigError(f"--builder {builder!r} is not one of {builder_names()}")


@dataclass(frozen=True, kw_only=True)
class RunContext:
    """Everything one task run shares; see the module's docstring."""

    settings: EnvConfig
    aws: Aws

    @classmethod
    def create(
        cls,
        settings: EnvConfig,
        *,
        architecture: str | None = None,
        builder: str | None = None,
        strict: bool | None = None,
    ) -> RunContext:
        """The context of a run of environment ``settings`` with the task's flags applied; a bad
        ``--arch`` or ``--builder`` is a ConfigError (exit 2) before anything is read."""
        check_flags(architecture, builder)
        changes: dict[str, Any] = {}
        if architecture is not None:
            changes["architecture"] = architecture
        if builder is not None:
            changes["builder"] = builder
        if strict is not None:
            changes["verify"] = dataclasses.replace(settings.verify, strict=strict)
        if changes:
            settings = dataclasses.replace(settings, **changes)
        return cls(settings=settings, aws=Aws.of(settings))

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def paths(self) -> Paths:
        return self.settings.paths

    @property
    def is_emulator(self) -> bool:
        return self.aws.is_emulator

    @property
    def emulator(self) -> EmulatorSettings | None:
        return self.aws.emulator

    @functools.cached_property
    def layer_plan(self) -> LayerPlan:
        """The layer this run builds, fetches, publishes or reads, for the run's architecture and builder."""
        from deploy import build

        return build.layer_plan(self.settings)
