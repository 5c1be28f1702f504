"""What code under verify may touch: no credentials, no real AWS account, only trusted layers.

The sandbox runs code we did not write (every package in the layer) on the deployer's machine or
CI runner, where the deployer's credentials live: in the environment, in ``~/.aws``, behind the
instance metadata service, in CI's OIDC token variables. So its environment is built from an
allow-list and never copied from the host's; ``HOME`` is an empty scratch folder; the AWS config
and credentials files are empty files; the metadata service is switched off. AWS calls that
handler code makes go to the emulator (with its dummy credentials) for an environment that has
one, and otherwise to a loopback port that refuses connections, with no credentials at all: such
a call fails at once and visibly instead of acting on the real account. The remote invoke
(``deploy.verify.remote``) is the only verify path that touches the account, as the deployer,
outside the sandbox.

A layer that is not ours (another account's, or another name) runs only when invoke.yaml lists
it under ``verify.trusted_layers``: verify would otherwise execute a stranger's code on the
machine that holds the deploy role.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from deploy.aws.session import EMULATOR_ACCESS_KEY, EMULATOR_SECRET_KEY
from deploy.config import EnvConfig
from deploy.errors import VerifyError

#: A function's configured variables keep these prefixes out of the sandbox: they carry
#: credentials or choose where AWS calls go and where credentials are read from. Lambda's own
#: ``AWS_LAMBDA_*`` settings stay.
_DENIED_PREFIXES = ("AWS_", "ACTIONS_ID_TOKEN_", "ACTIONS_RUNTIME_")
_DENIED_NAMES = frozenset({"GITHUB_TOKEN", "HOME", "PATH", "LD_PRELOAD", "PYTHONPATH", "PYTHONHOME"})

_LAYER_ARN = re.compile(r"^arn:[a-z-]+:lambda:[a-z0-9-]+:(?P<account>\d{12}):layer:(?P<name>[\w-]+)(?::\d+)?$")
_FUNCTION_ARN = re.compile(r"^arn:[a-z-]+:lambda:[a-z0-9-]+:(?P<account>\d{12}):function:")


def function_variables(variables: Mapping[str, str]) -> dict[str, str]:
    """A function's configured variables without anything that could carry or redirect credentials."""
    return {
        k: v
        for k, v in variables.items()
        if k not in _DENIED_NAMES and (k.startswith("AWS_LAMBDA_") or not k.startswith(_DENIED_PREFIXES))
    }


def aws_environment(env: EnvConfig, *, scratch: Path, endpoint_url: str) -> dict[str, str]:
    """The variables that decide where handler code's AWS calls go and which credentials they carry.

    Applied last, over everything else: nothing the function or host sets can replace them.
    """
    home = scratch / "home"
    aws = scratch / "aws"
    home.mkdir(parents=True, exist_ok=True)
    aws.mkdir(parents=True, exist_ok=True)
    (aws / "config").write_text("")
    (aws / "credentials").write_text("")
    out = {
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(aws / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(aws / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_REGION": env.region,
        "AWS_DEFAULT_REGION": env.region,
        "AWS_ENDPOINT_URL": endpoint_url,
    }
    if env.endpoint_url:
        out.update(AWS_ACCESS_KEY_ID=EMULATOR_ACCESS_KEY, AWS_SECRET_ACCESS_KEY=EMULATOR_SECRET_KEY)
    return out


@contextmanager
def sandbox_endpoint(env: EnvConfig) -> Iterator[str]:
    """Where the sandbox's AWS calls go: the emulator, or a loopback port that refuses connections.

    The refusing port is a socket bound but never listening, held for the whole run: no other
    process can take the port meanwhile, and every connect gets ECONNREFUSED at once (no hang).
    """
    if env.endpoint_url:
        yield env.endpoint_url
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def _owner(arn: str) -> tuple[str, str] | None:
    match = _LAYER_ARN.match(arn)
    return (match["account"], match["name"]) if match else None


def untrusted_layers(
    env: EnvConfig, *, layer_name: str, function_arn: str | None, layer_arns: Sequence[str]
) -> list[str]:
    """The layers of a function that are neither ours (our name in the function's account) nor trusted."""
    fn_match = _FUNCTION_ARN.match(function_arn or "")
    account = fn_match["account"] if fn_match else None
    trusted = {_owner(t) for t in env.verify.trusted_layers}
    out = []
    for arn in layer_arns:
        owner = _owner(arn)
        if owner is None or (owner != (account, layer_name) and owner not in trusted):
            out.append(arn)
    return out


def require_trusted_layers(
    env: EnvConfig, *, function: str, layer_name: str, function_arn: str | None, layer_arns: Sequence[str]
) -> None:
    """Stop before downloading or running a layer whose code nobody vouched for."""
    strangers = untrusted_layers(env, layer_name=layer_name, function_arn=function_arn, layer_arns=layer_arns)
    if strangers:
        raise VerifyError(
            f"{function} uses layer(s) {', '.join(strangers)}, which are not {layer_name} of this account and not "
            f"listed in deploy.environments.{env.name}.verify.trusted_layers; verify runs every layer's code, "
            "so it refuses to run these",
            hint="add the layer ARN (account and name) to verify.trusted_layers in invoke.yaml if you trust its "
            "code, or remove the layer from the function",
        )
