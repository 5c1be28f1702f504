"""End to end through bwrap (and, without it, through the emulator's fallback): what code under verify reaches.

A handler tries the host's routes out: Unix sockets the test listens on in /run, /var/run, /var/tmp,
$XDG_RUNTIME_DIR and /tmp (on CI the Docker socket lives in /run), /dev/tty, other processes'
environments, the real homes and the metadata address, and writes what it found to the one folder
the test lets out. A second handler uses only what Lambda's runtime has (TLS roots, sqlite in TMPDIR,
its user's name, time zones, boto3) and must still pass.
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from deploy import verify
from deploy.config import EmulatorSettings, EnvConfig, FunctionTarget, SmokeCase, VerifySettings
from tests.unit import leakprobe
from tests.unit.test_verify import HOST_ARCH, zip_artifact

ESCAPE = """
import getpass, glob, json, os, socket

def attempt(fn):
    try:
        return ["ok", fn()]
    except OSError as exc:
        return ["error", exc.errno]

def connect_unix(path):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(2)
        sock.connect(path)
    return "connected"

def read_environs():
    out = {}
    for path in glob.glob("/proc/[0-9]*/environ"):
        try:
            with open(path, "rb") as fh:
                out[path] = fh.read().decode("utf-8", "replace")
        except OSError:
            pass
    return out

def handler(event, context):
    found = {
        "sockets": {p: attempt(lambda p=p: connect_unix(p)) for p in json.loads(os.environ["PROBE_SOCKETS"])},
        "tty": attempt(lambda: open("/dev/tty").close()),
        "environs": read_environs(),
        "homes": {h: attempt(lambda h=h: sorted(os.listdir(h))) for h in json.loads(os.environ["REAL_HOMES"])},
        "metadata": attempt(lambda: socket.create_connection(("169.254.169.254", 80), timeout=1).close()),
        "root": sorted(os.listdir("/")),
        "dev": sorted(os.listdir("/dev")),
        "uid": os.getuid(),
        "user": getpass.getuser(),
        "caps": open("/proc/self/status").read().split("CapEff:")[1].split()[0],
    }
    if os.environ.get("ABSTRACT_SOCKET"):
        found["abstract"] = attempt(lambda: connect_unix("\\0" + os.environ["ABSTRACT_SOCKET"]))
    if os.environ.get("OTHER_PORT"):
        other = ("127.0.0.1", int(os.environ["OTHER_PORT"]))
        found["other_port"] = attempt(lambda: socket.create_connection(other, timeout=2).close())
    endpoint = os.environ["AWS_ENDPOINT_URL"].rsplit("/", 1)[-1].rsplit(":", 1)
    found["endpoint"] = attempt(lambda: socket.create_connection((endpoint[0], int(endpoint[1])), timeout=2).close())
    with open(os.environ["LEAK_FILE"], "w") as fh:
        json.dump(found, fh)
    return {"ok": True}
"""

RUNTIME_ONLY = """
import ctypes, getpass, hashlib, os, sqlite3, ssl, tempfile, uuid, zoneinfo
import boto3

def handler(event, context):
    db = sqlite3.connect(os.path.join(tempfile.gettempdir(), "t.db"))
    db.execute("create table t (x)")
    db.commit()
    with open(os.devnull, "w") as null:
        null.write("x")
    return {
        "tls_roots": ssl.create_default_context().cert_store_stats()["x509_ca"] > 0,
        "user": bool(getpass.getuser()),  # its user has a name (an account file in the jail)
        "tz": str(zoneinfo.ZoneInfo("Europe/Paris")),
        "libc": ctypes.CDLL(None) is not None,
        "random": len(os.urandom(8)) + len(str(uuid.uuid4())),
        "sha": hashlib.sha256(b"").hexdigest()[:8],
        "boto3": boto3.session.Session(region_name="us-east-1").region_name,
    }
