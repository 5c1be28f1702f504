"""A machine-local cache of the ``.pyc`` files earlier builds compiled.

Why: a layer build installs its wheels from uv's cache in half a second, then spent 1.5 s of
its 3.5 s compiling about 900 ``.py`` files, the same work as the last build for every
package that did not change. The bytecode runner (``deploy/bytecode_runner.py``) names each
entry by the SHA-256 of everything that decides its bytes (the source, the path its code
object records, the compiling interpreter's exact version and the runner's own text), so a hit
is the very file a compile writes: the layer's identity and sha256 do not depend on whether the
cache was warm (``tests/integration/test_build_backend.py`` builds both ways and compares).
Measured on the real layer: compile 1.52 s without the cache, 0.23 s from a warm one (hits are hard
links into the build tree), 1.90 s
filling an empty one.

Deflated zip members are not cached: tried (members of 16 kB and more, keyed by zlib's
version, the level and the bytes, a hit used only if it inflates back), the warm cache saved
0.4 s of user time and cost 0.6-0.9 s of system time reading and refreshing 900 entries; the
whole build was slower (2.6-3.5 s against 2.4-3.0 s, interleaved), and a fresh CI runner always
starts empty. Deflating beside the audit (archive.Precompressor) is what the zip got instead.

Where: ``$DEPLOY_CACHE_DIR``, else ``$XDG_CACHE_HOME/lambda-layer-deploy``, else
``~/.cache/lambda-layer-deploy``; ``DEPLOY_NO_CACHE=1`` turns it off. Deleting the folder is
always safe. It is trusted like uv's own wheel cache: a folder only its user can write (created
0700; an existing folder that is another user's, or writable by group or others, is not used).
The docker builder does not use it (its compile runs as the container's user).

Bounded: after a build, at most once a day, the least recently used entries are deleted until
the folder holds ``MAX_BYTES`` (a hit refreshes its entry's mtime).
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ENV_DIR = "DEPLOY_CACHE_DIR"
ENV_OFF = "DEPLOY_NO_CACHE"
#: About 50 layer builds of this project's size (20 MB of .pyc each).
MAX_BYTES = 1024**3
#: ``prune`` walks every entry: at most once a day.
PRUNE_EVERY_S = 24 * 3600
#: A temporary file of a write older than this was left by a killed build.
STALE_TMP_S = 3600


@dataclass(frozen=True, kw_only=True)
class ContentCache:
    root: Path

    def prune(self, max_bytes: int = MAX_BYTES) -> int:
        """Delete the least recently used entries until the folder holds at most ``max_bytes``;
        returns how many were deleted."""
        entries: list[tuple[int, int, Path]] = []
        stale = time.time() - STALE_TMP_S
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                full = Path(dirpath) / name
                if name.startswith(".tmp-"):
                    # A write in flight, or one a killed build left: gone after an hour.
                    with contextlib.suppress(OSError):
                        if full.stat().st_mtime < stale:
                            full.unlink()
                    continue
                if name.startswith("."):
                    continue  # the prune stamp
                with contextlib.suppress(OSError):
                    st = full.stat()
                    entries.append((st.st_mtime_ns, st.st_size, full))
        total = sum(size for _, size, _ in entries)
        removed = 0
        for _, size, full in sorted(entries):
            if total <= max_bytes:
                break
            with contextlib.suppress(OSError):
                full.unlink()
                total -= size
                removed += 1
        return removed


def prune_daily(cache: ContentCache, max_bytes: int = MAX_BYTES) -> int:
    """``cache.prune`` when the last one is more than a day old (a stamp file's mtime says when)."""
    stamp = cache.root / ".pruned"
    with contextlib.suppress(OSError):
        if time.time() - stamp.stat().st_mtime < PRUNE_EVERY_S:
            return 0
    removed = cache.prune(max_bytes)
    with contextlib.suppress(OSError):
        stamp.touch()
    return removed


def default_cache(environ: Mapping[str, str] = os.environ) -> ContentCache | None:
    """The user's cache folder (created 0700), or None when turned off or not creatable."""
    if environ.get(ENV_OFF, "").strip().lower() in ("1", "true", "yes"):
        return None
    if environ.get(ENV_DIR):
        root = Path(environ[ENV_DIR])
    elif environ.get("XDG_CACHE_HOME"):
        root = Path(environ["XDG_CACHE_HOME"]) / "lambda-layer-deploy"
    elif environ.get("HOME"):
        root = Path(environ["HOME"]) / ".cache" / "lambda-layer-deploy"
    else:
        return None
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = root.lstat()
    except OSError:
        return None
    # mkdir's mode applies only to a folder it creates: one that already exists (a shared
    # DEPLOY_CACHE_DIR, a restored CI cache) is used only if it is this user's and nobody else can
    # write to it, because an entry there is bytecode the layer ships unread.
    problem = None
    if not stat.S_ISDIR(st.st_mode):
        problem = "is not a folder (a link?)"
    elif hasattr(os, "getuid") and st.st_uid != os.getuid():
        problem = f"belongs to uid {st.st_uid}, not to this user"
    elif st.st_mode & 0o022:
        problem = f"is writable by others (mode {stat.S_IMODE(st.st_mode):o})"
    if problem is not None:
        print(f"warning: the .pyc cache {root} {problem}: not used (chmod 700 it, or set {ENV_DIR})", file=sys.stderr)
        return None
    return ContentCache(root=root)
