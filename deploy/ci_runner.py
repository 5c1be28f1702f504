"""Which GitHub-hosted runner deploys an environment: one of the functions' architecture.

``verify`` runs the deployed native code (the layer's wheels) only on a host of the same
architecture, so an environment whose functions are arm64 deploys from an arm64 runner. The
architecture comes from the same place Terraform takes it (the environment's var-file, else
the variable's default in variables.tf), so the workflow and the functions cannot disagree.

``python -m deploy.ci_runner staging`` prints ``runner=<label>`` for ``$GITHUB_OUTPUT``.
It reads files only: it runs before any credentials exist.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from deploy.errors import ConfigError, script_main

RUNNERS = {"x86_64": "ubuntu-24.04", "arm64": "ubuntu-24.04-arm"}
ROOT = Path(__file__).resolve().parents[1]

_ASSIGN = re.compile(r'^\s*architecture\s*=\s*"(?P<value>[^"]*)"', re.MULTILINE)
_DEFAULT = re.compile(r'variable\s+"architecture"\s*\{[^}]*?default\s*=\s*"(?P<value>[^"]*)"', re.DOTALL)


def architecture(env: str, root: Path = ROOT) -> str:
    terraform = root / "infra" / "terraform"
    var_file = terraform / "envs" / f"{env}.tfvars"
    if not var_file.is_file():
        raise ConfigError(f"{var_file} does not exist: no environment {env!r} to deploy")
    found = _ASSIGN.search(var_file.read_text()) or _DEFAULT.search((terraform / "variables.tf").read_text())
    if found is None:
        raise ConfigError(f"no architecture in {var_file} nor a default in {terraform / 'variables.tf'}")
    value = found["value"]
    if value not in RUNNERS:
        raise ConfigError(f"{var_file}: architecture {value!r} is not one of {', '.join(RUNNERS)}")
    return value


def runner_for(env: str, root: Path = ROOT) -> str:
    return RUNNERS[architecture(env, root)]


@script_main
def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m deploy.ci_runner ENV", file=sys.stderr)
        return 2
    print(f"runner={runner_for(argv[0])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
