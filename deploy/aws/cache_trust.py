"""What vouches for a layer in a bucket another environment writes: the publisher's own layer version.

Production reads staging's bucket by identity, and whoever can write that bucket could put any
zip (with a consistent manifest) under the key. The witness is Lambda: a layer version in the
publisher's account carries the CodeSha256 of the bytes it was published from, and a writer of
the bucket cannot publish one there. Finding that version by listing needs
``lambda:ListLayerVersions``, which a layer version permission cannot grant to another account;
``lambda:GetLayerVersion`` it can (``share.accounts`` on the publisher, ``deploy.aws.share``).

So the publisher, right after publishing, writes a pointer beside the zip
(``lambda/layer-<identity>.published.json``: the version's ARN, its CodeSha256, the identity).
The pointer lives in the bucket and is trusted for nothing but where to look: its ARN must be a
version of the configured publisher layer (same partition, region, account and name), Lambda is
asked for that version (GetLayerVersion on the ARN, the same permission and answer as
GetLayerVersionByArn, which the emulator lacks), and the CodeSha256 returned is used only when
Lambda's description carries the same identity and Lambda's CodeSha256 is the pointer's. Every
disagreement, a missing version or a refusal is a :class:`~deploy.aws.cache.CacheMiss` naming
why, and the reader builds its own layer. Without a pointer (a publisher from before pointers,
or a publish interrupted before it), the listing is tried: it still works within one account.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from deploy.artifact import hex_sha256, layer_key
from deploy.aws.cache import CacheMiss
from deploy.aws.retry import error_message
from deploy.errors import CacheError
from deploy.lambda_facts import parse_layer_version_arn

POINTER_SUFFIX = ".published.json"
#: A pointer is three short fields; anything much bigger is not one (and is not read whole).
_POINTER_MAX = 4096


@dataclass(frozen=True, kw_only=True)
class Pointer:
    """What the publisher says it published for ``identity``; only a hint until Lambda agrees."""

    identity: str
    layer_version_arn: str
    code_sha256: str  # base64, as Lambda reports it

    def to_json(self) -> bytes:
        fields = {
            "identity": self.identity,
            "layer_version_arn": self.layer_version_arn,
            "code_sha256": self.code_sha256,
        }
        return (json.dumps(fields, indent=2, sort_keys=True) + "\n").encode()


@dataclass(frozen=True, kw_only=True)
class NoPointer(CacheMiss):
    """No pointer could be read (absent, or a bucket that refuses it): the listing is tried instead."""


def pointer_key(identity: str) -> str:
    """Beside ``lambda/layer-<identity>.zip``, so the readers' ``lambda/layer-*`` grant covers it."""
    return layer_key(identity, POINTER_SUFFIX)


def write_pointer(s3: Any, bucket: str, pointer: Pointer) -> None:
    """Record, beside the zip, the layer version just published from it (the publisher's side)."""
    key = pointer_key(pointer.identity)
    try:
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=pointer.to_json(),
            ContentType="application/json",
            ChecksumAlgorithm="SHA256",
        )
    except (ClientError, BotoCoreError) as exc:
        raise CacheError(f"writing s3://{bucket}/{key} failed: {error_message(exc)}") from None


def read_pointer(s3: Any, bucket: str, identity: str) -> Pointer | CacheMiss:
    """The pointer for ``identity`` as the bucket holds it: parsed, not yet believed."""
    where = f"s3://{bucket}/{pointer_key(identity)}"
    try:
        raw = s3.get_object(Bucket=bucket, Key=pointer_key(identity))["Body"].read(_POINTER_MAX + 1)
    except (ClientError, BotoCoreError) as exc:
        return NoPointer(reason=f"no publisher pointer readable at {where} ({error_message(exc)})")
    try:
        if len(raw) > _POINTER_MAX:
            raise ValueError(f"over {_POINTER_MAX} bytes")
        data = json.loads(raw)
        pointer = Pointer(
            identity=str(data["identity"]),
            layer_version_arn=str(data["layer_version_arn"]),
            code_sha256=str(data["code_sha256"]),
        )
        hex_sha256(pointer.code_sha256)
    except (ValueError, KeyError, TypeError) as exc:
        return CacheMiss(reason=f"publisher pointer {where} is malformed ({exc}): not used")
    if pointer.identity != identity:
        return CacheMiss(reason=f"publisher pointer {where} names identity {pointer.identity[:12]}: not used")
    return pointer


def confirmed_code_sha256(lam: Any, publisher: str, pointer: Pointer) -> str | CacheMiss:
    """Reads only: the CodeSha256 Lambda reports for the version ``pointer`` names, when that version
    is one of ``publisher`` (an ARN without a version) and Lambda agrees with the pointer on the
    identity and the bytes; otherwise a miss saying which of them it is."""
    arn = pointer.layer_version_arn
    parsed = parse_layer_version_arn(arn)
    if parsed is None:
        return CacheMiss(reason=f"the publisher pointer names {arn!r}, not a layer version ARN: not used")
    if parsed.base != publisher:
        return CacheMiss(
            reason=f"the publisher pointer names {arn} (account {parsed.account}), not a version of "
            f"publisher {publisher}: not used"
        )
    try:
        got = lam.get_layer_version(LayerName=parsed.base, VersionNumber=parsed.version)
    except ClientError as exc:
        return CacheMiss(reason=f"publisher version {arn} unreadable ({error_message(exc)})")
    except BotoCoreError as exc:
        return CacheMiss(reason=f"publisher version {arn} unreachable ({exc})")
    from deploy.aws.publish import identity_from_description  # publish imports this module

    said = identity_from_description(got.get("Description"))
    lambdas = str(got.get("Content", {}).get("CodeSha256", ""))
    if got.get("LayerVersionArn") != arn or said != pointer.identity:
        return CacheMiss(
            reason=f"publisher version {arn} was published for layer {str(said)[:12]}, "
            f"not {pointer.identity[:12]}: not used"
        )
    if lambdas != pointer.code_sha256:
        return CacheMiss(
            reason=f"the publisher pointer for {arn} says CodeSha256 {pointer.code_sha256}, Lambda says "
            f"{lambdas or 'none'}: not used"
        )
    return lambdas


def vouched_code_sha256(s3: Any, bucket: str, lam: Any, publisher: str, identity: str) -> str | CacheMiss:
    """Reads only: the CodeSha256 ``publisher`` vouches for under ``identity`` in the shared ``bucket``.

    ``lam`` is a Lambda client in the publisher's region. The pointer is the way across accounts; a
    bucket without one falls back to listing the publisher's versions (one account only)."""
    pointer = read_pointer(s3, bucket, identity)
    if isinstance(pointer, Pointer):
        return confirmed_code_sha256(lam, publisher, pointer)
    if not isinstance(pointer, NoPointer):
        return pointer  # a pointer that is there but wrong is not a reason to look elsewhere
    from deploy.aws.publish import publisher_code_sha256  # publish imports this module

    listed = publisher_code_sha256(lam, publisher, identity)
    if isinstance(listed, CacheMiss):
        return CacheMiss(reason=f"{pointer.reason}; {listed.reason}")
    return listed
