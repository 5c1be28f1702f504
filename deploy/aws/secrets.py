"""Which secrets the deployed functions reference, and which of those do not exist.

A function never holds a secret's value in its environment, only the secret's ARN, in a variable
named ``<NAME>_SECRET_ARN`` (Terraform's function map sets ``DATABASE_URL_SECRET_ARN``; a team may
reference more through ``function_environment``). A reference to a secret that does not exist
fails only when the function first runs, in production, so the preflight asks up front: one
GetFunctionConfiguration per function and one DescribeSecret per distinct ARN, all read-only.
DescribeSecret never returns the value, and the deploy role is granted it on exactly the
referenced secrets, so the check needs no right to read one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from deploy.aws import calls
from deploy.aws.session import Endpoint
from deploy.config import Targets
from deploy.errors import AwsError

#: The suffix of an environment variable that references a secret by ARN.
SECRET_ARN_SUFFIX = "_SECRET_ARN"  # noqa: S105 - a variable-name suffix, no secret

#: What DescribeSecret (and GetFunctionConfiguration) answer for a name that does not exist. A
#: secret scheduled for deletion is still described, but GetSecretValue refuses it: see _describe.
_NOT_FOUND = "ResourceNotFoundException"


def secret_references(variables: Mapping[str, str]) -> dict[str, str]:
    """The ``*_SECRET_ARN`` variables of one function's environment, by variable name."""
    return {name: arn for name, arn in sorted(variables.items()) if name.endswith(SECRET_ARN_SUFFIX) and arn}


def missing_secrets(aws: Endpoint, targets: Targets, *, extra_arns: Iterable[str] = ()) -> list[str]:
    """One line per referenced secret that does not exist (or is scheduled for deletion), naming
    the function and variable that reference it; [] when all exist.

    The references are read from the deployed functions (a function not created yet has none to
    check); ``extra_arns`` adds ARNs known otherwise (e.g. from the configuration being applied)."""
    lam = calls.client(aws, "lambda")
    referenced: dict[str, list[str]] = {arn: ["(configuration)"] for arn in extra_arns}
    for fn in targets.functions:
        variables = _environment(lam, fn.name)
        for name, arn in secret_references(variables).items():
            referenced.setdefault(arn, []).append(f"{fn.name} {name}")
    sm = calls.client(aws, "secretsmanager")
    problems = []
    for arn in sorted(referenced):
        state = _describe(sm, arn)
        if state is not None:
            problems.append(f"secret {arn} {state}, referenced by {', '.join(referenced[arn])}")
    return problems


def _environment(lam: Any, name: str) -> dict[str, str]:
    try:
        config = lam.get_function_configuration(FunctionName=name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == _NOT_FOUND:
            return {}
        raise AwsError(f"cannot read the configuration of {name}: {exc}") from exc
    variables = (config.get("Environment") or {}).get("Variables") or {}
    return {str(k): str(v) for k, v in variables.items()}


def _describe(sm: Any, arn: str) -> str | None:
    """None when the secret exists and can serve a value; else what is wrong with it."""
    try:
        described = sm.describe_secret(SecretId=arn)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == _NOT_FOUND:
            return "does not exist"
        raise AwsError(f"cannot describe secret {arn}: {exc}") from exc
    if described.get("DeletedDate") is not None:
        return "is scheduled for deletion"
    return None
