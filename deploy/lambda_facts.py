"""Lambda facts the deploy relies on, written once: limits, layer-version ARNs, S3 key formats.

Each was written in several modules with small differences (two ARN regexes, four spellings
of the code object's key); a fact that changes (a new limit, another partition) now changes
in one place.
"""

from __future__ import annotations

import base64
import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass

#: Function code plus all its layers, unzipped (Lambda quota: 250 MB, i.e. 262,144,000 bytes).
LAMBDA_UNZIPPED_LIMIT = 262_144_000
#: Largest zip Lambda accepts inline; bigger ones must be uploaded to S3 first.
DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024
#: Layers one function may use.
MAX_LAYERS = 5


@dataclass(frozen=True, kw_only=True)
class Runtime:
    """One of Lambda's Python runtimes: the OS it runs on, whose glibc is the floor every wheel and
    ELF file of the layer must fit under, and the date AWS deprecates it (no more patches)."""

    name: str  # the runtime identifier, "python3.12"
    os: str
    glibc: tuple[int, int]
    deprecated: datetime.date

    @property
    def python_version(self) -> str:
        return self.name.removeprefix("python")

    def deprecated_on(self, today: datetime.date) -> bool:
        return today >= self.deprecated


_AL2, _AL2023 = ("Amazon Linux 2", (2, 26)), ("Amazon Linux 2023", (2, 34))


def _runtime(name: str, base: tuple[str, tuple[int, int]], deprecated: str) -> Runtime:
    return Runtime(name=name, os=base[0], glibc=base[1], deprecated=datetime.date.fromisoformat(deprecated))


#: Lambda's Python runtimes we can target. python3.12 and later run on Amazon Linux 2023
#: (glibc 2.34), earlier ones on Amazon Linux 2 (glibc 2.26). Deprecation dates are AWS's
#: schedule (docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html, read 2026-12-03;
#: python3.9's moved from 2025-10-31 to 2025-12-15): AWS moves them, so check that table
#: when one comes near. After the date the runtime gets no patches; creating and updating
#: functions is blocked some months later.
RUNTIMES: Mapping[str, Runtime] = {
    r.name: r
    for r in (
        _runtime("python3.9", _AL2, "2025-12-15"),
        _runtime("python3.10", _AL2, "2026-06-30"),
        _runtime("python3.11", _AL2, "2026-06-30"),
        _runtime("python3.12", _AL2023, "2028-10-31"),
        _runtime("python3.13", _AL2023, "2029-06-30"),
        _runtime("python3.14", _AL2023, "2029-06-30"),
    )
}
#: Runtime → the glibc of the Amazon Linux it runs on (what config, install and audit ask).
RUNTIME_GLIBC: Mapping[str, tuple[int, int]] = {name: r.glibc for name, r in RUNTIMES.items()}
#: glibc floor → the Amazon Linux that has it, for messages.
LAMBDA_OS: Mapping[tuple[int, int], str] = {r.glibc: r.os for r in RUNTIMES.values()}


def deprecation_warning(runtime: str, today: datetime.date | None = None) -> str | None:
    """``python3.9 is deprecated since 2025-12-15 …`` for a runtime past its date; None otherwise."""
    found = RUNTIMES.get(runtime)
    today = today or datetime.datetime.now(datetime.UTC).date()
    if found is None or not found.deprecated_on(today):
        return None
    newest = list(RUNTIMES.values())[-1]
    return (
        f"runtime {runtime} is deprecated since {found.deprecated.isoformat()} (AWS's schedule): it gets no "
        f"security patches, and Lambda will block creating and then updating its functions; move to "
        f"{newest.name} ({newest.os}, supported until {newest.deprecated.isoformat()})"
    )


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
