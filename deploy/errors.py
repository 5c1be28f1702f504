"""Typed errors: every failure the tasks can report, each with its own exit code.

Tasks never print tracebacks for these: ``deploy.cli.deploy_task`` turns them into
``invoke.Exit(message, code)`` in one place. Exit code 1 is left to Invoke and
unexpected crashes, so a script can tell "we refused" from "we broke". The ``python -m deploy.ci_*``
scripts CI runs without Invoke get the same from ``script_main``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping


class DeployError(Exception):
    """Base of every expected failure; ``exit_code`` is what the process exits with."""

    exit_code: int = 10
    #: how ``deploy.cli.deploy_task`` introduces the message; a state that is not a failure has none
    prefix: str = "error: "

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(DeployError):
    """invoke.yaml, an environment name or a setting is wrong."""

    exit_code = 2


class LockError(DeployError):
    """requirements.txt / its lock (poetry.lock or uv.lock) are missing, malformed or out of sync, or the lock is
    older than backend/pyproject.toml or from another Poetry major; or `inv lock` could not resolve."""

    exit_code = 3


class BuildError(DeployError):
    """Installing or packaging an artifact failed."""

    exit_code = 4


class AuditError(BuildError):
    """An artifact failed the preflight audit (platform, ELF, size, secrets)."""

    exit_code = 5


class EmulatorError(DeployError):
    """The local moto server could not be started, reached or stopped."""

    exit_code = 6


class TerraformError(DeployError):
    """Terraform is missing, too old, not applied, or failed."""

    exit_code = 7


class AwsError(DeployError):
    """An AWS call failed in a way we could not retry past."""

    exit_code = 8


class AttachError(AwsError):
    """Updating, versioning or aliasing a function failed (after rollback)."""

    exit_code = 9

    def __init__(self, message: str, *, hint: str | None = None, failures: Mapping[str, str] | None = None) -> None:
        super().__init__(message, hint=hint)
        #: function name → what failed for it (empty when the failure was not per function)
        self.failures: dict[str, str] = dict(failures or {})


class VerifyError(DeployError):
    """The deployed (or local) artifacts did not import or answer their smoke events."""

    exit_code = 11


class RolloutAborted(VerifyError):
    """A gradual rollout was stopped by a CloudWatch alarm (``deploy.aws.rollout``): a failed check of
    the new version in production (a ``VerifyError`` to callers), with its own exit code so CI can tell
    "an alarm fired mid-canary" from "the handler did not import"."""

    exit_code = 18


class CacheError(BuildError):
    """A cached layer in the artifact bucket disagrees with its manifest or its published version."""

    exit_code = 14


class DriftError(DeployError):
    """``status`` found differences between what is deployed and the local artifacts: a state, not a failure."""

    exit_code = 12
    prefix = ""


class DeployLockError(DeployError):
    """Another run holds the environment's deploy lock (or the lock object cannot be read or written)."""

    exit_code = 13


class PreflightError(DeployError):
    """A prerequisite of the run is missing (Terraform, the provider, the runtime's Python, the jail, the
    emulator, credentials or the account): found before the first write, every problem listed at once."""

    exit_code = 15


class DestroyRefused(DeployError):
    """Terraform's plan would destroy a function or a layer version and ``--allow-destroy`` was not given."""

    exit_code = 16


class Interrupted(DeployError):
    """SIGINT or SIGTERM stopped a transaction; the message says what was restored and what was left."""

    exit_code = 130


class Terminated(Interrupted):
    """SIGTERM (how CI cancels a job) stopped a transaction; restored like an interrupt."""

    exit_code = 143


class HandlerError(DeployError):
    """``inv invoke``: the handler raised, did not import, or timed out; the message holds Lambda's error
    type, its message and the end of the traceback."""

    exit_code = 17

    def __init__(self, message: str, *, hint: str | None = None, error_type: str = "Error") -> None:
        super().__init__(message, hint=hint)
        self.error_type = error_type


def script_main(main: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
    """For the ``python -m deploy.ci_*`` scripts, which CI runs without Invoke (so ``deploy.cli`` is not
    there): a typed error becomes its message on stderr and its exit code, as under ``inv``."""

    @functools.wraps(main)
    def run(argv: list[str]) -> int:
        try:
            return main(argv)
        except DeployError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code

    return run
