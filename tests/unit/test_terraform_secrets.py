"""The Terraform configuration never holds a secret's value: no resource or data source whose
state records one (a secret version, an SSM parameter), so no plan or state does either, and
no function environment gets a value from a variable. The value is set out of band
(README "Security model"); the .tftest.hcl files test the references and grants."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TERRAFORM = Path(__file__).resolve().parents[2] / "infra" / "terraform"

#: Resource and data types whose state records the secret value itself.
VALUE_HOLDERS = (
    "aws_secretsmanager_secret_version",
    "aws_secretsmanager_secret_versions",
    "aws_ssm_parameter",
    "aws_ssm_parameters_by_path",
)

_BLOCK = re.compile(r'^\s*(resource|data|ephemeral)\s+"([a-z0-9_]+)"\s+"([A-Za-z0-9_-]+)"', re.MULTILINE)


def configuration_files() -> list[Path]:
    """The .tf files Terraform loads: the root and its modules, not tests or data dirs."""
    return sorted(
        p
        for p in TERRAFORM.rglob("*.tf")
        if not any(part.startswith(".") or part == "tests" for part in p.relative_to(TERRAFORM).parts)
    )


def value_holders(text: str) -> list[str]:
    # An ephemeral resource is never stored: it may read a value (e.g. to pass it on write-only).
    return [
        f"{kind} {rtype}.{name}"
        for kind, rtype, name in _BLOCK.findall(text)
        if rtype in VALUE_HOLDERS and kind != "ephemeral"
    ]


def test_the_configuration_is_found() -> None:
    names = {p.relative_to(TERRAFORM).as_posix() for p in configuration_files()}
    assert {"main.tf", "variables.tf", "modules/lambda/main.tf"} <= names
    assert not any(n.startswith("tests/") for n in names)


def test_no_resource_or_data_source_stores_a_secret_value() -> None:
    found = {p.relative_to(TERRAFORM).as_posix(): value_holders(p.read_text()) for p in configuration_files()}
    assert {f: v for f, v in found.items() if v} == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('resource "aws_secretsmanager_secret_version" "db" {', ["resource aws_secretsmanager_secret_version.db"]),
        ('  data "aws_ssm_parameter" "url" {', ["data aws_ssm_parameter.url"]),
        ('ephemeral "aws_secretsmanager_secret_version" "db" {', []),
        ('resource "aws_secretsmanager_secret" "db" {', []),
    ],
)
def test_the_scan_sees_value_holders(text: str, expected: list[str]) -> None:
    assert value_holders(text) == expected
