"""What makes two layers the same: every input that can change the zip's bytes, and nothing else.

The identity keys the zip in ``.build/layers/`` and its S3 object, so a rebuild with the
same inputs is skipped and an upload happens only once. Inputs: the exported requirements
that install on the target (name, version, extras and hashes, markers evaluated for the runtime
and architecture and then dropped: Poetry and uv spell markers differently for one resolved set,
and a dev-only change in the lock never reaches the export), the runtime
and its glibc floor, the architecture, the builder and its version (a new uv can lay out
files differently), the packaging options, whether bytecode is shipped and the compiling
interpreter's exact version (``cpython-3.12.1``: a patch release may marshal differently),
and ``FORMAT_VERSION`` for our own post-processing. Deliberately not in it: the index URL (hashes pin the bytes) and any
path or time of the build machine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from deploy.config import LayerOptions
from deploy.lock import Requirement, resolved_for, target_environment

#: Bump when build.py changes what it removes or adds after install, or archive.py how it writes
#: a member (archive.DEFLATE_VERSION included); old layers then rebuild. 4: compressed formats
#: (archive.STORED_SUFFIXES) are stored, and libdeflate from the deflate 0.9.0 package deflates.
FORMAT_VERSION = 4


@dataclass(frozen=True, kw_only=True)
class LayerIdentity:
    requirements: tuple[str, ...]  # pins installed on the target, incl. sorted hashes, sorted by name
    runtime: str
    architecture: str
    glibc_floor: str  # "2.34"
    builder: str
    builder_version: str
    options: Mapping[str, Any] = field(default_factory=dict)
    bytecode: str | None = None  # "cpython-3.12.1", or None when no .pyc is shipped
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["requirements"] = list(self.requirements)
        data["options"] = dict(sorted(self.options.items()))
        return data

    def canonical(self) -> str:
        """Compact, key-sorted JSON: the exact bytes the digest is taken over."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.canonical().encode("ascii")).hexdigest()

    @property
    def short(self) -> str:
        """For messages; the full digest names files and S3 keys."""
        return self.digest[:12]


def layer_identity(
    requirements: Iterable[Requirement],
    *,
    runtime: str,
    architecture: str,
    glibc_floor: tuple[int, int],
    builder: str,
    builder_version: str,
    options: LayerOptions,
    bytecode: str | None = None,
) -> LayerIdentity:
    python_version = runtime.removeprefix("python")
    return LayerIdentity(
        requirements=tuple(resolved_for(tuple(requirements), target_environment(python_version, architecture))),
        runtime=runtime,
        architecture=architecture,
        glibc_floor=f"{glibc_floor[0]}.{glibc_floor[1]}",
        builder=builder,
        builder_version=builder_version,
        options=asdict(options),
        bytecode=bytecode,
    )
