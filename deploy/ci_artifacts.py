"""The hand-over of built artifacts between CI jobs, checked before any AWS call.

The deploy workflow builds in a job that holds no credentials and deploys in another that
does. What crosses between them is ``.build/layers`` and ``.build/functions`` (zips, their
manifests, the layer's SBOM) through GitHub's artifact store, so the deploy job trusts none of
it until:

- every zip hashes to the sha256 its manifest records (what publish and Lambda's CodeSha256
  are checked against later),
- nothing else came along (a file no manifest names is refused, not ignored),
- the whole set hashes to the digest the build job wrote into its job outputs, which travel
  through GitHub's job graph, not the artifact store.

``python -m deploy.ci_artifacts digest .build`` prints ``artifacts=<hex>`` for ``$GITHUB_OUTPUT``;
``python -m deploy.ci_artifacts check .build <hex>`` exits non-zero naming the first file at
fault. Both only read.

``inv deploy --prebuilt`` (the deploy job) then takes exactly these artifacts (:func:`prebuilt`):
it builds nothing, since installing and compiling the layer's packages is running third-party code,
which the job holding the deploy role must not do; a missing or changed artifact stops it instead.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from deploy.artifact import Artifact, load_manifest, sha256_file
from deploy.errors import BuildError, script_main

#: Folder under ``.build`` → the manifest ``kind`` it holds (deploy/build.py's layout).
FOLDERS = {"layers": "layer", "functions": "function"}


def _status_record(path: Path) -> bool:
    """``.<zip>.checked``: where ``Artifact.check`` remembers a zip's file status on this machine (its
    inode and times), written beside the zip by a no-op build or ``verify --local``. Not part of the
    hand-over: it is not uploaded, and it differs on every machine."""
    return path.name.startswith(".") and path.name.endswith(".zip.checked")


def artifact_files(root: Path) -> list[Path]:
    """Every file of the hand-over, sorted, relative to ``root`` (only the two artifact folders)."""
    return sorted(
        p.relative_to(root)
        for folder in FOLDERS
        for p in (root / folder).rglob("*")
        if p.is_file() and not _status_record(p)
    )


def digest(root: Path) -> str:
    """sha256 over each file's path and sha256: any added, removed, renamed or changed file moves it."""
    lines = [f"{rel.as_posix()} {sha256_file(root / rel)}\n" for rel in artifact_files(root)]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _manifests(root: Path, folder: str) -> list[Path]:
    return sorted(p for p in (root / folder).glob("*.json") if not p.name.endswith(".cdx.json"))


def check(root: Path, expected_digest: str) -> list[Artifact]:
    """The artifacts of the hand-over, each zip checked against its manifest; BuildError otherwise."""
    found: list[Artifact] = []
    named: set[Path] = set()
    for folder, kind in FOLDERS.items():
        manifests = _manifests(root, folder)
        if not manifests:
            raise BuildError(f"{root / folder}: no {kind} manifest; the build job's artifact is incomplete")
        for manifest in manifests:
            artifact = load_manifest(manifest)
            if artifact.kind != kind:
                raise BuildError(f"manifest {manifest} describes a {artifact.kind}, not a {kind}")
            artifact.check()  # hashes the zip: BuildError naming both digests when they differ
            named |= {manifest.relative_to(root), artifact.path.relative_to(root)}
            if kind == "layer":
                if not artifact.sbom_path.is_file():
                    raise BuildError(f"layer {artifact.path} came without its SBOM {artifact.sbom_path.name}")
                named.add(artifact.sbom_path.relative_to(root))
            found.append(artifact)
    stray = [rel.as_posix() for rel in artifact_files(root) if rel not in named]
    if stray:
        raise BuildError(f"{root}: {', '.join(stray)} named by no manifest; refusing the hand-over")
    actual = digest(root)
    if actual != expected_digest:
        recorded = f"{expected_digest[:12]}…" if expected_digest else "nothing"
        raise BuildError(
            f"{root}: the artifacts hash to {actual[:12]}…, the build job recorded {recorded}",
            hint="the artifact store handed over other files than the build job uploaded",
        )
    return found


def _only(root: Path, folder: str, kind: str, identity: str | None = None) -> Artifact:
    """The one artifact of ``kind`` under ``root/folder`` (with ``identity`` when given), its zip hashed
    against its manifest; a BuildError naming what is missing or extra otherwise."""
    hint = "download the build job's artifact into .build (CI), or deploy without --prebuilt to build here"
    found = []
    for manifest in _manifests(root, folder):
        artifact = load_manifest(manifest)
        if artifact.kind != kind:
            raise BuildError(f"manifest {manifest} describes a {artifact.kind}, not a {kind}")
        found.append(artifact)
    if identity is not None:
        others = [a.identity[:12] for a in found if a.identity != identity]
        found = [a for a in found if a.identity == identity]
        if not found:
            seen = f" (found {', '.join(others)})" if others else ""
            raise BuildError(
                f"--prebuilt: no {kind} artifact for identity {identity[:12]} in {root / folder}{seen}; "
                "nothing is built with --prebuilt",
                hint=f"{hint}; an identity that differs means another lock, settings or tooling than this checkout's",
            )
    if not found:
        raise BuildError(
            f"--prebuilt: no {kind} artifact in {root / folder}; nothing is built with --prebuilt", hint=hint
        )
    if len(found) > 1:
        raise BuildError(
            f"--prebuilt: {len(found)} {kind} artifacts in {root / folder} "
            f"({', '.join(a.path.name for a in found)}); it deploys exactly the one handed over",
            hint="start from an empty .build (CI downloads into a fresh checkout)",
        )
    [artifact] = found
    artifact.check()  # hashes the zip: missing or changed since its manifest is a BuildError naming it
    if kind == "layer" and not artifact.sbom_path.is_file():
        raise BuildError(f"--prebuilt: layer {artifact.path} came without its SBOM {artifact.sbom_path.name}")
    return artifact


def prebuilt(root: Path, *, layer_identity: str) -> tuple[Artifact, Artifact]:
    """(function, layer) for ``inv deploy --prebuilt``: the one function artifact and the layer artifact
    of this checkout's identity under ``root``, each zip's sha256 checked against its manifest. Builds
    nothing; anything missing, extra or changed is a BuildError before any AWS call."""
    return _only(root, "functions", "function"), _only(root, "layers", "layer", identity=layer_identity)


@script_main
def main(argv: list[str]) -> int:
    match argv:
        case ["digest", root]:
            print(f"artifacts={digest(Path(root))}")
        case ["check", root, expected]:
            for artifact in check(Path(root), expected):
                print(f"{artifact.kind} {artifact.path.name}: sha256 {artifact.sha256[:12]}… matches its manifest")
        case _:
            print("usage: python -m deploy.ci_artifacts digest ROOT | check ROOT DIGEST", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
