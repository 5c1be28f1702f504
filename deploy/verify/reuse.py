"""When the deployed verify on the emulator stands on the local one instead of running the handlers again.

``verify --local`` runs each handler on the built zips before anything is uploaded; after the attach,
the deployed verify runs what the ``live`` alias serves. On the emulator both run in the same sandbox,
with the same interpreter, on this machine: nothing runs the bytes but us. So when the deployed
bytes are proven to be the ones the local verify ran in this same run, running them again can only
repeat its result (about 1.5 s of a code-only deploy). Proven means all three, per function:

- the code: Lambda's CodeSha256 for the version behind the alias is the one of the zip the local
  verify extracted into the task root;
- the layers: the alias has exactly the layer version ARNs this run attached, in order, and each
  reports the CodeSha256 of the layer zip the local verify extracted into /opt;
- the sandbox: the environment built from the deployed configuration (handler, name, memory, the
  function's variables, the settings' ``sandbox_env``) hashes as the local one did
  (``sandbox.environment_sha256``).

Anything else (a failed local result, a new function verified under another name, a Terraform apply
that changed a variable, a foreign layer) runs the deployed verify as before. On AWS the deployed
verify's point is the remote invoke of each alias (Lambda's own runtime, role and network) and the
sandbox run beside it: it never stands on the local one there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from deploy.config import EnvConfig
from deploy.verify.results import FunctionVerify, VerifyReport


@dataclass(frozen=True, kw_only=True)
class RanLocally:
    """What this run's local verify ran, by function key, and the layer version ARNs the run attached."""

    functions: Mapping[str, FunctionVerify]
    layer_arns: tuple[str, ...]

    @classmethod
    def of(cls, reports: Iterable[VerifyReport], *, layer_arns: tuple[str, ...]) -> RanLocally:
        """From the local reports of one run (a first deploy verifies locally twice: before and after
        the apply); a later report's result for a function replaces an earlier one's."""
        functions: dict[str, FunctionVerify] = {}
        for report in reports:
            if report.mode != "local":
                raise ValueError(f"a {report.mode} report is not a local verify")
            functions.update({fn.key: fn for fn in report.functions})
        return cls(functions=functions, layer_arns=layer_arns)


def why_not(
    local: FunctionVerify | None,
    layer_arns: tuple[str, ...],
    *,
    attached: tuple[str, ...],
    code_sha256: str | None,
    layer_code_sha256: tuple[str, ...],
    environment_sha256: str,
) -> str | None:
    """None when the deployed function is what ``local`` ran (see the module docstring); else the first
    difference, in words."""
    if local is None:
        return "the local verify did not run it"
    if not local.ok:
        return "its local verify failed"
    if local.code_sha256 is None or local.code_sha256 != code_sha256:
        return f"it serves code {code_sha256}, the local verify ran {local.code_sha256}"
    if layer_arns != attached:
        return f"its layers {list(layer_arns)} are not the ones this run attached {list(attached)}"
    if local.layer_code_sha256 != layer_code_sha256:
        return f"its layers' CodeSha256 {list(layer_code_sha256)} differ from {list(local.layer_code_sha256)}"
    if local.environment_sha256 != environment_sha256:
        return "its sandbox environment differs from the local verify's (a variable, the handler, memory or name)"
    return None


def reused(
    env: EnvConfig,
    ran: RanLocally | None,
    *,
    key: str,
    layer_arns: tuple[str, ...],
    code_sha256: str | None,
    layer_code_sha256: tuple[str, ...],
    environment_sha256: str,
) -> FunctionVerify | None:
    """The local result standing for the deployed verify of ``key``, with why; None: run it."""
    if ran is None or env.emulator is None or env.verify.remote:
        return None  # AWS: the remote invoke of the alias is the point; it always runs
    local = ran.functions.get(key)
    if (
        why_not(
            local,
            layer_arns,
            attached=ran.layer_arns,
            code_sha256=code_sha256,
            layer_code_sha256=layer_code_sha256,
            environment_sha256=environment_sha256,
        )
        is not None
    ):
        return None
    assert local is not None and code_sha256 is not None
    layers = ", ".join(arn.rsplit(":", 2)[-2] + ":" + arn.rsplit(":", 1)[-1] for arn in layer_arns) or "no layer"
    reason = (
        f"not run again: verify --local ran these bytes in this run (code {code_sha256[:12]}…, {layers}, "
        "same sandbox environment)"
    )
    return replace(local, layers=layer_arns, reused=reason)
