"""The function map as Terraform declares it (``var.functions``), readable before anything is applied.

The build needs each function's handler and sources before Terraform has run (a fresh environment
has no ``deploy_targets`` output yet), so this asks Terraform itself for the variable's value: an
``apply`` of a copy of ``variables.tf`` alone plus one output, with the environment's var-file, in a
throwaway folder. With no provider, resource or backend there it needs no ``init`` and no network
and writes nothing else (about 0.25 s), and Terraform's own rules decide the value: the default, the
var-file, ``TF_VAR_functions``, the type, and every validation block of the variables. A map that
passed is remembered under ``.build/function-map/`` by the SHA-256 of those inputs, so a no-op build
does not pay for Terraform again.
(``terraform console`` is faster but skips the validation blocks, and panics on a value of the wrong
type.)

One thing Terraform cannot show: HCL keeps the last of two entries with one key and drops the
other without a word, so the text of the map is scanned for a key written twice.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from deploy.config import EnvConfig, FunctionTarget, Targets
from deploy.errors import ConfigError
from deploy.files import atomic_write_text

VARIABLE = "functions"
VARIABLES_FILE = "variables.tf"
_OUTPUT = (
    'output "functions" {\n'
    "  value = { for k, f in var.functions : k => { handler = f.handler, sources = f.sources } }\n"
    "}\n"
)


@dataclass(frozen=True, kw_only=True)
class DeclaredFunction:
    """One entry of ``var.functions``: what the build and the cold-start measurement need."""

    key: str
    handler: str
    sources: tuple[str, ...]

    @property
    def module(self) -> str:
        """``lambdas.cleanup.handler.handler`` → ``lambdas.cleanup.handler``."""
        return self.handler.rsplit(".", 1)[0]


def as_declared(targets: Targets, declared: tuple[DeclaredFunction, ...]) -> Targets:
    """The functions as the map declares them, under the names Terraform gave them: what the local
    verify runs before an apply. A function the map no longer lists is left out (its handler is no
    longer in the zip: Terraform is about to remove it); one not created yet is verified under its
    key, marked new; a handler changed in the map is the one the zip must serve."""
    deployed = {fn.key: fn for fn in targets.functions}
    functions = []
    for fn in declared:
        found = deployed.get(fn.key)
        if found is None:
            functions.append(FunctionTarget(key=fn.key, name=f"{fn.key} (new)", handler=fn.handler, sources=fn.sources))
        else:
            functions.append(replace(found, handler=fn.handler, sources=fn.sources))
    return replace(targets, functions=tuple(functions))


@functools.cache
def _terraform() -> str:
    from deploy.terraform.runner import find_terraform

    return str(find_terraform())


def _var_file(env: EnvConfig) -> Path:
    return (env.paths.terraform / env.tfvars).resolve()


def declared_functions(env: EnvConfig) -> tuple[DeclaredFunction, ...]:
    """``var.functions`` as Terraform evaluates it for ``env`` (sorted by key); a ConfigError names
    what is wrong with the map (Terraform's validation message, or a key written twice)."""
    variables = env.paths.terraform / VARIABLES_FILE
    if not variables.is_file():
        raise ConfigError(f"{variables} is missing: it declares the functions (variable {VARIABLE!r})")
    var_file = _var_file(env)
    for path in (variables, var_file):
        if path.is_file():
            twice = duplicate_keys(path.read_text(encoding="utf-8"), in_variable=path == variables)
            if twice:
                raise ConfigError(
                    f"{path}: function {', '.join(repr(k) for k in twice)} is declared twice in {VARIABLE}; "
                    "Terraform would keep only the last entry",
                    hint="give each function its own key",
                )
    digest = hashlib.sha256()
    for part in (variables, var_file):
        digest.update(part.read_bytes() if part.is_file() else b"-")
        digest.update(b"\0")
    variables_set = sorted((k, v) for k, v in os.environ.items() if k.startswith("TF_VAR_"))
    digest.update(json.dumps([env.name, variables_set]).encode())
    remembered = env.paths.build / "function-map" / f"{digest.hexdigest()}.json"
    try:
        value: dict[str, Any] | None = json.loads(remembered.read_text())
    except (OSError, ValueError):
        value = None
    if value is None:
        value = _evaluate(env, variables, var_file)
        with contextlib.suppress(OSError):  # an unwritable build folder only costs the next run the apply
            remembered.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(remembered, json.dumps(value, sort_keys=True))
    return tuple(
        DeclaredFunction(key=key, handler=str(fn["handler"]), sources=tuple(str(s) for s in fn["sources"]))
        for key, fn in sorted(value.items())
    )


def _evaluate(env: EnvConfig, variables: Path, var_file: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tf-functions-") as tmp:
        shutil.copyfile(variables, Path(tmp) / VARIABLES_FILE)
        (Path(tmp) / "functions_output.tf").write_text(_OUTPUT)
        args = [_terraform(), "apply", "-auto-approve", "-input=false", "-json"]
        if re.search(r'^variable\s+"environment"', variables.read_text(encoding="utf-8"), re.MULTILINE):
            args.append(f"-var=environment={env.name}")  # required, and unset when the var-file is absent
        if var_file.is_file():
            args += ["-var-file", str(var_file)]
        environ = {**os.environ, "TF_DATA_DIR": str(Path(tmp) / ".terraform"), "TF_IN_AUTOMATION": "1"}
        environ.pop("TF_WORKSPACE", None)  # a throwaway state: never a workspace from the caller's shell
        proc = subprocess.run(args, cwd=tmp, env=environ, capture_output=True, text=True, timeout=120, check=False)
    value, problems = _read_apply(proc.stdout)
    if proc.returncode != 0 or value is None:
        from deploy.terraform.runner import tail

        why = "\n".join(problems) or tail(proc.stderr) or f"terraform apply exited {proc.returncode}"
        raise ConfigError(f"the function map (var.{VARIABLE} in {variables}, {var_file.name}) is not valid:\n{why}")
    return value


def _read_apply(stdout: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The ``functions`` output's value and the error diagnostics from ``apply -json``'s event lines."""
    value: dict[str, Any] | None = None
    problems: list[str] = []
    for line in stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("type") == "outputs" and "value" in event.get("outputs", {}).get(VARIABLE, {}):
            value = event["outputs"][VARIABLE]["value"]
        diagnostic = event.get("diagnostic") or {}
        if event.get("@level") == "error" and diagnostic:
            problems.append(f"{diagnostic.get('summary', '')}: {diagnostic.get('detail', '')}".strip(": "))
    return value, problems


# ---------------------------------------------------------------------------
# Keys written twice


_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"'  # a string
    r"|#[^\n]*|//[^\n]*|/\*.*?\*/"  # comments
    r"|<<-?(\w+)\n.*?\n\s*\1\s*$"  # a heredoc
    r"|[{}\[\]()]"  # brackets
    r"|[A-Za-z_][\w-]*"  # an identifier
    r"|=|:",
    re.DOTALL | re.MULTILINE,
)


def _map_start(text: str, in_variable: bool) -> int | None:
    """Where the map's ``{`` is: the default in variables.tf, or the assignment in a var-file."""
    if in_variable:
        header = re.search(rf'^variable\s+"{VARIABLE}"\s*\{{', text, re.MULTILINE)
        if header is None:
            return None
        found = re.compile(r"^\s*default\s*=\s*\{", re.MULTILINE).search(text, header.end())
    else:
        found = re.search(rf"^{VARIABLE}\s*=\s*\{{", text, re.MULTILINE)
    return None if found is None else found.end() - 1


def duplicate_keys(text: str, *, in_variable: bool) -> list[str]:
    """Keys of the function map written more than once (HCL silently keeps the last)."""
    start = _map_start(text, in_variable)
    if start is None:
        return []
    depth = 0
    seen: list[str] = []
    twice: list[str] = []
    pieces = [m.group(0) for m in _TOKEN.finditer(text, start)]
    for i, piece in enumerate(pieces):
        if piece in ("{", "[", "("):
            depth += 1
        elif piece in ("}", "]", ")"):
            depth -= 1
            if depth == 0:
                break
        elif depth == 1 and i + 1 < len(pieces) and pieces[i + 1] in ("=", ":") and piece not in ("=", ":"):
            if piece.startswith(("#", "//", "/*", "<<")):
                continue
            key = piece.strip('"')
            if key in seen and key not in twice:
                twice.append(key)
            seen.append(key)
    return twice
