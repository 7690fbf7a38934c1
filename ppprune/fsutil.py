"""Atomic file writes: a crash mid-write never leaves a truncated file under the final name.

Temp files are named `.tmp-<final name>.<pid>.<random>` in the final file's folder, so a later run can
tell its dead predecessors' leftovers (`remove_stale_temps`) from a live process's files. Every final
rename is announced to the hooks in `on_write` (the output-folder manifest registers its files there).
`PPPRUNE_KILL_AFTER_WRITES=N` (tests only) makes the process SIGKILL itself right after its N-th write;
`PPPRUNE_KILL_SIGNAL=SIGINT` (or SIGTERM) sends that signal instead, as a Ctrl-C at that point would.
"""
import contextlib
import os
import re
import signal
import tempfile

from .interrupt import deferred

TEMP_PREFIX = ".tmp-"
KILL_ENV = "PPPRUNE_KILL_AFTER_WRITES"
KILL_SIGNAL_ENV = "PPPRUNE_KILL_SIGNAL"
on_write = []  # callables(path) run before a file is renamed into place
_writes = [0]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_beside(path):
    """A new temp file in `path`'s folder (same filesystem, so the final rename is atomic), with the mode a
    plain open() would give (mkstemp's is 0600)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.path.basename(path)}.{os.getpid()}.", dir=folder)
    os.fchmod(fd, 0o666 & ~_umask())
    return fd, tmp


@contextlib.contextmanager
def blame(path):
    """An OSError inside that names no file (a failed write() or fsync(): a full disk) names `path`."""
    try:
        yield
    except OSError as e:
        if e.filename is None and e.errno is not None:  # a bare OSError('message') keeps its text
            e.filename = os.fspath(path)
        raise


def _announce(path):
    for hook in on_write:
        hook(os.path.abspath(path))


def count_write():
    """Called after each final rename; the test-only kill switch counts these."""
    limit = os.environ.get(KILL_ENV)
    _writes[0] += 1
    if limit and _writes[0] == int(limit):  # once: the handler of a catchable signal writes on its way out
        os.kill(os.getpid(), getattr(signal, os.environ.get(KILL_SIGNAL_ENV, "SIGKILL")))


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_STAGED = re.compile(r"^\.(?:tmp|export)-.*?\.(\d+)\.[^.]+$")  # .tmp-<name>.<pid>.<random>, .export-...


def is_staged(name):
    """True for the name of a temp file or staging folder (not yet, or no longer, a real output)."""
    return bool(_STAGED.match(name))


def remove_stale_temps(folder):
    """Remove temp files and staging folders in `folder` left by ppprune processes that are gone."""
    import shutil

    if not os.path.isdir(folder):
        return []
    removed = []
    for name in os.listdir(folder):
        m = _STAGED.match(name)
        if not m or int(m.group(1)) == os.getpid() or _pid_alive(int(m.group(1))):
            continue
        path = os.path.join(folder, name)
        shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)
        removed.append(name)
    return removed


def write_files_atomically(files):
    """Write {path: bytes}: every file is staged completely before the first rename, so a failure while
    writing leaves all old files untouched and no partial file under a final name."""
    staged = {}
    try:
        for path, data in files.items():
            fd, staged[path] = _temp_beside(path)
            with blame(path), os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for path in staged:
            _announce(path)
    except BaseException:
        for tmp in staged.values():
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
        raise
    with deferred():  # Ctrl-C between the renames would tear the set (its check catches it, but needlessly)
        for path, tmp in staged.items():
            os.replace(tmp, path)
            count_write()


@contextlib.contextmanager
def atomic_write(path, mode="w", announce=True, **kwargs):
    """Open a temp file beside `path`; on success it replaces `path` in one rename, on error it is removed.
    `announce=False` (bookkeeping files such as a manifest) skips the hooks and the write count."""
    path = os.fspath(path)
    fd, tmp = _temp_beside(path)
    try:
        with blame(path), os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if announce:
            _announce(path)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    if announce:
        count_write()
