"""Lambda facts the deploy relies on, written once: limits, layer-version ARNs, S3 key formats.

Each was written in several modules with small differences (two ARN regexes, four spellings
of the code object's key); a fact that changes (a new limit, another partition) now changes
in one place.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

#: Function code plus all its layers, unzipped (Lambda quota: 250 MB, i.e. 262,144,000 bytes).
LAMBDA_UNZIPPED_LIMIT = 262_144_000
#: Largest zip Lambda accepts inline; bigger ones must be uploaded to S3 first.
DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024
#: Layers one function may use.
MAX_LAYERS = 5

#: Lambda's Python runtimes we can target, with the glibc of the Amazon Linux they run on.
RUNTIME_GLIBC: dict[str, tuple[int, int]] = {
    "python3.9": (2, 26),
    "python3.10": (2, 26),
    "python3.11": (2, 26),
    "python3.12": (2, 34),
    "python3.13": (2, 34),
}
ARCHITECTURES = ("x86_64", "arm64")

_LAYER_VERSION_ARN = re.compile(
    r"^(?P<base>arn:(?P<partition>[a-z-]+):lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):layer:(?P<name>[\w-]+))"
    r":(?P<version>\d+)$"
)


@dataclass(frozen=True, kw_only=True)
class LayerVersionArn:
    """``arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION`` taken apart; ``base`` is the ARN without the version."""

    arn: str
    base: str
    region: str
    account: str
    name: str
    version: int


def parse_layer_version_arn(arn: str) -> LayerVersionArn | None:
    """The parts of a layer *version* ARN, or None when ``arn`` is not one."""
    match = _LAYER_VERSION_ARN.match(arn)
    if match is None:
        return None
    return LayerVersionArn(
        arn=arn,
        base=match["base"],
        region=match["region"],
        account=match["account"],
        name=match["name"],
        version=int(match["version"]),
    )


def function_key(sha256_hex: str) -> str:
    """Where a function zip lives in the artifact bucket: keyed by its content."""
    return f"lambda/function-{sha256_hex}.zip"


def function_key_for_code_sha(code_sha256: str) -> str:
    """The same key from Lambda's CodeSha256 (base64 of the sha256 digest)."""
    return function_key(base64.b64decode(code_sha256).hex())


#: SnapStart for Python runs on python3.12 and later (Lambda developer guide, "Improving startup
#: performance with Lambda SnapStart": supported runtimes).
SNAP_START_MIN_PYTHON = (3, 12)


def snap_start_supported(runtime: str) -> bool:
    """``python3.12`` → True, ``python3.11`` → False."""
    major, _, minor = runtime.removeprefix("python").partition(".")
    return major.isdigit() and minor.isdigit() and (int(major), int(minor)) >= SNAP_START_MIN_PYTHON
