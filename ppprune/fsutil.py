"""Atomic file writes: a crash mid-write never leaves a truncated file under the final name."""
import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_write(path, mode="w", **kwargs):
    """Open a temp file beside `path`; on success it replaces `path` in one rename, on error it is removed."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + ".", dir=folder)
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
