"""The S3 bucket holding Terraform state: created on first use, kept versioned, encrypted,
private and reachable over TLS only; its state object's ETag tells whether Terraform wrote state since last time."""

from __future__ import annotations

import json
from typing import Any

from deploy.config import EMULATOR_STATE, EnvConfig
from deploy.errors import TerraformError


def ensure_state_bucket(env: EnvConfig) -> None:
    """Create the state bucket when missing, and make sure it is versioned (state history),
    encrypted and never public, repairing a bucket an interrupted first run left half set up."""
    from botocore.exceptions import ClientError

    from deploy.aws.calls import client

    state = env.state or (EMULATOR_STATE if env.emulator is not None else None)
    if state is None:
        return
    region = state.region or env.region
    s3 = client(env, "s3", region)
    bucket = state.bucket
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise TerraformError(f"state bucket {bucket} is not usable: {exc}") from None
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            s3.create_bucket(**kwargs)
        except ClientError as create_exc:
            if str(create_exc.response.get("Error", {}).get("Code", "")) != "BucketAlreadyOwnedByYou":
                raise TerraformError(f"cannot create state bucket {bucket}: {create_exc}") from None
    # The emulator speaks plain HTTP only, and moto enforces bucket policies: a TLS-only one there
    # would refuse every later request (Terraform's state, the deploy lock).
    _harden_state_bucket(s3, bucket, require_tls=not (env.endpoint_url or "").startswith("http://"))


#: The statement that makes the bucket refuse plain HTTP: state holds every resource's attributes.
TLS_ONLY_SID = "DenyInsecureTransport"


def tls_only_statement(bucket: str) -> dict[str, Any]:
    return {
        "Sid": TLS_ONLY_SID,
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def _require_tls(s3: Any, bucket: str) -> None:
    """Add the deny-plain-HTTP statement, keeping any statements someone else put in the policy."""
    from botocore.exceptions import ClientError

    try:
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code", "")) != "NoSuchBucketPolicy":
            raise TerraformError(f"cannot read the policy of state bucket {bucket}: {exc}") from None
        policy = {"Version": "2012-10-17", "Statement": []}
    statements = policy.get("Statement") or []
    statements = [statements] if isinstance(statements, dict) else list(statements)
    wanted = tls_only_statement(bucket)
    if wanted in statements:
        return
    policy["Statement"] = [s for s in statements if s.get("Sid") != TLS_ONLY_SID] + [wanted]
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


def _harden_state_bucket(s3: Any, bucket: str, *, require_tls: bool = True) -> None:
    """Each setting is read first and written only when missing: an existing bucket costs reads only."""
    from botocore.exceptions import ClientError

    if s3.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled":
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    block = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    try:
        current = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except ClientError:
        current = {}
    if any(not current.get(k) for k in block):
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=block)
    try:
        s3.get_bucket_encryption(Bucket=bucket)
    except ClientError:
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
    if require_tls:
        _require_tls(s3, bucket)


def state_outputs(env: EnvConfig) -> dict[str, Any] | None:
    """Reads only: the outputs recorded in the env's state object, shaped like ``terraform output -json``.

    One GET instead of ``terraform init`` + ``output`` (init copies the provider, seconds on a fresh
    runner): the remote cache only needs the artifact bucket's name before anything else runs.
    None when there is no state to read (nothing applied yet, no bucket, no access, not state v4)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from deploy.aws.calls import client

    state = env.state or (EMULATOR_STATE if env.emulator is not None else None)
    if state is None:
        return None
    s3 = client(env, "s3", state.region or env.region)
    try:
        data = json.loads(s3.get_object(Bucket=state.bucket, Key=f"env:/{env.name}/{state.key}")["Body"].read())
    except (ClientError, BotoCoreError, ValueError):
        return None
    outputs = data.get("outputs") if isinstance(data, dict) and data.get("version") == 4 else None
    return outputs if isinstance(outputs, dict) and outputs else None


def state_identity(env: EnvConfig) -> str:
    """The ETag of the env's state object (it changes whenever Terraform writes state)."""
    from botocore.exceptions import ClientError

    from deploy.aws.calls import client

    state = env.state or (EMULATOR_STATE if env.emulator is not None else None)
    if state is None:
        return "none"
    s3 = client(env, "s3", state.region or env.region)
    try:
        head = s3.head_object(Bucket=state.bucket, Key=f"env:/{env.name}/{state.key}")
    except ClientError:
        return "none"
    return str(head.get("ETag", "none"))
