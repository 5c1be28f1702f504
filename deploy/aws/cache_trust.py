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

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from deploy.aws.cache import CacheMiss
from deploy.aws.cache_pointer import NoPointer, Pointer, read_pointer
from deploy.aws.publish import identity_from_description, publisher_code_sha256
from deploy.aws.retry import error_message
from deploy.lambda_facts import parse_layer_version_arn


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
    listed = publisher_code_sha256(lam, publisher, identity)
    if isinstance(listed, CacheMiss):
        return CacheMiss(reason=f"{pointer.reason}; {listed.reason}")
    return listed
