"""The runtime's interpreter (python3.12) as the tests' judge of bytecode: magic number and marshal
format change with every Python version, and CI runs the tests on 3.11, 3.12 and 3.13."""

from __future__ import annotations

import subprocess

import pytest

from deploy import runtime_python

HOST = runtime_python.find("3.12")


def _host() -> runtime_python.RuntimePython:
    if HOST is None:
        pytest.fail("these tests need python3.12 (pyenv install 3.12), the runtime this project targets")
    return HOST


def bytecode_magic() -> bytes:
    out = subprocess.run(
        [str(_host().path), "-c", "import importlib.util,sys; sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return bytes.fromhex(out.stdout)


def runtime_co_filename(pyc: bytes) -> str:
    """The file name a .pyc records, read by the runtime's interpreter: marshal's format is per Python
    version, so the host (3.11 or 3.13 in CI) cannot read a cpython-312 code object."""
    out = subprocess.run(
        [str(_host().path), "-c", "import marshal,sys; print(marshal.loads(sys.stdin.buffer.read()[16:]).co_filename)"],
        input=pyc,
        capture_output=True,
        check=True,
    )
    return out.stdout.decode().strip()
