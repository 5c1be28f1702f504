"""requirements.txt / poetry.lock parsing and the sync check, against small fixture files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deploy.config import Paths
from deploy.errors import LockError
from deploy.lock import (
    check_sync,
    load_locked_requirements,
    parse_poetry_lock,
    parse_requirements,
)

LOCKS = Path(__file__).resolve().parent.parent / "fixtures" / "locks"
GOOD_LOCK = LOCKS / "good" / "poetry.lock"


def test_parses_poetry_export_format() -> None:
    parsed = parse_requirements(LOCKS / "good" / "requirements.txt")
    assert parsed.index_urls == ("https://pypi.org/simple",)
    assert [r.name for r in parsed.requirements] == ["idna", "six"]
    six = parsed.by_name()["six"]
    assert six.version == "1.17.0"
    assert six.markers == 'python_version >= "3.11"'
    assert six.hashes == ("sha256:" + "a" * 64, "sha256:" + "b" * 64)  # sorted, whatever the file order
    assert six.line == f'six==1.17.0 ; python_version >= "3.11" --hash=sha256:{"a" * 64} --hash=sha256:{"b" * 64}'
    assert six.lineno == 6


def test_names_are_normalised(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text(f"Typing_Extensions==4.12.2 --hash=sha256:{'1' * 64}\n")
    assert parse_requirements(req).requirements[0].name == "typing-extensions"


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing_hash", "requirements.txt:6: six==1.17.0 has no --hash"),
        ("unpinned", "requirements.txt:3: idna is not pinned with '=='"),
        ("editable", "option '-e' is not allowed"),
        ("duplicate", "requirements.txt:9: six is listed twice (first on line 6)"),
        ("garbage", "requirements.txt:1: cannot parse"),
    ],
)
def test_bad_requirements_name_file_and_line(case: str, needle: str) -> None:
    with pytest.raises(LockError) as err:
        parse_requirements(LOCKS / case / "requirements.txt")
    assert needle in str(err.value)


def test_missing_requirements_file(tmp_path: Path) -> None:
    with pytest.raises(LockError, match=r"requirements\.txt is missing"):
        parse_requirements(tmp_path / "requirements.txt")


def test_malformed_hash(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("six==1.17.0 --hash=sha256:abc\n")
    with pytest.raises(LockError, match="six has a malformed hash"):
        parse_requirements(req)


def test_parses_poetry_lock_groups_markers_and_optional() -> None:
    lock = parse_poetry_lock(GOOD_LOCK)
    assert lock.records_groups
    assert lock.packages["six"].groups == ("dev", "main")
    assert lock.packages["six"].markers == 'python_version >= "3.11"'
    assert lock.packages["pytest"].groups == ("dev",)
    assert lock.packages["tomli"].optional
    assert "sha256:" + "c" * 64 in lock.packages["idna"].hashes


def test_legacy_lock_with_category_and_metadata_files(tmp_path: Path) -> None:
    lock = tmp_path / "poetry.lock"
    lock.write_text(
        '[[package]]\nname = "Six"\nversion = "1.16.0"\ncategory = "main"\noptional = false\n\n'
        '[metadata]\nlock-version = "1.1"\n\n[metadata.files]\n'
        f'six = [{{file = "six-1.16.0.tar.gz", hash = "sha256:{"1" * 64}"}}]\n'
    )
    parsed = parse_poetry_lock(lock)
    assert parsed.packages["six"].groups == ("main",)
    assert parsed.packages["six"].hashes == frozenset({"sha256:" + "1" * 64})


def test_malformed_lock_names_the_file() -> None:
    with pytest.raises(LockError) as err:
        parse_poetry_lock(LOCKS / "malformed" / "poetry.lock")
    assert "malformed/poetry.lock is not valid TOML" in str(err.value)


def test_in_sync_passes() -> None:
    check_sync(parse_requirements(LOCKS / "good" / "requirements.txt"), parse_poetry_lock(GOOD_LOCK))


def test_dev_only_change_keeps_requirements_in_sync() -> None:
    check_sync(
        parse_requirements(LOCKS / "dev_change" / "requirements.txt"),
        parse_poetry_lock(LOCKS / "dev_change" / "poetry.lock"),
    )


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("stale", "stale/requirements.txt is stale: idna is 3.9 there but 3.10 in good/poetry.lock"),
        ("extra_package", "requests is pinned there but missing from good/poetry.lock"),
        ("missing_main", "idna 3.10 is a main dependency in good/poetry.lock but missing there"),
        ("foreign_hash", f"six 1.17.0 has hash sha256:{'7' * 64} that good/poetry.lock does not list"),
    ],
)
def test_out_of_sync_is_reported_with_the_package(case: str, needle: str) -> None:
    with pytest.raises(LockError) as err:
        check_sync(parse_requirements(LOCKS / case / "requirements.txt"), parse_poetry_lock(GOOD_LOCK))
    message = str(err.value)
    assert needle in message
    assert "run `inv lock`" in message


def test_load_locked_requirements_from_a_checkout(tmp_path: Path) -> None:
    backend = tmp_path / "backend"
    backend.mkdir()
    shutil.copy(LOCKS / "good" / "requirements.txt", backend / "requirements.txt")
    shutil.copy(GOOD_LOCK, backend / "poetry.lock")
    shutil.copy(LOCKS / "good" / "pyproject.toml", backend / "pyproject.toml")
    reqs = load_locked_requirements(Paths(root=tmp_path))
    assert [r.name for r in reqs] == ["idna", "six"]
    shutil.copy(LOCKS / "stale" / "requirements.txt", backend / "requirements.txt")
    with pytest.raises(LockError, match=r"backend/requirements\.txt is stale: idna is 3\.9"):
        load_locked_requirements(Paths(root=tmp_path))


def test_real_backend_files_are_in_sync() -> None:
    reqs = load_locked_requirements(Paths())
    assert {"boto3", "fastapi", "sqlalchemy"} <= {r.name for r in reqs}
    assert "pytest" not in {r.name for r in reqs}
