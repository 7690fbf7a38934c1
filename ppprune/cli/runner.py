"""How a tool ends: user-facing errors become one clear line and exit status 2, never a traceback."""
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


def run(main_fn):
    """Run a tool's `main`; returns its exit status, or exits with 2 on an error the user can fix."""
    from ..config.loader import ConfigError, ConfigValueError
    from ..core.errors import MissingDependency, PruneError
    from ..engine.checkpoint import WeightsError
    from ..engine.distributed import DistributedError
    from ..outdir import OutputDirError

    try:
        return main_fn()
    except (UsageError, PruneError, WeightsError, ConfigError, ConfigValueError, OutputDirError, MissingDependency,
            DistributedError, FileNotFoundError, FileExistsError) as e:
        if os.environ.get("PPPRUNE_DEBUG"):
            traceback.print_exc()
        message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        message = " ".join(str(message).split())  # one line, whatever the message held
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
