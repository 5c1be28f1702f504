"""A CycloneDX 1.5 SBOM for a layer: what is inside, for scanners and auditors.

Deterministic on purpose, like the zip it describes: no timestamp, and the serial number
is a UUID5 of the layer identity, so the same layer always gets the same SBOM bytes.
Component hashes are the distribution hashes pinned in requirements.txt (the wheel that
was installed is one of them).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from deploy.artifact import PackageInfo
from deploy.files import atomic_write_text
from deploy.identity import LayerIdentity
from deploy.lock import Requirement

SPEC_VERSION = "1.5"
_NAMESPACE = uuid.UUID("6f1c3a52-3b52-5a8e-9d0f-2f1b9b2b6c11")
_ALG = {"sha256": "SHA-256", "sha384": "SHA-384", "sha512": "SHA-512"}


def purl(name: str, version: str) -> str:
    return f"pkg:pypi/{canonicalize_name(name)}@{version}"


def serial_number(identity: LayerIdentity) -> str:
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, identity.digest)}"


def layer_sbom(
    identity: LayerIdentity,
    packages: Iterable[PackageInfo],
    requirements: Iterable[Requirement],
    *,
    name: str = "lambda-layer",
) -> dict[str, Any]:
    """Components are the distributions actually in the layer (after options removed some)."""
    pinned = {r.name: r for r in requirements}
    components: list[dict[str, Any]] = []
    for pkg in sorted(packages, key=lambda p: canonicalize_name(p.name)):
        ref = purl(pkg.name, pkg.version)
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": ref,
            "name": canonicalize_name(pkg.name),
            "version": pkg.version,
            "purl": ref,
        }
        req = pinned.get(canonicalize_name(pkg.name))
        if req is not None and req.version == pkg.version:
            component["hashes"] = [
                {"alg": _ALG[algo], "content": digest}
                for algo, _, digest in (h.partition(":") for h in req.hashes)
                if algo in _ALG
            ]
        if pkg.wheel_tags:
            component["properties"] = [{"name": "python:wheel_tag", "value": tag} for tag in sorted(pkg.wheel_tags)]
        components.append(component)
    return {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": serial_number(identity),
        "version": 1,
        "metadata": {
            "component": {
                "type": "library",
                "bom-ref": f"layer:{identity.digest}",
                "name": name,
                "version": identity.digest,
            },
            "properties": [
                {"name": "aws:lambda:runtime", "value": identity.runtime},
                {"name": "aws:lambda:architecture", "value": identity.architecture},
                {"name": "glibc_floor", "value": identity.glibc_floor},
                {"name": "builder", "value": f"{identity.builder} {identity.builder_version}"},
            ],
        },
        "components": components,
    }


def write_sbom(path: Path, data: dict[str, Any]) -> Path:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path
