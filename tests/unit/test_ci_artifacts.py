"""The deploy job refuses a hand-over from the build job unless every byte is what was built."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from deploy import ci_artifacts
from deploy.artifact import Artifact
from deploy.errors import BuildError


def _artifact(folder: Path, kind: str, payload: bytes) -> Artifact:
    folder.mkdir(parents=True, exist_ok=True)
    sha = hashlib.sha256(payload).hexdigest()
    zip_path = folder / f"{sha}.zip"
    zip_path.write_bytes(payload)
    artifact = Artifact(
        kind=kind,  # type: ignore[arg-type]  # the Literal is checked by the manifest loader
        identity=sha,
        path=zip_path,
        sha256=sha,
        zipped_size=len(payload),
        unzipped_size=len(payload),
        runtime="python3.12",
        architecture="x86_64",
    )
    artifact.write_manifest()
    if kind == "layer":
        artifact.sbom_path.write_text('{"bomFormat": "CycloneDX"}\n')
    return artifact


@pytest.fixture
def build(tmp_path: Path) -> Path:
    root = tmp_path / ".build"
    _artifact(root / "layers", "layer", b"layer bytes")
    _artifact(root / "functions", "function", b"function bytes")
    return root


def test_an_intact_hand_over_passes(build: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = ci_artifacts.digest(build)
    found = ci_artifacts.check(build, expected)
    assert sorted(a.kind for a in found) == ["function", "layer"]
    assert ci_artifacts.main(["digest", str(build)]) == 0
    assert capsys.readouterr().out == f"artifacts={expected}\n"
    assert ci_artifacts.main(["check", str(build), expected]) == 0
    assert "matches its manifest" in capsys.readouterr().out


def test_a_changed_zip_is_refused_naming_it(build: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = ci_artifacts.digest(build)
    zip_path = next((build / "functions").glob("*.zip"))
    zip_path.write_bytes(b"function bytez")  # same size, other bytes
    with pytest.raises(BuildError, match=rf"{zip_path.name} does not match its manifest"):
        ci_artifacts.check(build, expected)
    assert ci_artifacts.main(["check", str(build), expected]) == BuildError.exit_code
    assert "does not match its manifest" in capsys.readouterr().err


def test_a_file_no_manifest_names_is_refused(build: Path) -> None:
    (build / "layers" / "extra.pth").write_text("import os\n")
    with pytest.raises(BuildError, match=r"layers/extra\.pth named by no manifest"):
        ci_artifacts.check(build, ci_artifacts.digest(build))


def test_a_layer_without_its_sbom_is_refused(build: Path) -> None:
    next((build / "layers").glob("*.cdx.json")).unlink()
    with pytest.raises(BuildError, match="without its SBOM"):
        ci_artifacts.check(build, ci_artifacts.digest(build))


def test_a_missing_function_is_refused(build: Path) -> None:
    shutil.rmtree(build / "functions")
    with pytest.raises(BuildError, match="no function manifest"):
        ci_artifacts.check(build, ci_artifacts.digest(build))


def test_a_manifest_in_the_wrong_folder_is_refused(build: Path) -> None:
    shutil.rmtree(build / "functions")
    _artifact(build / "functions", "layer", b"a layer where code belongs")
    with pytest.raises(BuildError, match="describes a layer, not a function"):
        ci_artifacts.check(build, ci_artifacts.digest(build))


def test_a_consistent_set_other_than_the_recorded_one_is_refused(build: Path, tmp_path: Path) -> None:
    """Zips and manifests that agree are not enough: the set must be the one the build job recorded."""
    recorded = ci_artifacts.digest(build)
    shutil.rmtree(build / "functions")
    _artifact(build / "functions", "function", b"other, self-consistent function bytes")
    with pytest.raises(BuildError, match="the build job recorded"):
        ci_artifacts.check(build, recorded)
    with pytest.raises(BuildError, match="recorded nothing"):
        ci_artifacts.check(build, "")


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert ci_artifacts.main(["check", "only-a-root"]) == 2
    assert "usage:" in capsys.readouterr().err


# ---------------------------------------------------------------------------- inv deploy --prebuilt


def test_prebuilt_takes_the_handed_over_function_and_the_layer_of_this_identity(build: Path) -> None:
    layer = next((build / "layers").glob("*.zip")).stem
    function, found = ci_artifacts.prebuilt(build, layer_identity=layer)
    assert (function.kind, found.kind, found.identity) == ("function", "layer", layer)


def test_prebuilt_refuses_a_missing_function_artifact(build: Path) -> None:
    shutil.rmtree(build / "functions")
    with pytest.raises(BuildError, match=r"no function artifact .* nothing is built with --prebuilt") as exc:
        ci_artifacts.prebuilt(build, layer_identity=next((build / "layers").glob("*.zip")).stem)
    assert "without --prebuilt" in (exc.value.hint or "")


def test_prebuilt_refuses_a_missing_zip_beside_its_manifest(build: Path) -> None:
    layer = next((build / "layers").glob("*.zip"))
    layer.unlink()
    with pytest.raises(BuildError, match=rf"{layer.name} is missing"):
        ci_artifacts.prebuilt(build, layer_identity=layer.stem)


def test_prebuilt_refuses_a_zip_changed_since_its_manifest(build: Path) -> None:
    layer = next((build / "layers").glob("*.zip"))
    layer.write_bytes(b"layer bytez")
    with pytest.raises(BuildError, match="does not match its manifest"):
        ci_artifacts.prebuilt(build, layer_identity=layer.stem)


def test_prebuilt_refuses_a_layer_of_another_identity_naming_both(build: Path) -> None:
    found = next((build / "layers").glob("*.zip")).stem
    with pytest.raises(BuildError, match=rf"no layer artifact for identity 0123456789ab .*found {found[:12]}"):
        ci_artifacts.prebuilt(build, layer_identity="0123456789ab" * 5)


def test_prebuilt_refuses_two_function_artifacts(build: Path) -> None:
    _artifact(build / "functions", "function", b"other function bytes")
    with pytest.raises(BuildError, match="2 function artifacts"):
        ci_artifacts.prebuilt(build, layer_identity=next((build / "layers").glob("*.zip")).stem)


def test_a_zips_status_record_is_not_part_of_the_hand_over(build: Path) -> None:
    """`inv verify --local` in the build job checks the layer with its status record (`.<zip>.checked`),
    which is not uploaded: it must neither move the digest nor be refused as unnamed."""
    before = ci_artifacts.digest(build)
    layer = next((build / "layers").glob("*.zip"))
    (build / "layers" / f".{layer.name}.checked").write_text('{"status": [1, 2, 3], "sha256": "x"}')
    assert ci_artifacts.digest(build) == before
    assert len(ci_artifacts.check(build, before)) == 2
    (build / "layers" / ".stray.checked.pth").write_text("import os\n")  # anything else hidden still counts
    with pytest.raises(BuildError, match="named by no manifest"):
        ci_artifacts.check(build, ci_artifacts.digest(build))
