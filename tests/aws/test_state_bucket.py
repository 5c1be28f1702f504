"""The Terraform state bucket: created when missing, repaired when half set up, only read otherwise."""

from __future__ import annotations

import dataclasses
from typing import Any

from deploy.aws import calls
from deploy.aws.state_bucket import ensure_state_bucket
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
    assert set(writes.operations("s3")) == {"PutBucketVersioning", "PutPublicAccessBlock", "PutBucketEncryption"}
    assert s3.get_bucket_versioning(Bucket="tf-state-test")["Status"] == "Enabled"
