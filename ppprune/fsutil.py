"""Atomic file writes: a crash mid-write never leaves a truncated file under the final name."""
import contextlib
import os
import tempfile


def _temp_beside(path):
    """A new temp file in `path`'s folder (same filesystem, so the final rename is atomic)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    return tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + ".", dir=folder)


def write_files_atomically(files):
    """Write {path: bytes}: every file is staged completely before the first rename, so a failure while
    writing leaves all old files untouched and no partial file under a final name."""
    staged = {}
    try:
        for path, data in files.items():
            fd, staged[path] = _temp_beside(path)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        for tmp in staged.values():
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
        raise
    for path, tmp in staged.items():
        os.replace(tmp, path)


@contextlib.contextmanager
def atomic_write(path, mode="w", **kwargs):
    """Open a temp file beside `path`; on success it replaces `path` in one rename, on error it is removed."""
    path = os.fspath(path)
    fd, tmp = _temp_beside(path)
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
