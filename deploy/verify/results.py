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


def _report(env: EnvConfig, mode: Mode, results: Sequence[FunctionVerify], python: Path) -> VerifyReport:
    return VerifyReport(
        env=env.name, mode=mode, functions=tuple(results), ok=all(r.ok for r in results), python=str(python)
    )
