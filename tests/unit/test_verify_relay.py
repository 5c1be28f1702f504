"""The emulator's relay: the host side carries a Unix socket's callers to a TCP port, both ways, to the end."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deploy.verify import relay


@contextmanager
def _upstream() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP server that answers each connection with everything it received, once the caller's side ends."""
    received: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as server:

        def serve() -> None:
            conn, _ = server.accept()
            with conn:
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
                received.append(data)
                conn.sendall(b"echo:" + data)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        yield server.getsockname()[1], received
        thread.join(timeout=30)


def _call(path: Path, payload: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)  # a half-close reaches the upstream, which answers after it
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_forwarder_carries_bytes_both_ways_and_half_closes(tmp_path: Path) -> None:
    payload = b"x" * 300_000  # several reads in each direction
    with _upstream() as (port, received), relay.forwarder(tmp_path / "emulator.sock", "127.0.0.1", port) as path:
        assert _call(path, payload) == b"echo:" + payload
    assert received == [payload]
    assert not (tmp_path / "emulator.sock").exists()  # removed with the session


def test_a_caller_is_closed_when_the_upstream_refuses(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = held.getsockname()[1]
        with relay.forwarder(tmp_path / "emulator.sock", "127.0.0.1", port) as path:
            for _ in range(2):  # the forwarder keeps serving after a refused upstream
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.settimeout(30)
                    sock.connect(str(path))
                    assert sock.recv(1) == b""  # closed at once: no hang, no answer
