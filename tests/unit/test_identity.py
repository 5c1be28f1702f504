"""What changes a layer's identity, and what must not."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from deploy.config import LayerOptions
from deploy.identity import FORMAT_VERSION, LayerIdentity, layer_identity
from deploy.lock import parse_poetry_lock, parse_requirements

LOCKS = Path(__file__).resolve().parent.parent / "fixtures" / "locks"


def _identity(case: str = "good", **overrides: object) -> LayerIdentity:
    reqs = parse_requirements(LOCKS / case / "requirements.txt").requirements
    kwargs: dict[str, object] = {
        "runtime": "python3.12",
        "architecture": "x86_64",
        "glibc_floor": (2, 34),
        "builder": "uv",
        "builder_version": "0.5.0",
        "options": LayerOptions(),
    }
    kwargs.update(overrides)
    return layer_identity(reqs, **kwargs)  # type: ignore[arg-type]


def test_digest_is_stable_hex() -> None:
    first, second = _identity(), _identity()
    assert first == second
    assert first.digest == second.digest
    assert len(first.digest) == 64
    assert first.short == first.digest[:12]
    assert first.format_version == FORMAT_VERSION
    assert first.glibc_floor == "2.34"


def test_dev_only_lock_change_keeps_identity() -> None:
    good = parse_poetry_lock(LOCKS / "good" / "poetry.lock")
    dev = parse_poetry_lock(LOCKS / "dev_change" / "poetry.lock")
    assert good.packages["pytest"].version != dev.packages["pytest"].version
    assert _identity("good").digest == _identity("dev_change").digest


def test_requirement_order_does_not_matter(tmp_path: Path) -> None:
    text = (LOCKS / "good" / "requirements.txt").read_text()
    head, idna, six = (
        text.split("idna==")[0],
        "idna==" + text.split("idna==")[1].split("six==")[0],
        "six==" + text.split("six==")[1],
    )
    (tmp_path / "requirements.txt").write_text(head + six + idna)
    reqs = parse_requirements(tmp_path / "requirements.txt").requirements
    assert (
        layer_identity(
            reqs,
            runtime="python3.12",
            architecture="x86_64",
            glibc_floor=(2, 34),
            builder="uv",
            builder_version="0.5.0",
            options=LayerOptions(),
        ).digest
        == _identity().digest
    )


def test_prod_change_changes_identity() -> None:
    assert _identity("stale").digest != _identity("good").digest


def test_every_build_input_changes_identity() -> None:
    base = _identity().digest
    variants = [
        _identity(runtime="python3.13"),
        _identity(architecture="arm64"),
        _identity(glibc_floor=(2, 26)),
        _identity(builder="pip"),
        _identity(builder_version="0.5.1"),
        _identity(options=LayerOptions(strip_tests=True)),
        _identity(options=LayerOptions(exclude_runtime_boto=True)),
        _identity(bytecode="cpython-3.12.1"),
        _identity(bytecode="cpython-3.12.2"),  # a patch release may marshal differently
        dataclasses.replace(_identity(), format_version=FORMAT_VERSION + 1),
    ]
    digests = {v.digest for v in variants}
    assert base not in digests
    assert len(digests) == len(variants)


def test_canonical_json_is_compact_and_sorted() -> None:
    canonical = _identity().canonical()
    assert canonical.startswith('{"architecture":"x86_64","builder":"uv"')
    assert " " not in canonical.split('"requirements"')[0]
