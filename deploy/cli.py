"""The one place where typed errors become exit codes, and where tasks get their settings.

Tasks in tasks.py are decorated with ``@deploy_task``: a ``DeployError`` raised anywhere
below becomes ``invoke.Exit(message, code)``; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from invoke.exceptions import Exit, ParseError

from deploy.config import EnvConfig, Paths, load_env
from deploy.context import RunContext
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
            raise Exit(f"{exc.prefix}{exc}", code=exc.exit_code) from None
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


def run_context(
    c: Any,
    env: str,
    *,
    arch: str | None = None,
    builder: str | None = None,
    strict: bool | None = None,
    root: Path | None = None,
) -> RunContext:
    """The run's context (deploy/context.py), made once per task from ``--env`` and the task's flags."""
    return RunContext.create(env_config(c, env, root=root), architecture=arch, builder=builder, strict=strict)


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


# ---------------------------------------------------------------------------- the command line's conventions

#: Exit code of a misused command line (unknown task or flag, a value of the wrong type): the settings'
#: standard (ConfigError), where Invoke's own parser exits 1 like a crash.
USAGE_EXIT = ConfigError.exit_code
_KIND_NAMES = {str: "STRING", int: "INT", float: "SECONDS", list: "VALUE"}


def _flag(names: tuple[str, ...]) -> str:
    long = max(names, key=len)
    return ("--" if len(long) > 1 else "-") + long.replace("_", "-")


def _did_you_mean(token: str, known: list[str]) -> str:
    close = difflib.get_close_matches(token, known, n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def usage_error(exc: ParseError, task_names: list[str]) -> str:
    """Invoke's "No idea what '--evn' is!" with the flags or tasks it could have meant."""
    text = str(exc)
    match = re.match(r"No idea what '(?P<token>[^']*)' is!", text)
    if match is None:
        return f"error: {text}"
    token = match["token"]
    context = getattr(exc, "context", None)
    if token.startswith("-"):
        flags = sorted(context.flags) if context is not None else []
        where = f" for `inv {context.name}`" if context is not None and context.name else ""
        return f"error: unknown flag {token}{where}{_did_you_mean(token, flags)} (known: {', '.join(flags)})"
    return f"error: unknown task {token!r}{_did_you_mean(token, task_names)}; `inv --list` lists them"


def install_conventions() -> None:
    """Make Invoke's parser follow the settings' standard. Called once from tasks.py, before Invoke
    parses the task arguments (it imports tasks.py between its core and its task parsing):

    - a mistyped task or flag, and a value of the wrong type (``--lock-timeout abc``), exit 2 with
      a did-you-mean or the expected type, never 1 or a traceback;
    - ``inv --help TASK`` shows each flag's type and default;
    - flags that skip a safety step (``--skip-*``) get no one-letter form: ``-s`` typed by mistake
      must not skip the Terraform apply.
    """
    from invoke.parser.argument import Argument
    from invoke.parser.context import ParserContext
    from invoke.program import Program
    from invoke.tasks import Task

    if getattr(Program, "_deploy_conventions", False):
        return
    Program._deploy_conventions = True  # type: ignore[attr-defined]

    parse_tasks, set_value = Program.parse_tasks, Argument.set_value
    help_for, get_arguments = ParserContext.help_for, Task.get_arguments

    def parse_tasks_strictly(self: Any) -> None:
        try:
            parse_tasks(self)
        except ParseError as exc:
            names = list(self.collection.task_names) if self.collection is not None else []
            raise Exit(usage_error(exc, names), code=USAGE_EXIT) from None

    def set_value_typed(self: Any, value: Any, cast: bool = True) -> None:
        try:
            set_value(self, value, cast)
        except (TypeError, ValueError):
            kind = _KIND_NAMES.get(self.kind, getattr(self.kind, "__name__", str(self.kind)))
            raise ParseError(f"{_flag(self.names)} expects {kind.lower()}, got {value!r}") from None

    def help_with_defaults(self: Any, flag: str) -> tuple[str, str]:
        names, text = help_for(self, flag)
        arg = self.flags[flag]
        kind = _KIND_NAMES.get(arg.kind)
        if kind and kind not in ("STRING", "INT"):  # Invoke shows those two itself
            names = ", ".join(f"{n}={kind}" if n.startswith("--") else n for n in names.split(", "))
        if arg.default not in (None, False, "", []) and "default" not in text:
            text = f"{text} (default: {arg.default})"
        return names, text

    def no_short_skip_flags(self: Any, *args: Any, **kwargs: Any) -> list[Any]:
        out: list[Any] = get_arguments(self, *args, **kwargs)
        for arg in out:
            if arg.name.startswith("skip_"):
                arg.names = tuple(n for n in arg.names if len(n) > 1)
        return out

    Program.parse_tasks = parse_tasks_strictly  # type: ignore[method-assign]
    Argument.set_value = set_value_typed  # type: ignore[method-assign]
    ParserContext.help_for = help_with_defaults  # type: ignore[method-assign]
    Task.get_arguments = no_short_skip_flags  # type: ignore[method-assign]


def one_of(flag: str, value: str | None, allowed: tuple[str, ...]) -> None:
    """A flag with a fixed set of values: anything else exits 2 naming the flag and the choices."""
    if value is not None and value not in allowed:
        raise ConfigError(f"{flag} {value!r} is not one of {', '.join(allowed)}{_did_you_mean(value, list(allowed))}")
