"""What verify reports: per smoke case, per function, per run; the task turns a failed report into
one ``VerifyError`` (and the deploy rolls back)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from deploy.config import EnvConfig
from deploy.errors import VerifyError

Mode = Literal["local", "deployed"]


@dataclass(frozen=True, kw_only=True)
class SmokeResult:
    case: str
    ok: bool
    summary: str
    duration_ms: float
    error: str | None = None
    traceback_tail: str | None = None
    skipped: str | None = None  # why the case did not run (then ok is True)
    where: Literal["sandbox", "remote"] = "sandbox"


@dataclass(frozen=True, kw_only=True)
class FunctionVerify:
    key: str
    name: str
    import_ms: float | None
    results: tuple[SmokeResult, ...]
    ok: bool
    error: str | None = None
    traceback_tail: str | None = None
    code_sha256: str | None = None
    layers: tuple[str, ...] = ()
    #: What the sandbox ran, beside ``code_sha256``: each layer's CodeSha256 in /opt's order, and the
    #: digest of the sandbox environment (``sandbox.environment_sha256``). The deployed verify on the
    #: emulator compares them with what Lambda serves (``deploy.verify.reuse``).
    layer_code_sha256: tuple[str, ...] = ()
    environment_sha256: str | None = None
    #: Set when this result is the local verify's, not run again: why the bytes are the same.
    reused: str | None = None

    @property
    def import_only(self) -> bool:
        """It imported, but had no smoke event to answer: its handler never ran."""
        return self.ok and self.error is None and not self.results

    def problems(self) -> list[str]:
        out = [f"{self.name}: {self.error}"] if self.error else []
        out += [f"{self.name} [{r.where}] case {r.case}: {r.error}" for r in self.results if not r.ok]
        return out


@dataclass(frozen=True, kw_only=True)
class VerifyReport:
    env: str
    mode: Mode
    functions: tuple[FunctionVerify, ...]
    ok: bool
    python: str | None = None
    #: ``--strict``: a function only imported (no smoke events) is a failure too.
    strict: bool = False

    @property
    def import_only(self) -> list[str]:
        return [fn.name for fn in self.functions if fn.import_only]

    def problems(self) -> list[str]:
        return [p for fn in self.functions for p in fn.problems()]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def raise_for_failures(self) -> None:
        """For the task layer: one VerifyError listing every failure."""
        if not self.ok:
            raise VerifyError(
                f"verify ({self.mode}, {self.env}) failed:\n  " + "\n  ".join(self.problems()),
                hint="the sandbox ran the exact artifacts with only the layer on sys.path; fix the first error first",
            )
        if self.strict and self.import_only:
            raise VerifyError(
                f"verify ({self.mode}, {self.env}) --strict: only imported, no smoke events: "
                + ", ".join(self.import_only),
                hint="give each function smoke events in invoke.yaml (smoke: <function key>: [...]), "
                "or run without --strict (--no-strict where CI is set)",
            )


def _report(env: EnvConfig, mode: Mode, results: Sequence[FunctionVerify], python: Path) -> VerifyReport:
    return VerifyReport(
        env=env.name,
        mode=mode,
        functions=tuple(results),
        ok=all(r.ok for r in results),
        python=str(python),
        strict=env.verify.strict,
    )
