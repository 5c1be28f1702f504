"""deploy skips a no-op terraform apply only when nothing an apply depends on has changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.terraform.fingerprint import apply_needed, fingerprint, record_apply
from deploy.terraform.runner import Terraform


@pytest.fixture
def tf(tmp_path: Path) -> Terraform:
    work = tmp_path / "tf"
    (work / "envs").mkdir(parents=True)
    (work / "modules" / "lambda").mkdir(parents=True)
    (work / "main.tf").write_text('resource "aws_s3_bucket" "this" {}\n')
    (work / "modules" / "lambda" / "main.tf").write_text("# module\n")
    (work / "envs" / "local.tfvars").write_text('environment = "local"\n')
    return Terraform(
        binary=Path("/usr/bin/terraform"),
        workdir=work,
        env="local",
        var_file=work / "envs" / "local.tfvars",
        variables={"aws_endpoint": "http://127.0.0.1:5000"},
        data_dir=work / ".terraform-local",
    )


def test_no_stamp_means_apply(tf: Terraform) -> None:
    assert apply_needed(tf)


def test_recorded_apply_is_skipped_until_something_changes(tf: Terraform) -> None:
    record_apply(tf, extra={"emulator": "pid 1", "state": '"etag-1"'})
    assert not apply_needed(tf, extra={"emulator": "pid 1", "state": '"etag-1"'})
    # a restarted emulator has lost every resource
    assert apply_needed(tf, extra={"emulator": "pid 2", "state": '"etag-1"'})
    # someone else applied (the state object changed)
    assert apply_needed(tf, extra={"emulator": "pid 1", "state": '"etag-2"'})


@pytest.mark.parametrize(
    "change",
    ["root", "module", "tfvars", "variables", "tests-ignored"],
)
def test_each_input_changes_the_fingerprint(tf: Terraform, change: str) -> None:
    import dataclasses

    before = fingerprint(tf)
    other = tf
    if change == "root":
        (tf.workdir / "main.tf").write_text('resource "aws_s3_bucket" "that" {}\n')
    elif change == "module":
        (tf.workdir / "modules" / "lambda" / "main.tf").write_text("# changed\n")
    elif change == "tfvars":
        tf.var_file.write_text('environment = "local"\nlog_retention_days = 7\n')
    elif change == "variables":
        other = dataclasses.replace(tf, variables={"aws_endpoint": "http://127.0.0.1:5001"})
    elif change == "tests-ignored":
        (tf.workdir / "tests").mkdir()
        (tf.workdir / "tests" / "x.tf").write_text("# a test helper, not configuration\n")
        assert fingerprint(tf) == before
        return
    assert fingerprint(other) != before
