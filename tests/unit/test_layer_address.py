"""One layer identity, one address: the build, the artifact, publish and the remote cache spell it the same."""

from __future__ import annotations

from pathlib import Path

from deploy.artifact import Artifact, LayerAddress

DIGEST = "ab" * 32


def test_the_address_of_a_build_holds_its_three_files_and_their_three_keys(tmp_path: Path) -> None:
    address = LayerAddress.in_build(DIGEST, tmp_path / ".build")
    layers = tmp_path / ".build" / "layers"
    assert (address.zip_path, address.manifest_path, address.sbom_path) == (
        layers / f"{DIGEST}.zip",
        layers / f"{DIGEST}.json",
        layers / f"{DIGEST}.cdx.json",
    )
    # Terraform's artifact_prefix + "layer-": the bucket policy and the cache reader's grant name this prefix.
    assert (address.zip_key, address.manifest_key, address.sbom_key) == (
        f"lambda/layer-{DIGEST}.zip",
        f"lambda/layer-{DIGEST}.json",
        f"lambda/layer-{DIGEST}.cdx.json",
    )


def test_a_layer_artifact_lives_at_its_identitys_address(tmp_path: Path) -> None:
    address = LayerAddress.in_build(DIGEST, tmp_path)
    layer = Artifact(
        kind="layer",
        identity=DIGEST,
        path=address.zip_path,
        sha256="cd" * 32,
        zipped_size=1,
        unzipped_size=1,
        runtime="python3.12",
        architecture="x86_64",
    )
    assert layer.address == address
    assert (layer.manifest_path, layer.sbom_path, layer.s3_key) == (
        address.manifest_path,
        address.sbom_path,
        address.zip_key,
    )
