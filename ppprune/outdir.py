"""Output folders a tool owns: a manifest of the files ppprune wrote there, so a rerun replaces or removes
only its own files, a folder holding someone else's files is refused (unless `overwrite`), and no tool
writes into the folder its inputs come from.

Two steps, so that nothing is written before a run's inputs are validated: `OutputDir(path, ...)` only
checks; `open()` (or `staging_dir`, for a folder written whole) locks the folder for the rest of the run
(`ppprune.lock`: a second run on it is refused), creates it, removes leftovers of killed runs and records
every atomic write into the folder in the manifest (before the write's final rename, so a listed file may
be missing, never an unlisted one ours).
"""
import contextlib
import json
import os
import shutil
import tempfile

from . import fsutil, lock

MANIFEST = ".ppprune-manifest.json"


class OutputDirError(ValueError):
    """An output folder that must not be written; the message says which and what to do."""


def _folder_of(path):
    path = os.fspath(path)
    if os.path.isdir(path):
        return os.path.realpath(path)
    return os.path.realpath(os.path.dirname(os.path.abspath(path)) or ".")


def _inside(child, parent):
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def read_manifest(path, overwrite=False):
    """The names ppprune wrote in `path`, or None without a manifest (or a damaged one, with `overwrite`)."""
    file = os.path.join(path, MANIFEST)
    if not os.path.isfile(file):
        return None
    try:
        if os.path.islink(file):
            raise ValueError("it is a symlink")
        with open(file) as f:
            names = json.load(f)["files"]
        if not isinstance(names, list):
            raise ValueError("'files' is not a list")
        for name in names:
            _check_entry(path, name)
        return set(names)
    except (ValueError, KeyError, TypeError, OSError) as e:
        if overwrite:
            return None
        raise OutputDirError(f"{file} is damaged ({e}); nothing was deleted: remove the folder '{path}' or pass "
                             "--overwrite") from None


def _check_entry(folder, name):
    """A manifest is read from disk, so untrusted: it may name only files or folders directly inside its own
    folder (never '..', an absolute path, a symlink or ppprune's own bookkeeping), else a rerun would delete
    what it names."""
    if not isinstance(name, str) or not name or name in (".", "..", MANIFEST) or "/" in name or os.sep in name \
            or "\0" in name or fsutil.is_staged(name) or lock.is_lock(name):
        raise ValueError(f"it names {name!r}, which is not a file of this folder")
    if os.path.islink(os.path.join(folder, name)):
        raise ValueError(f"it names the symlink {name!r}")


class OutputDir:
    def __init__(self, path, inputs=(), own_inputs=(), overwrite=False, flag="-o save_dir=<another folder>"):
        """Check `path` may be written. `inputs`: files or folders the run reads; the output folder may
        neither be one of their folders nor contain them. `own_inputs` (a checkpoint to resume from) may
        lie in the folder if the manifest lists them as ppprune's."""
        # A symlinked folder is its target: guards compare real paths, and a staged swap replaces the target
        # (never the link by a real folder, leaving the target's files stale).
        self.path = real = os.path.realpath(os.fspath(path))
        self.given, self.overwrite, self.flag = path, overwrite, flag
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise OutputDirError(f"output folder '{path}' is a file; choose a folder with {flag}")
        manifest = self._manifest()
        own = set()
        for item in own_inputs:  # with --overwrite also in a folder an older ppprune wrote (no manifest)
            if item and (manifest is not None or overwrite) and _folder_of(item) == real:
                own.add(item)
        for item in [*inputs, *own_inputs]:
            if not item or item in own:
                continue
            folder = _folder_of(item)
            if _inside(folder, real):
                raise OutputDirError(
                    f"output folder '{path}' holds the input '{item}': a tool never writes where its inputs "
                    f"come from; choose another output folder with {flag}")
        self.files = self._owned(manifest)

    def _manifest(self):
        return read_manifest(self.path, self.overwrite) if os.path.isdir(self.path) else None

    def _owned(self, manifest):
        """The names ppprune wrote here; raises if the folder holds others' files (unless `overwrite`)."""
        if manifest is not None:
            return manifest
        foreign = [n for n in self._entries() if n != MANIFEST]
        if foreign and not self.overwrite:
            raise OutputDirError(
                f"output folder '{self.given}' already holds files ppprune did not write "
                f"({', '.join(sorted(foreign)[:3])}{' ...' if len(foreign) > 3 else ''}); choose another folder with "
                f"{self.flag}, or pass --overwrite to write into it")
        return set()

    def _entries(self):
        if not os.path.isdir(self.path):
            return []
        return [n for n in os.listdir(self.path) if not fsutil.is_staged(n) and not lock.is_lock(n)]

    def lock(self):
        """Hold the folder for the rest of this run (see `ppprune.lock`)."""
        try:
            lock.acquire(self.path, take_foreign=self.overwrite)
        except lock.LockError as e:
            raise OutputDirError(f"{e}, or write elsewhere with {self.flag}") from None

    def open(self):
        """Lock and create the folder, clean up killed runs' leftovers, and start recording writes. Returns
        self."""
        try:
            self.lock()
            # Under the lock, the folder as this run finds it: a run that held it before may have changed it.
            self.files = self._owned(self._manifest())
            os.makedirs(self.path, exist_ok=True)
            fsutil.remove_stale_temps(self.path)
            self._save()
        except OSError as e:
            raise OutputDirError(f"cannot write to output folder '{self.path}' ({e.strerror}); choose a writable "
                                 f"folder with {self.flag}") from None
        # One output folder per run: an earlier run in this process (tools/demo.py) stops recording here.
        fsutil.on_write[:] = [h for h in fsutil.on_write if not isinstance(getattr(h, "__self__", None), OutputDir)]
        fsutil.on_write.append(self._record)
        return self

    def close(self):
        if self._record in fsutil.on_write:
            fsutil.on_write.remove(self._record)
        lock.release(self.path)

    def _record(self, path):
        if os.path.dirname(path) == self.path and os.path.basename(path) not in self.files:
            self.add(os.path.basename(path))

    def add(self, *names):
        self.files.update(names)
        self._save()

    def _save(self):
        with fsutil.atomic_write(os.path.join(self.path, MANIFEST), announce=False) as f:
            json.dump({"files": sorted(self.files)}, f, indent=1)

    def owns(self, name):
        return name in self.files

    def remove(self, names):
        """Delete those of `names` that ppprune wrote here (others are left alone); returns the removed."""
        gone = [n for n in names if n in self.files]
        for n in gone:
            path = os.path.join(self.path, n)
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else _remove(path)
        self.files.difference_update(gone)
        self._save()
        return gone


