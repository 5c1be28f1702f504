"""What the build refuses as a secret: by name, through links, and by content.

Names: one list for the layer and the function zip (``refused_name``). Content of the function
zip: ``detect-secrets`` (a maintained scanner: AWS keys, private keys, high-entropy strings,
secret-keyword assignments, basic-auth URLs, vendor tokens) over exactly the bytes that will be
written, links resolved; reviewed false positives live in the committed ``.secrets.baseline``,
keyed by path from the repository root, so the standard ``detect-secrets scan`` / ``audit``
commands maintain it.

The layer keeps a cheaper content check (``deploy.audit``): detect-secrets over the real
backend layer took 186 s (against 0.4 s) and reported 282 false positives in boto3, botocore,
pydantic, sqlalchemy and urllib3; the layer's files come from hash-pinned wheels installed into
a fresh temporary folder, never from a working tree where a developer's secrets live.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.errors import AuditError

#: Files that hold credentials by their very name (matched on the last path part).
REFUSED_NAMES = (
    ".env",
    ".env.*",
    "*.env",
    ".netrc",
    "_netrc",
    ".pypirc",
    ".npmrc",
    "secrets.*",
    "credentials*",
    "id_rsa*",
    "id_ed25519*",
    "id_ecdsa*",
    "id_dsa*",
    "*.key",
    "*.p12",
    "*.pfx",
)
REFUSED_DIRS = frozenset({".aws", ".ssh"})
#: Templates that document variables without values.
SAFE_TEMPLATES = frozenset({".env.example", ".env.sample", ".env.template"})
#: ``credentials.py`` / ``secrets.py`` are module names (botocore.credentials): code, whose content
#: the scanner reads, not a credentials file.
_CODE_SUFFIXES = (".py",)
_CODE_EXEMPT = ("secrets.*", "credentials*")

#: Any of REFUSED_NAMES at once: one match per file instead of sixteen (a layer has 4,000 files);
#: which one matched is looked up only for a file that does.
_ANY_REFUSED = re.compile("|".join(fnmatch.translate(pattern) for pattern in REFUSED_NAMES))

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
_PUBLIC_PEM = frozenset({b"CERTIFICATE", b"TRUSTED CERTIFICATE", b"X509 CRL", b"PUBLIC KEY", b"RSA PUBLIC KEY"})
_PEM_LIMIT = 32 * 1024 * 1024

#: detect-secrets plugins we run: all of its secret detectors (IPPublicDetector finds addresses,
#: not secrets).
PLUGINS = (
    "ArtifactoryDetector",
    "AWSKeyDetector",
    "AzureStorageKeyDetector",
    "BasicAuthDetector",
    "CloudantDetector",
    "DiscordBotTokenDetector",
    "GitHubTokenDetector",
    "GitLabTokenDetector",
    "Base64HighEntropyString",
    "HexHighEntropyString",
    "IbmCloudIamDetector",
    "IbmCosHmacDetector",
    "JwtTokenDetector",
    "KeywordDetector",
    "MailchimpDetector",
    "NpmDetector",
    "OpenAIDetector",
    "PrivateKeyDetector",
    "PypiTokenDetector",
    "SendGridDetector",
    "SlackDetector",
    "SoftlayerDetector",
    "SquareOAuthDetector",
    "StripeDetector",
    "TelegramBotTokenDetector",
    "TwilioKeyDetector",
)
BASELINE_NAME = ".secrets.baseline"


def refused_name(rel: str, path: str | Path | None = None) -> str | None:
    """Why a file is refused by its name (posix ``rel``), or None; reads ``path`` only for a PEM."""
    parts = rel.split("/")
    hidden = REFUSED_DIRS.intersection(parts[:-1])
    if hidden:
        return f"is inside a {sorted(hidden)[0]} folder"
    name = parts[-1]
    if name in SAFE_TEMPLATES:
        return None
    if name.endswith(".pem"):
        # CA bundles (certifi, botocore) are public certificates every HTTPS client ships.
        if path is None:
            return "is a PEM file"
        with open(path, "rb") as fh:  # noqa: PTH123 - the audit passes strings
            blocks = set(_PEM_BLOCK.findall(fh.read(_PEM_LIMIT)))
        if not blocks or not blocks <= _PUBLIC_PEM:
            return "is a PEM file that is not only certificates or public keys"
        return None
    if _ANY_REFUSED.match(name) is None:
        return None
    for pattern in REFUSED_NAMES:
        if pattern in _CODE_EXEMPT and name.endswith(_CODE_SUFFIXES):
            continue
        if fnmatch.fnmatchcase(name, pattern):
            return f"is named like a secret ({pattern})"
    return None


@dataclass(frozen=True, kw_only=True)
class Finding:
    name: str  # path from the repository root, as the baseline names it
    line: int
    kind: str  # detect-secrets' type, e.g. "AWS Access Key"
    hashed_secret: str

    def __str__(self) -> str:
        return f"{self.name}:{self.line} {self.kind}"


def reviewed(baseline: Path) -> frozenset[tuple[str, str]]:
    """(file, hashed secret) pairs someone reviewed as not secret: ``is_secret: true`` ones never count."""
    if not baseline.is_file():
        return frozenset()
    try:
        data = json.loads(baseline.read_text(encoding="utf-8"))
        results = data["results"]
        return frozenset(
            (name, item["hashed_secret"])
            for name, items in results.items()
            for item in items
            if item.get("is_secret") is not True
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise AuditError(
            f"{baseline} is not a detect-secrets baseline: {exc}",
            hint="regenerate it with `detect-secrets scan --baseline .secrets.baseline`",
        ) from None


def scan(files: Iterable[tuple[str, Path]]) -> list[Finding]:
    """detect-secrets over each (name, path): ``name`` is how findings and the baseline refer to it."""
    from detect_secrets.core.scan import scan_file
    from detect_secrets.settings import transient_settings

    out: list[Finding] = []
    with transient_settings({"plugins_used": [{"name": p} for p in PLUGINS]}):
        for name, path in files:
            out += [
                Finding(name=name, line=s.line_number, kind=s.type, hashed_secret=s.secret_hash)
                for s in scan_file(str(path))
            ]
    return out


def _verdict_keys(files: Sequence[tuple[str, Path]], baseline: Path) -> dict[str, str]:
    """Each file's verdict key: what decides it (the scanner's version and plugins, the baseline, the
    name the baseline knows it by, its bytes)."""
    from importlib.metadata import version

    common = hashlib.sha256(f"{version('detect-secrets')}\0{','.join(PLUGINS)}\0".encode())
    common.update(baseline.read_bytes() if baseline.is_file() else b"")
    keys = {}
    for name, path in files:
        digest = common.copy()
        digest.update(f"\0{name}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
        keys[name] = digest.hexdigest()
    return keys


def check_content(files: Sequence[tuple[str, Path]], *, baseline: Path, remember: bool = True) -> None:
    """Refuse the files if the scanner finds a secret the baseline does not list as reviewed.

    A clean verdict is remembered per file in the machine's content cache, keyed by everything that
    decides it: the scan was most of a no-op build-function (and so of ``inv status``), and in a
    code-only change one file of the zip is new, so only that one is scanned (the whole zip's 16 files
    took 0.3 s). A refusal is never remembered; the cache is trusted as the ``.pyc`` cache is."""
    from deploy.content_cache import default_cache

    cache = default_cache() if remember else None
    markers: dict[str, Path] = {}
    if cache is not None:
        markers = {name: cache.root / "secret-scan" / key for name, key in _verdict_keys(files, baseline).items()}
    unjudged = [(name, path) for name, path in files if name not in markers or not markers[name].is_file()]
    if not unjudged:
        return
    allowed = reviewed(baseline)
    findings = [f for f in scan(unjudged) if (f.name, f.hashed_secret) not in allowed]
    if findings:
        raise AuditError(
            f"refusing to package {len(findings)} secret(s) found by detect-secrets:\n  "
            + "\n  ".join(str(f) for f in findings),
            hint=f"remove the secret; if it is a reviewed false positive, record it in {baseline.name} with "
            "`detect-secrets scan --baseline .secrets.baseline` and `detect-secrets audit .secrets.baseline`",
        )
    for name, _ in unjudged:
        if name in markers:
            with contextlib.suppress(OSError):
                markers[name].parent.mkdir(parents=True, exist_ok=True)
                markers[name].touch()
