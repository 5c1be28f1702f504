"""Writing a file so that no reader, no crash and no second writer ever sees half of it.

Every file a run leaves for later runs to trust (manifests, SBOMs, the zip status record, the
emulator's pidfile, remembered settings, fetched cache objects) is written to a temporary file of
its own beside the destination and renamed over it: rename is atomic within a folder, and a name
of its own (not a fixed ``.tmp``) keeps two processes writing one path (staging and production
from one checkout) from mixing bytes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(dest: Path, write: Callable[[BinaryIO], object]) -> None:
    """``write(file)`` into a temporary file beside ``dest``, then rename it over ``dest``."""
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
        tmp.chmod(0o644)  # mkstemp creates 0600; these files are read by CI steps and other users
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(dest: Path, text: str) -> None:
    data = text.encode("utf-8")
    atomic_write(dest, lambda out: out.write(data))
