"""One run at a time per output folder: a lock file beside the folder, `.ppprune-lock.<folder name>`, holding
the writer's pid, host and process start time (JSON).

Beside, not inside: a staged export replaces the whole folder, and the lock must stay put while it does.
The file is created with O_CREAT|O_EXCL, so of two runs exactly one gets it. A lock whose process is gone
(on this host: no such pid, a zombie, or the pid now belongs to a process started at another time) is
taken over, with a note on stderr; the takeover happens under `flock` on the old file, so of two runs taking
over the same stale lock only one wins. A lock from another host cannot be checked from here: it counts as
live unless the user passes --overwrite (saying that run is over). A lock file whose content names no run
(empty: a run killed between creating and writing it; cut short; edited) proves nothing either way: once it
has stayed so for the retry window (a run that just created its lock writes it at once) it is refused the
same way, unless --overwrite. Locks are released when the run ends
(`release_all`: the CLI runner's `finally`, and at exit); a SIGKILLed run leaves a stale lock behind.
"""
import atexit
import fcntl
import json
import os
import socket
import sys
import time

from . import fsutil

PREFIX = ".ppprune-lock."
HOST = socket.gethostname()
ATTEMPTS = 40
PID_MAX = 2**31 - 1  # pid_t
_held = {}  # lock path -> the content this process wrote


class LockError(ValueError):
    """Another run holds the folder; the message names it and what to do."""


def path_for(folder):
    folder = os.path.abspath(folder)
    return os.path.join(os.path.dirname(folder), PREFIX + os.path.basename(folder))


def is_lock(name):
    return name.startswith(PREFIX)


def _proc_stat(pid):
    """(state, start time in clock ticks since boot) from /proc, or None where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # the command name, in parentheses, may hold spaces
        return fields[0], int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _me():
    pid = os.getpid()
    stat = _proc_stat(pid)
    return {"pid": pid, "host": HOST, "start": stat[1] if stat else None}


def _running(holder):
    """Whether the process that wrote `holder` (on this host) still runs."""
    stat = _proc_stat(holder["pid"])
    if stat is not None:
        state, start = stat
        return state not in ("Z", "X") and holder.get("start") in (None, start)  # a reused pid is another process
    return fsutil._pid_alive(holder["pid"])


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _holder(raw):
    """The run `raw` names ({pid, host, start}), or None when it is not a lock ppprune wrote."""
    try:
        holder = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: brackets nested deeper than json decodes
        return None
    if not isinstance(holder, dict):
        return None
    pid, start = holder.get("pid"), holder.get("start")
    # A pid outside 1..PID_MAX would make os.kill signal a process group, all processes, or overflow.
    valid = _is_int(pid) and 0 < pid <= PID_MAX and (start is None or _is_int(start))
    return holder if valid and isinstance(holder.get("host"), str) else None


def acquire(folder, take_foreign=False):
    """Lock `folder` for this process (again: a no-op). Raises `LockError` when a live run holds it;
    `take_foreign` takes over a lock of another host's run."""
    lock, mine = path_for(folder), _me()
    if _held.get(lock) == mine:
        return
    os.makedirs(os.path.dirname(lock), exist_ok=True)
    for attempt in range(ATTEMPTS):  # a round fails when another run just took, freed or is writing the lock
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if _take_over(folder, lock, mine, take_foreign, last=attempt == ATTEMPTS - 1):
                break
            time.sleep(0.05)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(mine))
        break
    else:
        raise LockError(f"could not lock output folder '{folder}': its lock file '{lock}' keeps changing (other runs "
                        "starting on it); rerun when they are done")
    _held[lock] = mine


def _take_over(folder, lock, mine, take_foreign, last):
    """Replace the existing lock if its run is over; False when it changed under us (try again)."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:  # released meanwhile
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another run is taking it over right now
            return False
        try:
            if os.stat(lock).st_ino != os.fstat(fd).st_ino:
                return False
        except FileNotFoundError:
            return False
        try:
            raw = os.read(fd, 4096)
        except OSError as e:  # a folder under the lock's name, say: not ours to replace
            raise LockError(f"the lock file '{lock}' of output folder '{folder}' cannot be read ({e.strerror}): "
                            f"remove it if no other run is writing to '{folder}'") from None
        holder = _holder(raw)
        if holder is None and not last:  # the run that created it may be writing it: look again shortly
            return False
        note = _takeover_note(folder, lock, holder, raw, mine, take_foreign)
        with fsutil.atomic_write(lock, announce=False) as f:  # one rename: the folder is never unlocked
            f.write(json.dumps(mine))
        if note:
            print(note, file=sys.stderr)
        return True
    finally:
        os.close(fd)


def _takeover_note(folder, lock, holder, raw, mine, take_foreign):
    """What to say on replacing the lock `holder` wrote (None: this process's own); raises `LockError` when
    it may not be replaced."""
    if holder is None:
        if take_foreign:
            return f"note: taking over the damaged lock of '{folder}' (--overwrite)"
        state = "empty" if not raw.strip() else "damaged (it names no ppprune run)"
        raise LockError(f"the lock file '{lock}' of output folder '{folder}' is {state}, so it cannot tell whether "
                        f"a run is writing that folder: remove it if no other run is writing to '{folder}', or pass "
                        "--overwrite")
    who = f"pid {holder['pid']} on host '{holder['host']}'"
    if holder["host"] == HOST:
        if holder["pid"] == mine["pid"] and holder.get("start") == mine["start"]:
            return None  # this process's own, from an earlier OutputDir of the same run
        if _running(holder):
            raise LockError(f"output folder '{folder}' is being written by another ppprune run ({who}, lock "
                            f"file '{lock}'): wait for it to end")
        return f"note: taking over the lock of '{folder}' left by {who}, which is no longer running"
    if take_foreign:
        return f"note: taking over the lock of '{folder}' held by {who} (--overwrite)"
    raise LockError(f"output folder '{folder}' is locked by a ppprune run on another host ({who}, lock file "
                    f"'{lock}'), which cannot be checked from here: wait for it to end, or if it is over "
                    "pass --overwrite to take the lock over")


def release(folder):
    _release(path_for(folder))


def _release(lock):
    """Remove this process's lock file (a forked child never removes its parent's)."""
    mine = _held.get(lock)
    if mine is None or mine["pid"] != os.getpid():
        return
    del _held[lock]
    try:
        with open(lock, "rb") as f:  # bytes: whatever replaced it, no decoding error here
            if _holder(f.read()) == mine:  # not after another host's run took it over with --overwrite
                os.remove(lock)
    except OSError:
        pass


def release_all():
    for lock in list(_held):
        _release(lock)


atexit.register(release_all)
