"""Running a tool's main in this process, as its entry point would (exit code, one-line errors)."""
import importlib


def run_in_process(tool, argv):
    from ppprune.cli import runner

    main = importlib.import_module(f"ppprune.cli.{tool}").main
    try:
        return runner.run(lambda: main(argv))
    except SystemExit as e:
        return e.code
