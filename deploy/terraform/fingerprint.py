"""Apply fingerprint: lets ``deploy`` skip a no-op apply (most of a no-change deploy's time)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from deploy.terraform.runner import Terraform


def fingerprint(tf: Terraform, *, extra: Mapping[str, str] | None = None) -> str:
    """sha256 over everything an apply depends on: configuration, var-file, variables, provider
    lock and the binary, plus ``extra``: the remote state object's ETag (``state_identity``) and,
    for the emulator, its pid (a restarted moto server has lost every resource)."""
    digest = hashlib.sha256()

    def feed(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    for path in sorted(tf.workdir.rglob("*.tf")):
        rel = path.relative_to(tf.workdir)
        if rel.parts[0].startswith((".terraform", "tests")):
            continue
        feed(str(rel), path.read_bytes())
    lock = tf.workdir / ".terraform.lock.hcl"
    feed("lock", lock.read_bytes() if lock.is_file() else b"")
    feed("var-file", tf.var_file.read_bytes())
    feed("vars", json.dumps(sorted(tf.variables.items())).encode())
    feed("binary", str(tf.binary).encode())
    feed("extra", json.dumps(sorted((extra or {}).items())).encode())
    return digest.hexdigest()


def _stamp(tf: Terraform) -> Path:
    return tf.data_dir / "last-apply.sha256"


def apply_needed(tf: Terraform, *, extra: Mapping[str, str] | None = None) -> bool:
    """False only when nothing an apply depends on changed since the last successful one."""
    try:
        return _stamp(tf).read_text().strip() != fingerprint(tf, extra=extra)
    except OSError:
        return True


def record_apply(tf: Terraform, *, extra: Mapping[str, str] | None = None) -> None:
    """Remember the fingerprint after a successful apply (the state's serial is final by then)."""
    tf.data_dir.mkdir(parents=True, exist_ok=True)
    _stamp(tf).write_text(fingerprint(tf, extra=extra) + "\n")
