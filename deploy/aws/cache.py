"""The artifact bucket as a content-addressed build cache that every machine reads through.

A layer's identity hashes everything that decides its bytes (``identity.py``) and the build is
reproducible, so the zip another runner uploaded under ``lambda/layer-<identity>.zip`` is the
zip this runner would build. Fetching it (with its manifest and SBOM) replaces the install, the
audit's install-time steps and the zip, the way Bazel's and Pants' remote caches work, with S3
as the shared store.

Checksums catch corruption and a changed object: the manifest records the zip's sha256, S3
reports the SHA-256 of what it stored (``ChecksumMode=ENABLED``), a published layer version
reports its CodeSha256, and the downloaded bytes are hashed again before anything uses them.
A disagreement is a :class:`CacheError` naming both values: it can only mean a tampered object
or a reproducibility bug, and silently rebuilding over the key would hide either. A missing
object or an unreadable bucket is only a miss, and the caller builds locally.

Checksums cannot catch a writer who replaces zip and manifest together. In the environment's
own bucket that writer can already publish a layer; a bucket shared across environments is
bound to a publisher instead (``deploy.aws.cache_trust``): its zip is used only when its sha256
is the CodeSha256 Lambda reports for the layer version the publisher published with the same
identity, and anything else is a miss. The fetched layer is audited again like a fresh
build (``build.audit_fetched_layer``: tags, ELF, secrets, real size, SBOM) before use all the
same: the publisher's own bytes get the checks this environment would run on its own build.
"""

from __future__ import annotations

import base64
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError, IncompleteReadError

from deploy.artifact import Artifact, LayerAddress, code_sha256, hex_sha256, load_manifest, manifest_artifact
from deploy.aws.retry import NOT_FOUND, error_code, error_message
from deploy.errors import BuildError, CacheError
from deploy.files import atomic_write

_CHUNK = 1 << 20
#: Ranged GETs of a cached zip: 8 MiB parts, up to 8 at once (boto3's managed download uses the same
#: part size and 10 threads; the client's pool holds 32 connections).
PART_SIZE = 8 * 1024 * 1024
MAX_CONCURRENCY = 8


@dataclass(frozen=True, kw_only=True)
class CacheHit:
    """A cached layer whose checksums agree, fetched into the local build folder."""

    artifact: Artifact
    source: str  # s3://bucket/key of the zip


@dataclass(frozen=True, kw_only=True)
class CacheMiss:
    """Nothing usable in the bucket for this identity; ``reason`` is the one line a user sees."""

    reason: str


def _head(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return dict(s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED"))
    except ClientError as exc:
        if error_code(exc) in NOT_FOUND:
            return None
        raise


def _full_object_sha256(head: dict[str, Any]) -> str | None:
    """S3's SHA-256 of the whole object, base64; None for a multipart (composite) checksum."""
    value = head.get("ChecksumSHA256")
    if not isinstance(value, str) or "-" in value or head.get("ChecksumType") == "COMPOSITE":
        return None
    return value


def _download(s3: Any, bucket: str, key: str, dest: Path) -> str:
    """Stream ``key`` into ``dest`` (atomically) and return its sha256."""
    digest = hashlib.sha256()

    def write(out: Any) -> None:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in iter(lambda: body.read(_CHUNK), b""):
            digest.update(chunk)
            out.write(chunk)

    atomic_write(dest, write)
    return digest.hexdigest()


class TruncatedDownload(OSError):
    """A ranged GET answered with fewer bytes than it asked for (a connection cut mid-body)."""


def download_parts(
    s3: Any,
    bucket: str,
    key: str,
    dest: Path,
    *,
    size: int,
    etag: str | None = None,
    part_size: int = PART_SIZE,
    concurrency: int = MAX_CONCURRENCY,
) -> str:
    """Fetch ``key`` (``size`` bytes) into ``dest`` with ranged GETs in parallel; return its sha256.

    One GET of a 40 MB zip is bound by one connection; parts over several are not. The parts are
    hashed and written in order as they arrive, so the zip is never read back to be hashed. Each
    part is pinned to ``etag`` (If-Match): an object replaced mid-download fails the download
    instead of mixing two objects' bytes. A short part raises :class:`TruncatedDownload`; on any
    failure ``dest`` is left as it was (the parts go to a temporary file renamed at the end)."""
    digest = hashlib.sha256()
    ranges = [(start, min(start + part_size, size) - 1) for start in range(0, size, part_size)]

    def part(start: int, end: int) -> bytes:
        args: dict[str, Any] = {"Bucket": bucket, "Key": key, "Range": f"bytes={start}-{end}"}
        if etag is not None:
            args["IfMatch"] = etag
        what = f"truncated: bytes {start}-{end} of {size}"
        try:
            data: bytes = s3.get_object(**args)["Body"].read()
        except IncompleteReadError as exc:  # the connection closed before the length it announced
            raise TruncatedDownload(f"{what}: {exc}") from None
        if len(data) != end - start + 1:
            raise TruncatedDownload(f"{what} gave {len(data)} bytes")
        return data

    def write(out: Any) -> None:
        if not ranges:  # an empty object: nothing to range over
            return
        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(ranges)))) as pool:
            futures = [pool.submit(part, start, end) for start, end in ranges]
            try:
                for future in futures:
                    data = future.result()
                    digest.update(data)
                    out.write(data)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

    atomic_write(dest, write)
    return digest.hexdigest()


