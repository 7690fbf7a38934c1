"""The command-line tools. Each tool module defines `run(argv)` (the work; returns what an in-process caller
uses) and `main = runner.exit_zero(run)`; `tools/*.py` are thin wrappers calling `runner.run(module.main)`."""
