"""The emulator, and nothing else of the network, for a jail in its own network namespace.

The local environment's emulator listens on the host's loopback, which a fresh network namespace
cannot reach; sharing the host's network would also let code under verify reach everything else
there (the metadata address, the host's abstract Unix sockets, other local services). So the jail
keeps its own namespace, and one path leads out:

- on the host, :class:`Forwarder` listens on a Unix socket in the run's folder and connects each
  caller to the emulator's TCP port (``host``: imported by ``deploy.verify.sandbox``);
- inside the jail, this file runs first, as ``python -I -S relay.py PORT SOCKET -- COMMAND...``:
  it listens on the jail's own ``127.0.0.1:PORT``, forks a process that carries each connection to
  ``SOCKET``, and executes ``COMMAND`` (the sandbox's interpreter) in its place. The relay dies
  with the jail's PID namespace when the command ends.

Standard library only: the jail side runs under the runtime's interpreter, without ``deploy``.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path


def _pump(source: socket.socket, target: socket.socket, done: Callable[[], None]) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        with suppress(OSError):
            target.shutdown(socket.SHUT_WR)  # the other side sees the end of this direction
        done()


def _splice(a: socket.socket, b: socket.socket) -> None:
    """Carry bytes both ways; close both once both directions have ended."""
    left = [2]
    lock = threading.Lock()

    def done() -> None:
        with lock:
            left[0] -= 1
            if left[0] == 0:
                a.close()
                b.close()

    for source, target in ((a, b), (b, a)):
        threading.Thread(target=_pump, args=(source, target, done), daemon=True).start()


def _serve(listener: socket.socket, connect: Callable[[], socket.socket]) -> None:
    """Until the listener is shut down: each caller spliced to a fresh upstream connection."""
    while True:
        try:
            caller, _ = listener.accept()
        except OSError:
            return
        try:
            upstream = connect()
        except OSError:
            caller.close()
            continue
        _splice(caller, upstream)


@contextmanager
def forwarder(path: Path, host: str, port: int) -> Iterator[Path]:
    """Host side: a Unix socket at ``path`` whose callers reach ``host:port``; closed on exit."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(64)
    thread = threading.Thread(
        target=_serve, args=(listener, lambda: socket.create_connection((host, port), timeout=30)), daemon=True
    )
    thread.start()
    try:
        yield path
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept (Linux), ending the thread
        listener.close()
        thread.join(timeout=30)
        path.unlink(missing_ok=True)


def _unix(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(path)
    return sock


def main(argv: list[str]) -> int:
    """Jail side: ``relay.py PORT SOCKET -- COMMAND...``."""
    if len(argv) < 5 or argv[3] != "--":
        sys.stderr.write("usage: relay.py PORT SOCKET -- COMMAND...\n")
        return 2
    port, path, command = int(argv[1]), argv[2], argv[4:]
    # Listening before the command starts: its first connect cannot race the relay.
    listener = socket.create_server(("127.0.0.1", port), backlog=64)
    if os.fork() == 0:
        _serve(listener, lambda: _unix(path))
        os._exit(0)
    listener.close()
    os.execv(command[0], command)  # noqa: S606 - the sandbox's own interpreter, as the jail started it


if __name__ == "__main__":
    sys.exit(main(sys.argv))
