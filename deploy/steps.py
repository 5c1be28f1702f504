"""The per-function vocabulary every stage speaks: what a deploy does to one function (:class:`FunctionSteps`,
made of :class:`Step`\\ s), and how it ended (:class:`Outcome`, with one :class:`Status`).

The plan computes a ``FunctionSteps`` once from reads (``deploy.aws.attach_plan``); ``status`` and
``--dry-run`` print it, ``deploy.aws.attach_apply`` runs its steps in order, the transaction and
``rollback`` report an ``Outcome`` per function, and the JSON report carries those outcomes as they are.
Before this module one function's deploy was four records with copies of the same status strings,
converted into each other at every hand-over.

A new cloud step is a :class:`Step` member (its words), a flag here if the plan decides it, and one
block where the steps run (``attach_apply``): ``ACTIVE`` and ``PROVISION`` were added exactly so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any

#: What the alias moves to when the version it will serve is not published yet.
NEW = "(new)"


class Step(Enum):
    """One thing the deploy does to a function, with the words a person reads for it:
    (the plan's noun, while it runs, once it is done)."""

    UPLOAD = ("upload code", "uploading", "uploaded")  # the function zip to S3: once for every function
    CODE = ("code", "updating code", "code updated")
    LAYERS = ("layer", "setting layers", "layers set")
    PUBLISH = ("publish version", "publishing a version", "version published")
    #: A published version starts Pending while Lambda prepares it (SnapStart takes its snapshot here);
    #: an alias moved to it before it is Active sends callers into failed or cold invokes.
    ACTIVE = ("wait for active", "waiting for the version to be Active", "version active")
    #: Provisioned concurrency on the new version, READY before the alias moves to it (see attach_apply).
    PROVISION = ("provisioned concurrency", "provisioning concurrency", "concurrency ready")
    ALIAS = ("alias", "moving alias", "alias moved")
    RESTORE = ("restore", "restoring", "restored")  # the transaction putting back what this run changed

    def __init__(self, noun: str, doing: str, done: str) -> None:
        self.noun = noun
        self.doing = doing
        self.done = done


class Status(StrEnum):
    """How one function ended. A ``str``: the JSON report and the tables carry these exact strings."""

    UNCHANGED = "unchanged"
    UPDATED = "updated"
    WOULD_UPDATE = "would update"  # a dry run's plan
    ROLLED_BACK = "rolled_back"  # by the transaction's restore, or by `inv rollback`
    WOULD_ROLL_BACK = "would roll back"  # `inv rollback --dry-run`
    LEFT = "left"  # another writer moved it meanwhile: the restore left it as they set it
    FAILED = "failed"  # the restore itself failed; the detail says what to run


@dataclass(frozen=True, kw_only=True)
class FunctionSteps:
    """What a deploy does to one function, read from what it serves now (plan, dry run, status and apply)."""

    name: str
    key: str
    update_code: bool
    update_layers: bool
    #: what the alias serves differs from the target, even if $LATEST already matches
    publish_version: bool
    old_layers: tuple[str, ...]
    new_layers: tuple[str, ...]
    alias_from: str
    #: compare-and-set tokens for the writes (moto omits them; real Lambda always has them)
    revision_id: str | None = None
    alias_revision_id: str | None = None
    #: invoke.yaml's ``provisioned_concurrency``: execution environments kept warm on the new version
    provisioned_concurrency: int = 0
    #: the function's memory (MB, from its $LATEST configuration): what the warm environments cost
    memory_mb: int = 0

    @property
    def alias_to(self) -> str:
        """A version number, or ``(new)`` when a version would be published."""
        return NEW if self.publish_version else self.alias_from

    def steps(self) -> tuple[Step, ...]:
        """The steps to run, in order; the alias moves to every version published."""
        flags = (
            (self.update_code, Step.CODE),
            (self.update_layers, Step.LAYERS),
            (self.publish_version, Step.PUBLISH),
            (self.publish_version, Step.ACTIVE),
            (self.publish_version and self.provisioned_concurrency > 0, Step.PROVISION),
            (self.publish_version, Step.ALIAS),
        )
        return tuple(step for flag, step in flags if flag)

    @property
    def changed(self) -> bool:
        return bool(self.steps())

    def describe(self) -> str:
        if not self.changed:
            return "unchanged"
        nouns = [
            self.provisioned() if s is Step.PROVISION else s.noun
            for s in self.steps()
            if s not in (Step.ALIAS, Step.ACTIVE)  # ACTIVE writes nothing: it only waits
        ]
        return f"{', '.join(nouns)}; live {self.alias_from} → {self.alias_to}"

    @property
    def provisioned_gb_seconds_per_hour(self) -> float:
        """What the warm environments bill. AWS: "The price depends on the amount of memory you allocate
        to your function and the amount of concurrency that you configure on it", for the time it is
        enabled (aws.amazon.com/lambda/pricing, Provisioned Concurrency): concurrency * MB/1024 GB-s
        every second, * 3600 an hour. No dollar figure: the rate differs by region and architecture."""
        return self.provisioned_concurrency * self.memory_mb / 1024 * 3600

    def provisioned(self) -> str:
        """``provisioned concurrency 5 x 512 MB = 9,000 GB-s per hour`` (the line says it with a real times sign)."""
        return (
            f"{Step.PROVISION.noun} {self.provisioned_concurrency} × {self.memory_mb} MB"
            f" = {self.provisioned_gb_seconds_per_hour:,.0f} GB-s per hour"
        )

    def to_json(self) -> dict[str, Any]:
        """The plan's per-function entry (report schema: ``swap_layer`` is ``update_layers``)."""
        return {
            "name": self.name,
            "key": self.key,
            "update_code": self.update_code,
            "swap_layer": self.update_layers,
            "publish_version": self.publish_version,
            "alias_from": self.alias_from,
            "alias_to": self.alias_to,
            "provisioned_concurrency": self.provisioned_concurrency,
            "provisioned_gb_seconds_per_hour": self.provisioned_gb_seconds_per_hour,
        }


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """How one function ended: the attach, the transaction, ``rollback`` and the deploy report all use it."""

    name: str
    status: Status
    old_version: str | None
    new_version: str | None
    detail: str | None = None


def planned(functions: Iterable[FunctionSteps], *, dry_run: bool) -> list[Outcome]:
    """The outcomes a plan promises: a dry run's report, or a deploy that found nothing to do."""
    return [
        Outcome(
            name=f.name,
            status=(Status.WOULD_UPDATE if dry_run else Status.UPDATED) if f.changed else Status.UNCHANGED,
            old_version=f.alias_from,
            new_version=f.alias_to,
            detail=f.describe(),
        )
        for f in functions
    ]
