"""deploy.audit: what may not reach S3, and the message that says why."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from deploy import audit
from deploy.artifact import PackageInfo
from deploy.config import ROOT
from deploy.errors import AuditError, ConfigError
from deploy.install import UvInstaller
from tests.unit import wheelfactory as wf

TARGET = {"python_version": "3.12", "architecture": "x86_64", "glibc_floor": (2, 34)}


def _pkg(name: str, tags: Sequence[str], size: int = 1000) -> PackageInfo:
    return PackageInfo(name=name, version="1.0", size=size, files=1, wheel_tags=tuple(tags))


# ----------------------------------------------------------------------------- wheel tags


@pytest.mark.parametrize(
    "tags",
    [
        wf.PURE,
        wf.PY2_PY3,
        ("py2.py3-none-any",),
        wf.MANYLINUX_2_28_X86,
        wf.MANYLINUX2014_X86,
        ("cp312-cp312-manylinux2014_x86_64",),
        ("cp312-cp312-manylinux1_x86_64",),
        ("cp312-cp312-manylinux_2_34_x86_64",),
        wf.ABI3_CP38_X86,
        ("cp312-abi3-manylinux_2_17_x86_64",),
        ("cp312-none-any",),
        # one good tag among bad ones is enough
        (*wf.MANYLINUX_2_38_X86, *wf.MANYLINUX_2_28_X86),
    ],
)
def test_compatible_tags_pass(tags: Sequence[str]) -> None:
    audit.check_wheel_tags([_pkg("good", tags)], **TARGET)


@pytest.mark.parametrize(
    ("tags", "why"),
    [
        (wf.MANYLINUX_2_38_X86, "needs glibc 2.38, runtime has 2.34"),
        (wf.LINUX_X86, "not manylinux"),
        (wf.CP311_X86, "cp311-cp311 does not run on CPython 3.12"),
        (wf.ABI3_CP313_X86, "cp313-abi3 does not run on CPython 3.12"),
        (wf.AARCH64, "built for aarch64, target is x86_64"),
        (wf.MUSL_X86, "not glibc Linux"),
        (wf.MACOS, "not glibc Linux"),
        (("cp312-cp312-win_amd64",), "not glibc Linux"),
        (("pp310-pypy310_pp73-manylinux_2_17_x86_64",), "pp310-pypy310_pp73"),
        ((), "no WHEEL tags"),
    ],
)
def test_incompatible_tags_name_package_and_tag(tags: Sequence[str], why: str) -> None:
    with pytest.raises(AuditError) as err:
        audit.check_wheel_tags([_pkg("good", wf.PURE), _pkg("badpkg", tags)], **TARGET)
    message = str(err.value)
    assert "badpkg 1.0" in message
    assert "good" not in message.split("hint", maxsplit=1)[0]
    for tag in tags:
        assert tag in message
    assert why in message
    assert "manylinux_2_34_x86_64" in message  # what the target accepts


def test_all_failures_in_one_message() -> None:
    with pytest.raises(AuditError) as err:
        audit.check_wheel_tags([_pkg("one", wf.LINUX_X86), _pkg("two", wf.AARCH64), _pkg("ok", wf.PURE)], **TARGET)
    assert "2 package(s)" in str(err.value)
    assert "one 1.0" in str(err.value)
    assert "two 1.0" in str(err.value)


def test_arm64_target_accepts_aarch64_and_refuses_x86() -> None:
    arm = {**TARGET, "architecture": "arm64"}
    audit.check_wheel_tags([_pkg("a", wf.AARCH64)], **arm)
    with pytest.raises(AuditError, match="built for x86_64, target is aarch64"):
        audit.check_wheel_tags([_pkg("x", wf.MANYLINUX2014_X86)], **arm)


def test_python311_on_amazon_linux_2() -> None:
    al2 = {"python_version": "python3.11", "architecture": "x86_64", "glibc_floor": (2, 26)}
    audit.check_wheel_tags([_pkg("ok", ("cp311-cp311-manylinux2014_x86_64",))], **al2)
    with pytest.raises(AuditError, match=r"needs glibc 2\.28, runtime has 2\.26"):
        audit.check_wheel_tags([_pkg("numpy", ("cp311-cp311-manylinux_2_28_x86_64",))], **al2)


def test_bad_target_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="sparc"):
        audit.check_wheel_tags([], python_version="3.12", architecture="sparc", glibc_floor=(2, 34))
    with pytest.raises(ConfigError, match="three"):
        audit.check_wheel_tags([], python_version="three", architecture="x86_64", glibc_floor=(2, 34))


# ----------------------------------------------------------------------------- packages


def test_read_packages_sizes_and_tags(tmp_path: Path) -> None:
    site = tmp_path / "site"
    wf.install_dist(site, "Zeta-Pkg", "2.0", files={"zeta/__init__.py": b"x" * 100, "zeta/data.bin": b"y" * 900})
    wf.install_dist(site, "alpha", "1.0", tags=wf.PY2_PY3)
    so = wf.native_dist(site, "native")
    # bytecode never reaches the zip, so it is not counted either
    (site / "zeta" / "__pycache__").mkdir()
    (site / "zeta" / "__pycache__" / "x.cpython-312.pyc").write_bytes(b"\x00" * 10_000)
    packages = audit.read_packages(site)
    assert [p.name for p in packages] == ["alpha", "native", "Zeta-Pkg"]
    zeta = packages[2]
    meta = sum(f.stat().st_size for f in (site / "Zeta_Pkg-2.0.dist-info").iterdir())
    assert zeta.version == "2.0"
    assert zeta.size == 1000 + meta
    assert zeta.files == 2 + 3  # two files + METADATA, WHEEL, RECORD
    assert packages[0].wheel_tags == ("py2-none-any", "py3-none-any")
    assert packages[1].size >= so.stat().st_size


def test_read_packages_resolves_dotdot_and_ignores_outside(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "bin").mkdir(parents=True)
    (site / "bin" / "tool").write_bytes(b"1234567")
    (tmp_path / "outside").write_bytes(b"x" * 50)
    extra = ["bin/../bin/tool,,", "../outside,,"]
    wf.install_dist(site, "tooling", files={"tooling/__init__.py": b""}, extra_record=extra)
    (pkg,) = audit.read_packages(site)
    meta = sum(f.stat().st_size for f in (site / "tooling-1.0.dist-info").iterdir())
    assert pkg.size == 7 + meta
    assert pkg.files == 1 + 1 + 3


def test_read_packages_without_record_uses_top_level(tmp_path: Path) -> None:
    site = tmp_path / "site"
    wf.install_dist(site, "legacy", files={"legacy/__init__.py": b"abc", "legacy/x.py": b"12"}, record=False)
    (site / "legacy-1.0.dist-info" / "top_level.txt").write_text("legacy\n")
    (pkg,) = audit.read_packages(site)
    meta = sum(f.stat().st_size for f in (site / "legacy-1.0.dist-info").iterdir())
    assert pkg.size == 5 + meta
    assert pkg.files == 2 + 3


def test_largest() -> None:
    packages = [_pkg(f"p{i}", wf.PURE, size=i * 10) for i in range(15)]
    top = audit.largest(packages, 3)
    assert [p.name for p in top] == ["p14", "p13", "p12"]
    assert len(audit.largest(packages)) == 10


# ----------------------------------------------------------------------------- ELF


def test_elf_of_the_target_machine_passes(tmp_path: Path) -> None:
    site = tmp_path / "site"
    wf.native_dist(site, "fast", glibc=["GLIBC_2.2.5", "GLIBC_2.34"])
    audit.check_elf(site, architecture="x86_64", glibc_floor=(2, 34))


def test_elf_machine_mismatch_names_file_and_package(tmp_path: Path) -> None:
    site = tmp_path / "site"
    wf.native_dist(site, "fast", machine=wf.EM_AARCH64, tags=wf.AARCH64, so_name="_native.abi3.so")
    # extension-less ELF found by magic, not name; owned by no package
    (site / "bin").mkdir()
    (site / "bin" / "helper").write_bytes(wf.elf_bytes(wf.EM_AARCH64))
    with pytest.raises(AuditError) as err:
        audit.check_elf(site, architecture="x86_64")
    message = str(err.value)
    assert "fast/_native.abi3.so (fast): machine aarch64, expected x86_64" in message
    assert "bin/helper (no package): machine aarch64" in message
    audit.check_elf(site, architecture="arm64")


def test_elf_32bit_and_big_endian_are_refused(tmp_path: Path) -> None:
    wf.write_tree(
        tmp_path,
        {"lib32.so": wf.elf_bytes(wf.EM_386, elf_class=1), "libbe.so": wf.elf_bytes(wf.EM_X86_64, data=2)},
    )
    with pytest.raises(AuditError) as err:
        audit.check_elf(tmp_path, architecture="x86_64")
    assert "lib32.so (no package): 32-bit little-endian; machine i386" in str(err.value)
    assert "libbe.so (no package): 64-bit big-endian" in str(err.value)


def test_glibc_too_new(tmp_path: Path) -> None:
    site = tmp_path / "site"
    wf.native_dist(site, "shiny", glibc=["GLIBC_2.17", "GLIBC_2.38"])
    audit.check_elf(site, architecture="x86_64")  # no floor given: machine only
    with pytest.raises(AuditError, match=r"shiny\.so|shiny/") as err:
        audit.check_elf(site, architecture="x86_64", glibc_floor=(2, 34), python_version="3.12")
    assert "(shiny): needs GLIBC_2.38, python3.12 has 2.34" in str(err.value)


def test_glibc_string_outside_version_needs_is_not_a_requirement(tmp_path: Path) -> None:
    """Only .gnu.version_r counts: a library that merely mentions GLIBC_2.99 in its data loads fine."""
    wf.write_tree(tmp_path, {"lib.so": wf.elf_bytes(glibc=["GLIBC_2.17"], payload=b"built on GLIBC_2.99\x00")})
    audit.check_elf(tmp_path, architecture="x86_64", glibc_floor=(2, 26))
    info = audit.read_elf(tmp_path / "lib.so")
    assert info is not None
    assert info.glibc == (2, 17)


def test_factory_elf_agrees_with_readelf(tmp_path: Path) -> None:
    path = tmp_path / "lib.so"
    path.write_bytes(wf.elf_bytes(wf.EM_AARCH64, glibc=["GLIBC_2.17", "GLIBC_2.38"]))
    out = subprocess.run(["readelf", "-hV", str(path)], capture_output=True, text=True, check=True).stdout
    assert "AArch64" in out
    assert "GLIBC_2.38" in out
    info = audit.read_elf(path)
    assert info is not None
    assert (info.machine, info.glibc) == (wf.EM_AARCH64, (2, 38))


def test_non_elf_and_truncated_files_are_ignored_or_named(tmp_path: Path) -> None:
    wf.write_tree(tmp_path, {"a.so": b"not an elf", "empty.so": b"", "trunc.so": b"\x7fELF\x02\x01"})
    audit.check_elf(tmp_path, architecture="x86_64")


# ----------------------------------------------------------------------------- secrets

_PRIVATE_KEY = (
    b"-----BEGIN RSA PRIVATE KEY-----\n" + b"MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n" * 4
)
_SECRET = b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYzK3yfh6Rz8"


@pytest.mark.parametrize(
    ("rel", "content", "why"),
    [
        (".env", b"DEBUG=1\n", "named like a secret"),
        ("app/.env.production", b"X=1\n", "named like a secret"),
        ("certs/server.key", b"anything", r"\*\.key"),
        ("home/id_rsa", b"k", r"id_rsa\*"),
        ("home/id_ed25519.pub", b"k", r"id_ed25519\*"),
        ("cfg/credentials", b"[default]\n", "named like a secret"),
        ("home/.aws/config", b"[default]\n", r"\.aws"),
        ("certs/tls.pem", _PRIVATE_KEY, "PEM file"),
        ("pkg/settings.py", b"KEY = '" + _PRIVATE_KEY + b"'\n", "private key"),
        ("pkg/conf.py", b"ID = 'AKIAZ7QWERTYUIOPASDF'\nSECRET = '" + _SECRET + b"'\n", "AWS access key"),
    ],
)
def test_secrets_found_and_named(tmp_path: Path, rel: str, content: bytes, why: str) -> None:
    wf.write_tree(tmp_path, {"pkg/__init__.py": b"", rel: content})
    with pytest.raises(AuditError, match=why) as err:
        audit.check_secrets(tmp_path)
    assert rel in str(err.value)
    audit.check_secrets(tmp_path, allow=[rel])
    audit.check_secrets(tmp_path, ignore=lambda r: r == rel)


def test_not_secrets(tmp_path: Path) -> None:
    cert = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    wf.write_tree(
        tmp_path,
        {
            "certifi/cacert.pem": cert * 3,  # CA bundles are public
            "botocore/credentials.py": b"class Credentials: ...\n",
            # AWS documentation examples, shipped inside botocore's data files
            "botocore/data/sts/examples.json": b'{"AccessKeyId": "AKIAIOSFODNN7EXAMPLE", "S": "'
            + b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
            + b'"}',
            "botocore/data/iam/examples.json": b'"-----BEGIN DSA PRIVATE KEY-----<a very long private key string>"',
            # an access key id alone (no secret) and a lowercase hex digest are not a credential pair
            "pkg/ids.py": b"ID = 'AKIAZ7QWERTYUIOPASDF'\nSHA = 'da39a3ee5e6b4b0d3255bfef95601890afd80709'\n",
            # binaries are only scanned at their head
            "pkg/blob.so": b"\x00" * 9000 + _PRIVATE_KEY,
            "pkg/__pycache__/x.pyc": _PRIVATE_KEY,
        },
    )
    audit.check_secrets(tmp_path)


def test_all_secret_findings_in_one_message(tmp_path: Path) -> None:
    wf.write_tree(tmp_path, {".env": b"A=1", "x/id_rsa": b"k", "y/tls.key": b"k"})
    with pytest.raises(AuditError, match="3 file") as err:
        audit.check_secrets(tmp_path, allow=["nothing/*"])
    for rel in (".env", "x/id_rsa", "y/tls.key"):
        assert rel in str(err.value)


# ----------------------------------------------------------------------------- budget


def test_budget_within() -> None:
    budget = audit.check_budget(layer_unzipped=100_000_000, function_unzipped=1_000_000)
    assert budget.total == 101_000_000
    assert budget.limit == audit.LAMBDA_UNZIPPED_LIMIT == 262_144_000
    assert budget.headroom == 262_144_000 - 101_000_000
    assert budget.share == pytest.approx(101_000_000 / 262_144_000)


def test_budget_exactly_at_limit_passes() -> None:
    budget = audit.check_budget(layer_unzipped=audit.LAMBDA_UNZIPPED_LIMIT - 10, function_unzipped=10)
    assert budget.headroom == 0


def test_budget_over_lists_largest_packages() -> None:
    packages = [_pkg(f"pkg{i:02}", wf.PURE, size=(i + 1) * 10_000_000) for i in range(12)]
    with pytest.raises(AuditError) as err:
        audit.check_budget(
            layer_unzipped=250_000_000,
            function_unzipped=10_000_000,
            other_layers_unzipped=5_000_000,
            layer_count=2,
            packages=packages,
        )
    message = str(err.value)
    assert "265000000 bytes unzipped" in message
    assert "pkg11 120.0 MB" in message
    assert "pkg02 30.0 MB" in message
    assert "pkg01 " not in message  # only the 10 largest
    assert message.index("pkg11") < message.index("pkg10")


def test_six_layers_refused() -> None:
    audit.check_budget(layer_unzipped=1, function_unzipped=1, layer_count=5)
    with pytest.raises(AuditError, match="6 layers, Lambda allows at most 5"):
        audit.check_budget(layer_unzipped=1, function_unzipped=1, layer_count=6)


def test_direct_upload_limit() -> None:
    assert audit.DIRECT_UPLOAD_LIMIT == 52_428_800


# ----------------------------------------------------------------------------- together


def test_audit_layer_passes_a_good_tree_and_fails_a_bad_one(tmp_path: Path) -> None:
    site = tmp_path / "site"
    wf.install_dist(site, "pure")
    wf.native_dist(site, "native", glibc=["GLIBC_2.28"], tags=wf.MANYLINUX_2_28_X86)
    packages = audit.audit_layer(site, **TARGET)
    assert [p.name for p in packages] == ["native", "pure"]
    (site / "pure" / ".env").write_text("TOKEN=1\n")
    with pytest.raises(AuditError, match=r"pure/\.env"):
        audit.audit_layer(site, **TARGET)
    assert audit.audit_layer(site, **TARGET, allow=["pure/.env"])


def test_audit_layer_checks_elf_files_and_secrets_opening_each_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pure wheel that vendors a library for another machine passes the tag check: its ELF
    must still be refused, before any secret is reported. Both checks share one walk, one open
    per file."""
    site = tmp_path / "site"
    vendored = {"pure/__init__.py": b"", "pure/_vendored.so": wf.elf_bytes(wf.EM_AARCH64)}
    wf.install_dist(site, "pure", files=vendored)
    (site / "pure" / ".env").write_text("TOKEN=1\n")
    opened: list[str] = []
    real_open = open

    def counting_open(file: object, *args: object, **kwargs: object) -> object:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", counting_open)
    with pytest.raises(AuditError, match=r"pure/_vendored\.so \(pure\): machine aarch64, expected x86_64"):
        audit.audit_layer(site, **TARGET)
    monkeypatch.undo()
    inspected = [name for name in opened if name.startswith(str(site / "pure") + "/")]
    assert sorted(inspected) == sorted(set(inspected)) and str(site / "pure" / "_vendored.so") in inspected

    (site / "pure" / "_vendored.so").write_bytes(wf.elf_bytes(wf.EM_X86_64))
    with pytest.raises(AuditError, match=r"pure/\.env"):
        audit.audit_layer(site, **TARGET)

    # A file refused by its name is still an ELF for the wrong machine, and that is said first.
    (site / "pure" / "signing.key").write_bytes(wf.elf_bytes(wf.EM_AARCH64))
    with pytest.raises(AuditError, match=r"pure/signing\.key \(no package\): machine aarch64"):
        audit.audit_layer(site, **TARGET)


