"""What a build produces and every later step consumes: a zip plus its manifest.

The manifest is the single record of an artifact: publish-layer trusts nothing else,
and refuses a zip whose bytes no longer hash to what the manifest says.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from deploy.errors import BuildError
from deploy.files import atomic_write_text
from deploy.lambda_facts import function_key

Kind = Literal["layer", "function"]

MANIFEST_VERSION = 1


#: Every layer object in an artifact bucket starts with this (Terraform's ``artifact_prefix`` + ``layer-``).
LAYER_KEY_PREFIX = "lambda/layer-"


#: An artifact's files share its name: the zip, its manifest beside it, and (a layer's) its SBOM.
ZIP, MANIFEST, SBOM = ".zip", ".json", ".cdx.json"


def layer_key(identity: str, suffix: str = ZIP) -> str:
    """Where a layer identity lives in a bucket: ``.zip``, its manifest ``.json``, its SBOM ``.cdx.json``."""
    return f"{LAYER_KEY_PREFIX}{identity}{suffix}"


@dataclass(frozen=True, kw_only=True)
class LayerAddress:
    """Where one layer identity lives: its zip, manifest and SBOM in a local folder (``.build/layers``
    for a build, any folder for a fetch), and the same three in an artifact bucket. The one place
    both spellings are written: the build, the remote cache and publish all read them here."""

    identity: str
    folder: Path

    @classmethod
    def in_build(cls, identity: str, build: Path) -> LayerAddress:
        """The address of a layer built (or fetched) into this checkout's build folder."""
        return cls(identity=identity, folder=build / "layers")

    @property
    def zip_path(self) -> Path:
        return self.folder / f"{self.identity}{ZIP}"

    @property
    def manifest_path(self) -> Path:
        return self.folder / f"{self.identity}{MANIFEST}"

    @property
    def sbom_path(self) -> Path:
        return self.folder / f"{self.identity}{SBOM}"

    @property
    def zip_key(self) -> str:
        return layer_key(self.identity, ZIP)

    @property
    def manifest_key(self) -> str:
        return layer_key(self.identity, MANIFEST)

    @property
    def sbom_key(self) -> str:
        return layer_key(self.identity, SBOM)


def code_sha256(hex_digest: str) -> str:
    """Lambda's CodeSha256 is base64(sha256(zip bytes)), not the hex digest."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def hex_sha256(code_sha: str) -> str:
    """The inverse of :func:`code_sha256`: Lambda's (and S3's) base64 SHA-256 as hex."""
    return base64.b64decode(code_sha).hex()


def sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@dataclass(frozen=True, kw_only=True)
class PackageInfo:
    """One installed distribution inside a layer."""

    name: str
    version: str
    size: int  # unzipped bytes of its files
    files: int = 0
    wheel_tags: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Artifact:
    """A built, audited zip. ``identity`` keys the layer (inputs hash) or function (zip hash)."""

    kind: Kind
    identity: str
    path: Path
    sha256: str
    zipped_size: int
    unzipped_size: int
    runtime: str
    architecture: str
    packages: tuple[PackageInfo, ...] = ()
    inputs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def code_sha256(self) -> str:
        return code_sha256(self.sha256)

    @property
    def manifest_path(self) -> Path:
        return self.path.with_suffix(MANIFEST)

    @property
    def sbom_path(self) -> Path:
        """The CycloneDX SBOM a layer build writes beside its zip."""
        return self.path.with_suffix(SBOM)

    @property
    def address(self) -> LayerAddress:
        """A layer's address, its folder the one its zip is in."""
        return LayerAddress(identity=self.identity, folder=self.path.parent)

    @property
    def s3_key(self) -> str:
        if self.kind == "layer":
            return self.address.zip_key
        return function_key(self.sha256)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = self.path.name
        data["code_sha256"] = self.code_sha256
        data["s3_key"] = self.s3_key
        data["manifest_version"] = MANIFEST_VERSION
        data["packages"] = [asdict(p) for p in self.packages]
        return data

    def write_manifest(self) -> Path:
        """Write the manifest atomically (tmp + rename): a crash never leaves a half file to trust."""
        atomic_write_text(self.manifest_path, json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")
        return self.manifest_path

    @property
    def checked_path(self) -> Path:
        """Where :meth:`check` records the zip's file status after hashing it (see ``check(trust_stat=)``)."""
        return self.path.with_name(f".{self.path.name}.checked")

    def check(self, *, trust_stat: bool = False) -> None:
        """Refuse an artifact whose zip is missing or whose bytes changed since the build.

        ``trust_stat``: skip re-hashing when the zip's status (inode, size, mtime and ctime in
        nanoseconds) is the one recorded the last time it hashed right, as git's index does. The
        no-op ``build-layer`` runs on every deploy and hashing 40 MB is 30 ms of its 0.4 s; ctime
        cannot be set back by a user, so any write to the zip makes it hash again. Publishing
        and verify always hash.
        """
        if not self.path.is_file():
            raise BuildError(f"artifact {self.path} is missing; rebuild it")
        status = _status(self.path)
        if trust_stat and _recorded(self.checked_path) == {"status": status, "sha256": self.sha256}:
            return
        actual = sha256_file(self.path)
        if actual != self.sha256:
            raise BuildError(
                f"artifact {self.path} does not match its manifest (sha256 {actual[:12]}… != {self.sha256[:12]}…)",
                hint="it was modified after the build; delete it and rebuild",
            )
        if not trust_stat:
            return  # only the no-op path records (and so leaves) a status file beside the zip
        self.remember_hashed(actual)

    def remember_hashed(self, sha256: str) -> None:
        """Record that the zip, as it is now, hashed to ``sha256`` (``check`` did, or a download hashed
        it as it arrived), so the next ``check(trust_stat=True)`` does not read it again."""
        if sha256 != self.sha256:
            raise BuildError(
                f"artifact {self.path} does not match its manifest (sha256 {sha256[:12]}… != {self.sha256[:12]}…)"
            )
        with contextlib.suppress(OSError):  # a read-only build folder only costs the next check a hash
            atomic_write_text(self.checked_path, json.dumps({"status": _status(self.path), "sha256": sha256}))


def _status(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _recorded(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def load_manifest(path: Path) -> Artifact:
    """Read a manifest written by ``Artifact.write_manifest``; the zip sits beside it."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BuildError(f"manifest {path} is missing") from None
    except (OSError, ValueError) as exc:
        raise BuildError(f"manifest {path} is unreadable: {exc}") from None
    return manifest_artifact(data, path.with_name(str(data.get("path", ""))), where=str(path))


def manifest_artifact(data: Mapping[str, Any], zip_path: Path, *, where: str) -> Artifact:
    """The Artifact a manifest describes, its zip at ``zip_path`` (which need not exist yet)."""
    if data.get("manifest_version") != MANIFEST_VERSION:
        raise BuildError(f"manifest {where} has version {data.get('manifest_version')!r}, expected {MANIFEST_VERSION}")
    try:
        return Artifact(
            kind=data["kind"],
            identity=data["identity"],
            path=zip_path,
            sha256=data["sha256"],
            zipped_size=int(data["zipped_size"]),
            unzipped_size=int(data["unzipped_size"]),
            runtime=data["runtime"],
            architecture=data["architecture"],
            packages=tuple(
                PackageInfo(**{**p, "wheel_tags": tuple(p.get("wheel_tags", ()))}) for p in data.get("packages", [])
            ),
            inputs=data.get("inputs", {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BuildError(f"manifest {where} is malformed: {exc}") from None
