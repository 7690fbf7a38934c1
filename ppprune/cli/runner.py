"""How a tool ends: user-facing errors become one clear line and exit status 2, never a traceback; Ctrl-C
and SIGTERM one line and 130 / 143."""
import errno
import os
import sys
import traceback


class UsageError(ValueError):
    """Bad command-line input; the message says what is wrong and how to fix it."""


def exit_zero(run_fn):
    """A tool's `main(argv)` from its `run(argv)`: exit status 0 (errors raise, for `run` below), while
    in-process callers (the demo, the bench scripts) call `run` for what it returns."""
    def main(argv=None):
        run_fn(argv)
        return 0

    main.__doc__ = f"{run_fn.__doc__} Exit status 0."
    return main


# What to do about an OSError, by errno; the rest: check the path
_OS_FIXES = {
    errno.ENOSPC: "free some space on that disk (or write to another one) and rerun",
    errno.EDQUOT: "free some space (disk quota exceeded) and rerun",
    errno.EACCES: "check the permissions of that path, or choose another folder",
    errno.EPERM: "check the permissions of that path, or choose another folder",
    errno.EROFS: "it is on a read-only file system: choose a folder on a writable one",
    errno.ENAMETOOLONG: "shorten the file or folder names (most file systems allow 255 bytes per name)",
    errno.EBUSY: "it is in use or a mount point: choose a folder inside it, or another folder",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n) and rerun",
    errno.EIO: "the disk reported an I/O error: check the disk, or write to another one",
}


def os_error_line(e):
    """One line for an OSError: the path(s), the cause and the fix. Our own messages (no errno) pass as they are."""
    if e.errno is None or e.strerror is None:
        return str(e)
    where = " -> ".join(f"'{p}'" for p in (e.filename, e.filename2) if p is not None)
    cause = f"{e.strerror} ({errno.errorcode.get(e.errno, e.errno)})"
    fix = _OS_FIXES.get(e.errno, "check the path and rerun")
    return f"{where + ': ' if where else ''}{cause}; {fix}"


def _say(message):
    _close_progress_bars()
    print(" ".join(str(message).split()), file=sys.stderr)  # one line, whatever the message held


def _close_progress_bars():
    """End the progress bars an error cut (each on its own line), so the message gets a line of its own."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        bar.close()


def run(main_fn):
    """Run a tool's `main`; returns its exit status, or exits with 2 on an error the user can fix and with
    128 + the signal number when interrupted."""
    import paddle  # noqa: F401 - paddle's own SIGTERM handler comes at import; ours must replace it

    from ..config.loader import ConfigError, ConfigValueError
    from ..core.errors import MissingDependency, PruneError
    from ..engine.checkpoint import WeightsError
    from ..engine.distributed import DistributedError
    from ..interrupt import Interrupted, installed
    from ..lock import release_all
    from ..outdir import OutputDirError

    try:
        with installed():
            try:
                return main_fn()
            finally:  # on success, an error or Ctrl-C alike: the next run needs no takeover
                release_all()
    except Interrupted as e:
        _say(e)
        sys.exit(e.exit_status)
    except (UsageError, PruneError, WeightsError, ConfigError, ConfigValueError, OutputDirError, MissingDependency,
            DistributedError, OSError) as e:
        if os.environ.get("PPPRUNE_DEBUG"):
            traceback.print_exc()
        message = os_error_line(e) if isinstance(e, OSError) else e.args[0] if isinstance(e, KeyError) and e.args else e
        _say(f"error: {message}")
        sys.exit(2)