# ----------------------------------------------------------------------------- the real backend dependencies


def _install_backend(site: Path, architecture: str) -> None:
    """The backend's locked, hash-pinned requirements, installed by the layer build's own installer."""
    UvInstaller().install(
        ROOT / "backend" / "requirements.txt",
        site,
        python_version="3.12",
        architecture=architecture,
        glibc_floor=(2, 34),
    )


@pytest.mark.network
def test_real_backend_dependencies(tmp_path: Path) -> None:
    """The audit must accept what uv installs for Lambda python3.12 x86_64 (CA bundles, AWS doc examples)
    and refuse the same dependencies installed for aarch64."""
    _install_backend(tmp_path / "x86", "x86_64")
    packages = audit.audit_layer(tmp_path / "x86", **TARGET)
    names = {p.name.lower() for p in packages}
    assert {"boto3", "botocore", "sqlalchemy", "psycopg-binary", "pydantic_core"} <= names

    _install_backend(tmp_path / "arm", "arm64")
    audit.audit_layer(tmp_path / "arm", **{**TARGET, "architecture": "arm64"})
    with pytest.raises(AuditError, match="built for aarch64, target is x86_64") as err:
        audit.audit_layer(tmp_path / "arm", **TARGET)
    assert "psycopg-binary" in str(err.value)
    with pytest.raises(AuditError, match=r"\(psycopg-binary\): machine aarch64, expected x86_64"):
        audit.check_elf(tmp_path / "arm", architecture="x86_64")


def test_the_audit_walk_lists_regular_files_only_in_order_without_bytecode(tmp_path: Path) -> None:
    """Links are neither listed nor followed (their targets inside the tree are listed under their own
    names); a folder's files come before its subfolders; bytecode is skipped."""
    from deploy.audit import _files

    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__pycache__").mkdir()
    (tmp_path / "pkg" / "b.py").write_text("b")
    (tmp_path / "pkg" / "a.py").write_text("a")
    (tmp_path / "pkg" / "sub" / "c.py").write_text("c")
    (tmp_path / "pkg" / "__pycache__" / "a.cpython-312.pyc").write_bytes(b"x")
    (tmp_path / "pkg" / "stale.pyc").write_bytes(b"x")
    (tmp_path / "pkg" / "link.py").symlink_to(tmp_path / "pkg" / "a.py")
    (tmp_path / "pkg" / "linked-dir").symlink_to(tmp_path / "pkg" / "sub")
    (tmp_path / "top.txt").write_text("t")
    assert [rel for rel, _ in _files(tmp_path)] == ["top.txt", "pkg/a.py", "pkg/b.py", "pkg/sub/c.py"]
