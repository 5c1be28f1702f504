"""A saved plan read as data: counts, the removals a deploy guards, the deploy_targets it will produce."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deploy.terraform.decision import read_saved_plan


def change(address: str, kind: str, actions: list[str], before: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"address": address, "type": kind, "mode": "managed", "change": {"actions": actions, "before": before}}


def targets(functions: dict[str, Any]) -> dict[str, Any]:
    return {
        "env": "local",
        "region": "us-east-1",
        "bucket": "b",
        "layer_name": "acme-local-deps",
        "runtime": "python3.13",
        "architecture": "arm64",
        "alias": "live",
        "functions": functions,
    }


def test_removed_and_replaced_functions_and_layer_versions_are_listed() -> None:
    data = {
        "resource_changes": [
            change(
                'module.functions["notifier"].aws_lambda_function.this',
                "aws_lambda_function",
                ["delete"],
                {"function_name": "acme-local-notifier"},
            ),
            change(
                'module.functions["api"].aws_lambda_function.this',
                "aws_lambda_function",
                ["delete", "create"],
                {"function_name": "acme-local-api"},
            ),
            change(
                "module.layer.aws_lambda_layer_version.this",
                "aws_lambda_layer_version",
                ["create", "delete"],
                {"layer_name": "acme-local-deps", "version": "1"},
            ),
            change("aws_s3_bucket.artifacts", "aws_s3_bucket", ["update"]),
            change("aws_iam_role.x", "aws_iam_role", ["delete"], {"name": "x"}),  # not guarded
            change("aws_s3_object.y", "aws_s3_object", ["no-op"]),
        ]
    }
    saved = read_saved_plan(data, env="local", path=Path("p.tfplan"))
    assert saved.removals == (
        "remove function acme-local-notifier",
        "replace function acme-local-api",
        "replace layer version acme-local-deps:1",
    )
    assert (saved.add, saved.change, saved.destroy) == (2, 1, 4)
    assert saved.summary() == "2 to add, 1 to change, 4 to destroy"
    assert saved.planned is None  # the plan carried no deploy_targets


def test_the_planned_targets_are_the_ones_the_apply_will_make() -> None:
    value = targets({"notifier": {"name": "acme-local-notifier", "handler": "n.handler"}})
    data = {"planned_values": {"outputs": {"deploy_targets": {"sensitive": False, "value": value}}}}
    saved = read_saved_plan(data, env="local", path=Path("p.tfplan"))
    assert saved.planned is not None
    assert [fn.key for fn in saved.planned.functions] == ["notifier"]
    assert (saved.planned.runtime, saved.planned.architecture) == ("python3.13", "arm64")
    # Values only known after the apply: the run checks again then, rather than failing here.
    unknown = {"planned_values": {"outputs": {"deploy_targets": {"sensitive": False}}}}
    assert read_saved_plan(unknown, env="local", path=Path("p.tfplan")).planned is None
