"""The Lambda facts every module imports: one ARN parser, one key format, one set of limits."""

from __future__ import annotations

import base64
import hashlib

from deploy import audit, lambda_facts


def test_layer_version_arn_parts() -> None:
    parsed = lambda_facts.parse_layer_version_arn("arn:aws:lambda:eu-west-1:123456789012:layer:acme-deps:17")
    assert parsed is not None
    assert (parsed.base, parsed.region, parsed.account, parsed.name, parsed.version) == (
        "arn:aws:lambda:eu-west-1:123456789012:layer:acme-deps",
        "eu-west-1",
        "123456789012",
        "acme-deps",
        17,
    )
    assert lambda_facts.parse_layer_version_arn("arn:aws-cn:lambda:cn-north-1:123456789012:layer:x:1") is not None


def test_not_a_layer_version_arn() -> None:
    for arn in (
        "arn:aws:lambda:eu-west-1:123456789012:layer:acme-deps",  # no version
        "arn:aws:lambda:eu-west-1:123456789012:function:acme:1",
        "arn:aws:lambda:eu-west-1:12345:layer:acme:1",
        "acme-deps:3",
    ):
        assert lambda_facts.parse_layer_version_arn(arn) is None, arn


def test_function_key_from_hex_and_from_code_sha() -> None:
    digest = hashlib.sha256(b"zip bytes").digest()
    assert lambda_facts.function_key(digest.hex()) == f"lambda/function-{digest.hex()}.zip"
    assert lambda_facts.function_key_for_code_sha(base64.b64encode(digest).decode()) == lambda_facts.function_key(
        digest.hex()
    )


def test_limits_are_the_ones_the_audit_enforces() -> None:
    assert audit.LAMBDA_UNZIPPED_LIMIT is lambda_facts.LAMBDA_UNZIPPED_LIMIT == 262_144_000
    assert audit.MAX_LAYERS == lambda_facts.MAX_LAYERS == 5
