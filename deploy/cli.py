"""The one place where typed errors become exit codes, and where tasks get their settings.

Tasks in tasks.py are decorated with ``@deploy_task``: a ``DeployError`` raised anywhere
below becomes ``invoke.Exit(message, code)``; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from invoke.exceptions import Exit

from deploy.config import EnvConfig, Paths, load_env
from deploy.errors import AwsError, ConfigError, DeployError, Terminated
from deploy.settings import check_variables, invoke_defaults
from deploy.signals import SigTerm, sigterm_raises

P = ParamSpec("P")
R = TypeVar("R")


def deploy_task(fn: Callable[P, R]) -> Callable[P, R]:
    """Translate ``DeployError`` into ``invoke.Exit`` with the error's own exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with sigterm_raises():
                return fn(*args, **kwargs)
        except DeployError as exc:
            raise Exit(f"error: {exc}", code=exc.exit_code) from None
        except (BotoCoreError, ClientError) as exc:
            # Credentials, profiles, endpoints: AWS said no before our code could name the step.
            raise Exit(f"error: AWS: {exc}", code=AwsError.exit_code) from None
        except (KeyboardInterrupt, SigTerm) as exc:
            # An interrupt inside a transaction arrives as Interrupted (a DeployError, above) with what
            # was restored; here no transaction was open, so no alias or $LATEST had been changed.
            signal_name, code = ("SIGTERM", Terminated.exit_code) if isinstance(exc, SigTerm) else ("SIGINT", 130)
            raise Exit(
                f"interrupted ({signal_name}) outside an alias transaction, so this run moved no alias; uploaded "
                "objects and published layer versions are kept and reused by a rerun",
                code=code,
            ) from None

    return wrapper


def plain(value: Any) -> Any:
    """Invoke's DataProxy → plain dicts/lists, so config validation sees ordinary Mappings."""
    if hasattr(value, "items") and callable(value.items):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def env_config(c: Any, env: str, *, root: Path | None = None) -> EnvConfig:
    """The ``EnvConfig`` for ``--env``; unknown names list the known environments (exit 2)."""
    settings = plain(c.config.get("deploy")) if c.config.get("deploy") is not None else None
    paths = Paths(root=root) if root else Paths()
    return load_env(settings, env, paths=paths, environ=os.environ, remember=paths.build / "settings")


def check_settings_file(path: Path) -> Mapping[str, Any]:
    """Fail clearly on a malformed invoke.yaml before Invoke's own loader prints a YAML traceback;
    returns its ``deploy`` tree ({} when absent)."""
    if not path.exists():
        return {}  # load_env reports the missing ``deploy`` key when a task needs it
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{path.name} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"{path.name} must be a mapping at the top level")
    tree = (data or {}).get("deploy")
    return tree if isinstance(tree, Mapping) else {}


def settings_defaults(path: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    """Called at import of tasks.py (Invoke loads invoke.yaml and INVOKE_* variables right after,
    without a friendly error): check both, and return the defaults that declare every key so
    an INVOKE_* variable can set any of them (``ns.configure``)."""
    try:
        tree = check_settings_file(path)
        check_variables(tree, environ)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    return invoke_defaults(tree)
