"""The Terraform state bucket: created when missing, repaired when half set up, only read otherwise."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from deploy.aws import calls
from deploy.aws.state_bucket import TLS_ONLY_SID, ensure_state_bucket
from deploy.config import EnvConfig, StateSettings


def _state_env(env: EnvConfig) -> EnvConfig:
    return dataclasses.replace(env, state=StateSettings(bucket="tf-state-test", key="app/terraform.tfstate"))


def test_created_versioned_encrypted_private(env: EnvConfig, s3: Any) -> None:
    ensure_state_bucket(_state_env(env))
    assert s3.get_bucket_versioning(Bucket="tf-state-test")["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket="tf-state-test")["PublicAccessBlockConfiguration"]
    assert all(block.values())
    rules = s3.get_bucket_encryption(Bucket="tf-state-test")["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    # A second run only reads.
    with calls.count_writes() as writes:
        ensure_state_bucket(_state_env(env))
    assert writes.count == 0


def test_half_created_bucket_is_repaired(env: EnvConfig, s3: Any) -> None:
    s3.create_bucket(Bucket="tf-state-test")  # an earlier run stopped right after creating it
    with calls.count_writes() as writes:
        ensure_state_bucket(_state_env(env))
    assert set(writes.operations("s3")) == {
        "PutBucketVersioning",
        "PutPublicAccessBlock",
        "PutBucketEncryption",
        "PutBucketPolicy",
    }
    assert s3.get_bucket_versioning(Bucket="tf-state-test")["Status"] == "Enabled"


def _policy(s3: Any) -> dict[str, Any]:
    policy: dict[str, Any] = json.loads(s3.get_bucket_policy(Bucket="tf-state-test")["Policy"])
    return policy


def test_state_bucket_denies_plain_http(env: EnvConfig, s3: Any) -> None:
    ensure_state_bucket(_state_env(env))
    [statement] = _policy(s3)["Statement"]
    assert statement == {
        "Sid": TLS_ONLY_SID,
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": ["arn:aws:s3:::tf-state-test", "arn:aws:s3:::tf-state-test/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def test_existing_policy_statements_are_kept(env: EnvConfig, s3: Any) -> None:
    s3.create_bucket(Bucket="tf-state-test")
    other = {
        "Sid": "AuditorsRead",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::tf-state-test/*",
    }
    s3.put_bucket_policy(Bucket="tf-state-test", Policy=json.dumps({"Version": "2012-10-17", "Statement": [other]}))
    ensure_state_bucket(_state_env(env))
    assert [s["Sid"] for s in _policy(s3)["Statement"]] == ["AuditorsRead", TLS_ONLY_SID]
    assert _policy(s3)["Statement"][0] == other
