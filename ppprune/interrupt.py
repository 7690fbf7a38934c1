"""Ctrl-C (SIGINT) and SIGTERM as an exception, so a tool stops through the same cleanup as any error.

`installed()` turns both signals into `Interrupted`, raised in the main thread: it unwinds through the
atomic writes' and staging folders' `except`/`finally` cleanup, so an output folder keeps its old or its
new files. Paddle installs a C++ handler for SIGTERM at import (it prints a C++ stack dump): `installed`
must run after `import paddle`, and replaces it. `deferred()` holds the exception back over steps that
must happen together (the renames of a pair of files): it is raised when the block ends.
"""
import contextlib
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_state = {"depth": 0, "pending": None, "raised": False}


class Interrupted(KeyboardInterrupt):
    """The run was stopped by `signum`; a rerun of the same command resumes (or redoes) it."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum
        self.exit_status = 128 + signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM

    def __str__(self):
        return f"interrupted ({signal.Signals(self.signum).name}); rerun the same command to resume"


def _handler(signum, frame):
    if _state["raised"]:  # already unwinding: a second Ctrl-C must not cut the cleanup short
        return
    if _state["depth"]:
        _state["pending"] = signum
        return
    _state["raised"] = True
    raise Interrupted(signum)


@contextlib.contextmanager
def installed():
    """SIGINT and SIGTERM raise `Interrupted` inside the block (the previous handlers come back after it);
    a signal the parent ignores (nohup, `&` in a script) stays ignored."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers belong to the main thread
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    _state.update(depth=0, pending=None, raised=False)
    for signum, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(signum, _handler)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def deferred():
    """Run the block whole: a signal arriving inside raises `Interrupted` only when it ends."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        if not _state["depth"] and _state["pending"] is not None:
            signum, _state["pending"] = _state["pending"], None
            _state["raised"] = True
            raise Interrupted(signum)