@contextlib.contextmanager
def staged(out):
    """Write a whole output folder at once: yields an empty staging folder beside `out.path`; when the block
    ends, the staging folder becomes the output folder (`swap_in`), on an error it is removed and the old
    folder is left as it was."""
    stage = staging_dir(out)
    try:
        yield stage
        swap_in(stage, out.path, os.listdir(stage))
    except OSError as e:  # a full disk, say: one line, and the old folder as it was
        shutil.rmtree(stage, ignore_errors=True)
        raise OutputDirError(f"cannot write '{e.filename or out.path}' ({e.strerror or e}); nothing was changed in "
                             f"'{out.path}': free space or choose another folder with {out.flag}") from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _remove(path):
    if os.path.exists(path):
        os.remove(path)


def staging_dir(out):
    """Lock the OutputDir `out` and return a new empty folder beside it, to fill completely before `swap_in`."""
    out.lock()
    final = out.path
    parent = os.path.dirname(os.path.abspath(final))
    os.makedirs(parent, exist_ok=True)
    recover(final)
    fsutil.remove_stale_temps(parent)
    return tempfile.mkdtemp(prefix=f".export-{os.path.basename(final)}.{os.getpid()}.", dir=parent)


def swap_in(stage, final, names):
    """Make the complete folder `stage` (holding `names`) the folder `final`: files in `final` that ppprune
    did not write are carried over, its own old files go. Two renames; a crash between them leaves the old
    folder under a temp name, which `recover` puts back."""
    with open(os.path.join(stage, MANIFEST), "w") as f:
        json.dump({"files": sorted(names)}, f, indent=1)
    if os.path.isdir(final):
        owned = read_manifest(final, overwrite=True) or set()
        for n in os.listdir(final):
            if n not in owned and n != MANIFEST and not os.path.exists(os.path.join(stage, n)):
                os.replace(os.path.join(final, n), os.path.join(stage, n))
        old = tempfile.mkdtemp(prefix=f".export-old-{os.path.basename(final)}.{os.getpid()}.",
                               dir=os.path.dirname(os.path.abspath(final)))
        os.rmdir(old)
        os.replace(final, old)
        os.replace(stage, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(stage, final)
    fsutil.count_write()


def recover(final):
    """Put back the previous folder of an export killed between swap_in's two renames."""
    parent = os.path.dirname(os.path.abspath(final))
    if os.path.exists(final) or not os.path.isdir(parent):
        return
    prefix = f".export-old-{os.path.basename(final)}."
    for n in sorted(os.listdir(parent)):
        if n.startswith(prefix) and os.path.isfile(os.path.join(parent, n, MANIFEST)):
            os.replace(os.path.join(parent, n), final)
            return