def _parse_manifest(raw: bytes, where: str, identity: str) -> dict[str, Any]:
    """A cached manifest's JSON, refused unless it describes layer ``identity`` with a sha256."""
    try:
        manifest = json.loads(raw)
        bytes.fromhex(str(manifest["sha256"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise CacheError(f"cached manifest {where} is malformed: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != "layer" or manifest.get("identity") != identity:
        raise CacheError(
            f"cached manifest {where} describes {manifest.get('kind')} "
            f"{str(manifest.get('identity'))[:12]}, not layer {identity[:12]}"
        )
    return manifest


def published_layer(s3: Any, bucket: str, identity: str, zip_path: Path, *, published_code_sha256: str) -> Artifact:
    """The published layer ``identity`` as its cached manifest describes it, without its bytes.

    Enough to plan a deploy (identity, CodeSha256, sizes): a fresh runner whose plan turns out
    empty never downloads the layer. The manifest must record the published CodeSha256. Raises
    CacheError on a disagreement; a missing manifest or bucket is a ClientError for the caller."""
    address = LayerAddress(identity=identity, folder=zip_path.parent)
    where = f"s3://{bucket}/{address.manifest_key}"
    manifest = _parse_manifest(s3.get_object(Bucket=bucket, Key=address.manifest_key)["Body"].read(), where, identity)
    if code_sha256(str(manifest["sha256"])) != published_code_sha256:
        raise CacheError(
            f"{where} records sha256 {str(manifest['sha256'])[:16]}…, but the published layer version with this "
            f"identity has CodeSha256 sha256 {hex_sha256(published_code_sha256)[:16]}…",
            hint="one identity built into two different zips: a reproducibility bug; report it",
        )
    try:
        return manifest_artifact(manifest, zip_path, where=where)
    except BuildError as exc:
        raise CacheError(exc.message) from None


def fetch_layer(
    s3: Any,
    bucket: str,
    identity: str,
    layers_dir: Path,
    *,
    published_code_sha256: str | None = None,
    trusted_code_sha256: str | None = None,
    parallel_parts: bool = True,
) -> CacheHit | CacheMiss:
    """Fetch the layer ``identity`` from ``bucket`` into ``layers_dir``, or say why not.

    ``published_code_sha256`` is the CodeSha256 of a layer version this environment published
    with this identity, when there is one: the cached bytes must be those bytes too, and a
    disagreement is a CacheError. ``trusted_code_sha256`` is the CodeSha256 a publisher vouches
    for (the shared bucket): other bytes are only a miss, since this environment then builds its
    own and uses nothing the publisher did not publish.

    ``parallel_parts=False`` fetches the zip in one GET: the emulator (moto) copies the whole object
    under a lock for every ranged GET, so parts multiply its work where S3 serves them in parallel.
    """
    address = LayerAddress(identity=identity, folder=layers_dir)
    where = f"s3://{bucket}/{address.zip_key}"
    try:
        try:
            manifest_raw = s3.get_object(Bucket=bucket, Key=address.manifest_key)["Body"].read()
        except ClientError as exc:
            if error_code(exc) not in NOT_FOUND:
                raise
            return CacheMiss(reason=f"no cached manifest for layer {identity[:12]} in s3://{bucket}")
        zip_head = _head(s3, bucket, address.zip_key)
        if zip_head is None:
            return CacheMiss(reason=f"the cached manifest for layer {identity[:12]} has no zip beside it")
    except ClientError as exc:
        return CacheMiss(reason=f"artifact bucket {bucket} unreadable ({error_message(exc)})")
    except BotoCoreError as exc:
        return CacheMiss(reason=f"artifact bucket {bucket} unreachable ({exc})")

    manifest = _parse_manifest(manifest_raw, f"s3://{bucket}/{address.manifest_key}", identity)
    expected_hex = str(manifest["sha256"])
    expected_b64 = code_sha256(expected_hex)
    stored = _full_object_sha256(zip_head)
    if stored is not None and stored != expected_b64:
        raise CacheError(
            f"{where} has S3 checksum sha256 {hex_sha256(stored)[:16]}…, but its manifest records {expected_hex[:16]}…",
            hint="the cached object was changed after upload; delete both objects (or rerun with "
            "--no-remote-cache) after finding out why",
        )
    if trusted_code_sha256 is not None and trusted_code_sha256 != expected_b64:
        return CacheMiss(
            reason=f"{where} (sha256 {expected_hex[:16]}…) is not what the publisher published with this "
            f"identity (CodeSha256 sha256 {hex_sha256(trusted_code_sha256)[:16]}…): not used"
        )
    if published_code_sha256 is not None and published_code_sha256 != expected_b64:
        raise CacheError(
            f"{where}'s manifest records sha256 {expected_hex[:16]}…, but the published layer version with "
            f"this identity has CodeSha256 sha256 {hex_sha256(published_code_sha256)[:16]}…",
            hint="one identity built into two different zips: a reproducibility bug; report it",
        )

    layers_dir.mkdir(parents=True, exist_ok=True)
    zip_path, manifest_path, sbom_path = address.zip_path, address.manifest_path, address.sbom_path

    def fetch_sbom() -> CacheMiss | None:
        try:
            _download(s3, bucket, address.sbom_key, sbom_path)
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND:
                return CacheMiss(reason=f"the cached layer {identity[:12]} has no SBOM beside it")
            raise
        return None

    def discard() -> None:
        for path in (manifest_path, zip_path, sbom_path):
            path.unlink(missing_ok=True)

    size = int(zip_head["ContentLength"])
    try:
        # The SBOM (small) comes beside the zip's parts rather than after them.
        with ThreadPoolExecutor(max_workers=1) as beside:
            sbom = beside.submit(fetch_sbom)
            got = download_parts(
                s3,
                bucket,
                address.zip_key,
                zip_path,
                size=size,
                etag=zip_head.get("ETag"),
                part_size=PART_SIZE if parallel_parts else max(size, 1),
            )
            sbom_missing = sbom.result()
    except (ClientError, BotoCoreError, Boto3Error, OSError) as exc:
        discard()
        return CacheMiss(reason=f"download of {where} failed ({error_message(exc)})")
    if sbom_missing is not None:
        discard()
        return sbom_missing
    if got != expected_hex:
        discard()
        raise CacheError(
            f"{where} downloaded with sha256 {got[:16]}…, but its manifest records {expected_hex[:16]}…",
            hint="the object changed while it was read, or the transfer was corrupted; rerun",
        )
    # The manifest goes last: a local manifest vouches for a complete zip and nothing less.
    manifest["path"] = zip_path.name
    text = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    try:
        atomic_write(manifest_path, lambda out: out.write(text))
        artifact = load_manifest(manifest_path)
        # Hashed while it downloaded (``got``): recorded, so the build's reuse check reads it no more.
        artifact.remember_hashed(got)
    except (OSError, BuildError) as exc:
        discard()
        raise CacheError(f"cached manifest s3://{bucket}/{address.manifest_key} is unusable: {exc}") from None
    return CacheHit(artifact=artifact, source=where)


def sidecars_present(s3: Any, bucket: str, address: LayerAddress) -> bool:
    """Reads only: are the manifest and SBOM of the layer at ``address`` beside its zip?"""
    return _head(s3, bucket, address.manifest_key) is not None and _head(s3, bucket, address.sbom_key) is not None


def upload_sidecars(s3: Any, bucket: str, artifact: Artifact, sbom_path: Path) -> None:
    """Put the manifest and SBOM beside the uploaded zip, so any machine can reuse the build.

    The manifest goes last: a reader treats "manifest present" as "cache entry complete"."""
    address = artifact.address
    for key, path in ((address.sbom_key, sbom_path), (address.manifest_key, artifact.manifest_path)):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CacheError(
                f"cannot read {path} to upload it beside the layer: {exc.strerror}",
                hint="run `inv build-layer` again: it writes the manifest and SBOM beside the zip",
            ) from None
        digest = base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")
        try:
            s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=data,
                ContentType="application/json",
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=digest,
            )
        except (ClientError, BotoCoreError) as exc:
            raise CacheError(f"upload of {path.name} to s3://{bucket}/{key} failed: {error_message(exc)}") from None
