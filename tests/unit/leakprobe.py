"""A layer package and a handler that, on import, write every credential they can reach to a file.

Shared by the local and the deployed isolation tests. Besides the environment and ``$HOME``, the
probe tries the routes the jail (``deploy.verify.jail``) closes: every ``/proc/*/environ`` it can
read (a deployer process started with the canaries stands for ``inv``'s parent in CI), the home
``pwd`` knows, and a TCP connect to the instance metadata address.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import pwd
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from deploy.config import SmokeCase
from deploy.verify import jail, sandbox

#: What a deployer's machine or a CI job holds; each value is distinctive so a leak is unambiguous.
HOST_SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAHOSTLEAKCANARY01",
    "AWS_SECRET_ACCESS_KEY": "host-secret-canary-0123456789abcdefghijklmnop",
    "AWS_SESSION_TOKEN": "host-session-token-canary",
    "AWS_PROFILE": "host-profile-canary",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/host-container-canary",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN": "host-container-token-canary",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "/host-web-identity-canary",
    "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/host-role-canary",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "host-oidc-request-canary",
    "ACTIONS_ID_TOKEN_REQUEST_URL": "http://127.0.0.1:1/host-oidc-url-canary",
    "GITHUB_TOKEN": "ghs_hostgithubtokencanary",
}
FILE_SECRET = "AKIAHOMEFILECANARY01"

#: Imported by the layer package and the handler alike: collect every credential in reach.
SNOOP = """
import glob, json, os, pwd, socket, urllib.request

def collect(who):
    found = {"who": who, "env": dict(os.environ), "files": {}}
    paths = glob.glob(os.path.expanduser("~/.aws/*")) + [os.path.expanduser("~/.netrc")]
    paths += [os.environ.get(v, "") for v in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")]
    for path in paths:
        try:
            with open(path) as fh:
                found["files"][path] = fh.read()
        except OSError:
            pass
    real_home = pwd.getpwuid(os.getuid()).pw_dir
    found["real_home"] = sorted(os.listdir(real_home)) if os.path.isdir(real_home) else []
    for path in [os.path.join(real_home, ".aws", "credentials"), os.path.join(real_home, ".netrc")]:
        try:
            with open(path) as fh:
                found["files"][path] = fh.read()
        except OSError:
            pass
    found["environs"] = {}
    for path in glob.glob("/proc/[0-9]*/environ"):
        try:
            with open(path, "rb") as fh:
                found["environs"][path] = fh.read().decode("utf-8", "replace")
        except OSError:
            pass
    try:
        socket.create_connection(("169.254.169.254", 80), timeout=0.5).close()
        found["metadata_tcp"] = "connected"
    except OSError as exc:
        found["metadata_tcp"] = exc.errno
    try:
        url = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
        found["metadata"] = urllib.request.urlopen(url, timeout=0.5).read().decode()
    except Exception as exc:
        found["metadata"] = repr(exc)
    try:
        import boto3
        creds = boto3.Session().get_credentials()
        found["boto3"] = list(creds.get_frozen_credentials()) if creds else None
    except Exception as exc:
        found["boto3"] = repr(exc)
    with open(os.environ["LEAK_FILE"], "a") as fh:
        fh.write(json.dumps(found, default=str) + "\\n")
"""
LAYER = {"python/snoop/__init__.py": SNOOP + "\ncollect('layer')\n"}
HANDLER = """
import snoop
snoop.collect("handler")

def handler(event, context):
    return {"ok": True}
"""
FUNCTION = {"lambdas/__init__.py": "", "lambdas/ok/__init__.py": "", "lambdas/ok/handler.py": HANDLER}
CASES = (SmokeCase(name="answer", event={}, expect={"equals": {"ok": True}}),)


def set_host_credentials(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """The deployer's machine: credentials in the environment and in ~/.aws and ~/.netrc."""
    for name, value in HOST_SECRETS.items():
        monkeypatch.setenv(name, value)
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(
        f"[default]\naws_access_key_id = {FILE_SECRET}\naws_secret_access_key = home-file-secret-canary\n"
    )
    (home / ".netrc").write_text("machine example.com login me password home-netrc-canary\n")
    monkeypatch.setenv("HOME", str(home))


@contextmanager
def deployer_process() -> Iterator[None]:
    """A process started with the canaries in its environment, alive during the run (``inv``'s parent in CI).

    ``/proc/<pid>/environ`` shows a process's environment as it was at exec, so setting variables in
    the test's own process would not put them there.
    """
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
        env={**os.environ, **HOST_SECRETS},
    )
    try:
        yield
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)


def let_leak_file_out(monkeypatch: pytest.MonkeyPatch, leak_file: Path) -> None:
    """The jail hides /tmp: re-bind the (empty) folder of the leak file read-write, so the probe's findings
    reach the test. Nothing else is added to the jail."""
    leak_file.parent.mkdir(parents=True, exist_ok=True)
    real = jail.argv_prefix

    def with_leak_dir(spec: jail.Jail, **kwargs: str) -> list[str]:
        return real(dataclasses.replace(spec, read_write=(*spec.read_write, leak_file.parent)), **kwargs)

    monkeypatch.setattr(sandbox, "argv_prefix", with_leak_dir)


def _allowed_in_real_home(python: Path) -> set[str]:
    """The real home's entries the jail re-binds: the first folder of the interpreter's prefix under it."""
    home = Path(pwd.getpwuid(os.getuid()).pw_dir).resolve()
    needed = [python.resolve().parents[1], Path(sys.prefix).resolve()]
    return {p.relative_to(home).parts[0] for p in needed if p.is_relative_to(home) and p != home}


def assert_no_leak(leak_file: Path, *, python: Path, network: bool) -> list[dict[str, Any]]:
    """``network``: the sandbox shares the host's network (local, with an emulator)."""
    text = leak_file.read_text()
    records = [json.loads(line) for line in text.splitlines()]
    assert {r["who"] for r in records} == {"layer", "handler"}  # both ran: the test is not vacuous
    for canary in [*HOST_SECRETS.values(), FILE_SECRET, "home-file-secret-canary", "home-netrc-canary"]:
        assert canary not in text, f"the probe found {canary!r}"
    for record in records:
        # Its own PID namespace: the only processes it sees are its own (bwrap's init, the emulator's
        # relay when there is an emulator, and itself).
        assert len(record["environs"]) <= 3, sorted(record["environs"])
        assert set(record["real_home"]) <= _allowed_in_real_home(python), record["real_home"]
        if not network:
            assert record["metadata_tcp"] == errno.ENETUNREACH
        env = record["env"]
        assert env["AWS_EC2_METADATA_DISABLED"] == "true"
        assert not any(k.startswith(("AWS_CONTAINER_", "ACTIONS_ID_TOKEN_")) for k in env)
        assert "AWS_PROFILE" not in env and "AWS_WEB_IDENTITY_TOKEN_FILE" not in env and "GITHUB_TOKEN" not in env
        assert all(content == "" for content in record["files"].values())
    return records