"""
RUNTIME_ANSWER = {
    "tls_roots": True,
    "user": True,
    "tz": "Europe/Paris",
    "libc": True,
    "random": 44,
    "sha": "e3b0c442",
    "boto3": "us-east-1",
}
FUNCTION = {
    "lambdas/__init__.py": "",
    "lambdas/escape/__init__.py": "",
    "lambdas/escape/handler.py": ESCAPE,
    "lambdas/runtime_only/__init__.py": "",
    "lambdas/runtime_only/handler.py": RUNTIME_ONLY,
}
FUNCTIONS = [
    FunctionTarget(key="escape", name="acme-escape", handler="lambdas.escape.handler.handler"),
    FunctionTarget(key="runtime_only", name="acme-runtime-only", handler="lambdas.runtime_only.handler.handler"),
]
SMOKE = {
    "escape": (SmokeCase(name="escape", event={}, expect={"equals": {"ok": True}}),),
    "runtime_only": (SmokeCase(name="runtime", event={}, expect={"equals": RUNTIME_ANSWER}),),
}


def _writable(folder: Path) -> Path:
    """The folder itself, or its lock folder (world-writable) for a developer who is not root."""
    return folder if os.access(folder, os.W_OK) else folder / "lock"


@contextmanager
def _listening_sockets(tmp_path: Path) -> Iterator[list[str]]:
    """Unix sockets listening where host services keep theirs; each connectable from outside the jail."""
    xdg = Path(os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}")
    created_xdg = not xdg.exists()
    xdg.mkdir(parents=True, exist_ok=True)
    folders = [_writable(Path("/run")), _writable(Path("/var/run")), Path("/var/tmp"), xdg, tmp_path]
    with ExitStack() as stack:
        paths = []
        for folder in folders:
            path = folder / f"jail-probe-{uuid.uuid4().hex[:12]}.sock"
            server = stack.enter_context(socket.socket(socket.AF_UNIX))
            server.bind(str(path))
            stack.callback(path.unlink, missing_ok=True)
            server.listen()
            with socket.socket(socket.AF_UNIX) as client:
                client.connect(str(path))  # reachable from the host: the jail's refusal is what is tested
            paths.append(str(path))
        try:
            yield paths
        finally:
            if created_xdg:
                shutil.rmtree(xdg, ignore_errors=True)


@contextmanager
def _tcp_listener() -> Iterator[int]:
    """Stands for the emulator on the host's loopback."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def _run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    emulator_port: int | None,
    sockets: list[str],
    extra: dict[str, str] | None = None,
) -> dict[str, Any]:
    home = tmp_path / "home"
    leakprobe.set_host_credentials(monkeypatch, home)
    (home / "home-canary-file").write_text("x")
    leak_file = tmp_path / "leak" / "found.json"
    leakprobe.let_leak_file_out(monkeypatch, leak_file)
    local = emulator_port is not None
    env = EnvConfig(
        name="local" if local else "staging",
        region="us-east-1",
        endpoint_url=f"http://127.0.0.1:{emulator_port}" if local else None,
        emulator=EmulatorSettings(port=emulator_port) if emulator_port is not None else None,
        architecture=HOST_ARCH,
        verify=VerifySettings(smoke=SMOKE),
    )
    homes = [pwd.getpwuid(os.getuid()).pw_dir, str(home)]
    variables = {"LEAK_FILE": str(leak_file), "PROBE_SOCKETS": json.dumps(sockets), "REAL_HOMES": json.dumps(homes)}
    variables.update(extra or {})
    with leakprobe.deployer_process():
        report = verify.verify_local(
            env,
            FUNCTIONS,
            layer=zip_artifact(tmp_path / "layer.zip", {"python/dep.py": "X = 1\n"}, "layer"),
            function=zip_artifact(tmp_path / "function.zip", FUNCTION, "function"),
            python=verify.find_runtime_python("3.12"),
            environment={"escape": variables},
        )
    assert report.ok, report.problems()
    found: dict[str, Any] = json.loads(leak_file.read_text())
    return found


def _no_other_process(found: dict[str, Any]) -> None:
    text = json.dumps(found["environs"])
    assert not any(canary in text for canary in leakprobe.HOST_SECRETS.values())
    # its own PID namespace: at most the namespace's init, the emulator's relay and the interpreter itself
    assert len(found["environs"]) <= 3, sorted(found["environs"])


def test_the_jail_reaches_no_host_socket_terminal_process_home_or_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = verify.find_runtime_python("3.12")
    with _listening_sockets(tmp_path) as sockets, _tcp_listener():
        found = _run(tmp_path, monkeypatch, emulator_port=None, sockets=sockets)
    assert set(found["sockets"]) == set(sockets)
    for path, outcome in found["sockets"].items():
        assert outcome[0] == "error", f"the handler connected to {path}"
    assert found["tty"] == ["error", errno.ENOENT]
    assert found["dev"] == ["null", "urandom", "zero"]
    _no_other_process(found)
    real, scratch_home = found["homes"].values()
    # the real home: absent, or only the folders leading to a bound interpreter prefix
    assert real[0] == "error" or set(real[1]) <= leakprobe._allowed_in_real_home(python), real
    assert scratch_home == ["error", errno.ENOENT]  # $HOME (with the .aws canaries) is not there at all
    assert found["metadata"] == ["error", errno.ENETUNREACH]
    assert not {"run", "var", "sys", "mnt", "srv"} & set(found["root"]), found["root"]
    # the jail's own account file: its user has a name, and the host's users are not listed
    assert found["user"] == "sbx_user"
    assert int(found["caps"], 16) == 0  # no capability, even when the deployer is root


def test_the_emulator_jail_reaches_the_emulator_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """local: the emulator on the host's loopback is relayed into the jail's own network namespace; the
    metadata address, the host's abstract Unix sockets and its other loopback ports stay out of reach."""
    with (
        _listening_sockets(tmp_path) as sockets,
        _tcp_listener() as port,
        _tcp_listener() as other_port,
        socket.socket(socket.AF_UNIX) as abstract,
    ):
        name = f"jail-probe-{uuid.uuid4().hex}"
        abstract.bind(f"\0{name}")
        abstract.listen()
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(f"\0{name}")  # reachable from the host
        extra = {"ABSTRACT_SOCKET": name, "OTHER_PORT": str(other_port)}
        found = _run(tmp_path, monkeypatch, emulator_port=port, sockets=sockets, extra=extra)
    assert found["endpoint"] == ["ok", None]
    assert all(outcome[0] == "error" for outcome in found["sockets"].values()), found["sockets"]
    assert found["metadata"] == ["error", errno.ENETUNREACH]
    assert found["abstract"][0] == "error" and found["other_port"][0] == "error", found
    _no_other_process(found)


def test_without_bwrap_local_falls_back_to_namespaces_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PATH with util-linux's unshare and no bwrap (nothing uninstalled): the local run passes, in its
    own PID namespace as uid 65534, still reaching the emulator, and prints one line saying so."""
    unshare = shutil.which("unshare")
    assert unshare is not None, "util-linux's unshare is needed for the fallback"
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "unshare").symlink_to(unshare)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with _tcp_listener() as port:
        found = _run(tmp_path, monkeypatch, emulator_port=port, sockets=[])
    assert found["endpoint"] == ["ok", None]
    assert found["uid"] == 65534 and int(found["caps"], 16) == 0  # not root in its namespaces: /proc stays
    _no_other_process(found)
    err = capsys.readouterr().err
    assert err.count("verify sandbox without bubblewrap (bwrap is not installed (not on PATH))") == 1, err
    assert len([line for line in err.splitlines() if "bubblewrap" in line]) == 1
