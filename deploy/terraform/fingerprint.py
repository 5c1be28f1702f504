"""Apply fingerprints: let ``deploy`` skip a no-op apply (most of a no-change deploy's time).

Two of them. :func:`config_digest` covers what Terraform is given (configuration, provider lock,
var-file, variables) and nothing of the machine, so it is the same on every clone: Terraform
records it in the state (the ``deploy_config_digest`` variable, echoed as an output), and a fresh
runner or ``inv status`` compares it with one GET instead of a ``terraform plan``. :func:`fingerprint`
adds this machine's binary and the state object's ETag (and, for the emulator, its pid), and is
remembered in the data dir after an apply: the fastest "nothing changed" there is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deploy.terraform.runner import Terraform

#: The root module's variable (and output) that records the digest of the configuration applied.
DIGEST_VARIABLE = "deploy_config_digest"


def config_digest(workdir: Path, var_file: Path, variables: Mapping[str, str]) -> str:
    """sha256 over the configuration, the provider lock, the var-file and the variables (but itself)."""
    digest = hashlib.sha256()

    def feed(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    for path in sorted(workdir.rglob("*.tf")):
        rel = path.relative_to(workdir)
        if rel.parts[0].startswith((".terraform", "tests")):
            continue
        feed(rel.as_posix(), path.read_bytes())
    lock = workdir / ".terraform.lock.hcl"
    feed("lock", lock.read_bytes() if lock.is_file() else b"")
    feed("var-file", var_file.read_bytes())
    feed("vars", json.dumps(sorted((k, v) for k, v in variables.items() if k != DIGEST_VARIABLE)).encode())
    return digest.hexdigest()


def fingerprint(tf: Terraform, *, extra: Mapping[str, str] | None = None) -> str:
    """:func:`config_digest` plus the binary and ``extra``: the remote state object's ETag
    (``state_identity``) and, for the emulator, its pid (a restarted moto server has lost every resource)."""
    digest = hashlib.sha256(config_digest(tf.workdir, tf.var_file, tf.variables).encode())
    digest.update(f"\0binary\0{tf.binary}".encode())
    digest.update(b"\0extra\0" + json.dumps(sorted((extra or {}).items())).encode())
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


def applied_digest(outputs: Mapping[str, object] | None) -> str | None:
    """The configuration digest the state records (``terraform output -json`` shaped outputs), if any."""
    raw = (outputs or {}).get(DIGEST_VARIABLE)
    value = raw.get("value") if isinstance(raw, Mapping) else raw
    return value if isinstance(value, str) and value else None
