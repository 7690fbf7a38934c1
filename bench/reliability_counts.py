"""The case counts of docs/results.md's reliability section, from the suite itself: the tests are collected
(`pytest --collect-only -q`, nothing runs) and counted per kind; tool runs also per tool, from the bad-input
table. Prints the section's table (markdown).

    python bench/reliability_counts.py
"""
import collections
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BAD, LOCK, SIGNALS = "tests/tools/test_bad_input.py", "tests/tools/test_lock.py", "tests/pipeline/test_signals.py"
# (what the cases are, which collected tests: a node id prefix, or a predicate)
KINDS = [
    ("bad input, tool runs (exit 2, one line, every file unchanged)", f"{BAD}::test_tool_refuses["),
    ("bad input, public API calls (the documented exception, scope unchanged)", f"{BAD}::test_api_refuses["),
    ("a full, read-only or mount-point disk (tmpfs; skipped unless root)", f"{BAD}::test_disk_errors_are_one_line["),
    ("other bad input (real entry points, partial weights, image names)",
     lambda n: n.startswith(BAD) and "::test_tool_refuses[" not in n and "::test_api_refuses[" not in n
     and "::test_disk_errors" not in n),
    ("output-folder guard of prune_inference.py", "tests/tools/test_output_safety.py::"),
    ("output folders: manifest, leftovers, staged swap", "tests/pipeline/test_outdir.py::"),
    ("SIGKILL tests (each kills at one or more of the writes in the table below)", lambda n: n.startswith("tests/pipeline/test_faults.py::test_") and "killed" in n
     or n.startswith(f"{LOCK}::") and "killed" in n),
    ("SIGINT / SIGTERM", lambda n: n.startswith(f"{SIGNALS}::")
     or n.startswith(f"{LOCK}::") and "interrupted" in n),
    ("locks: two runs on one folder, dead / live / other-host / damaged locks",
     lambda n: n.startswith(f"{LOCK}::") and "killed" not in n and "interrupted" not in n),
]


def collect(files):
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
                          capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    if proc.returncode:
        sys.exit(f"collecting the tests failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return [line.strip() for line in proc.stdout.splitlines() if "::" in line]


def _matches(kind, node):
    return node.startswith(kind) if isinstance(kind, str) else kind(node)


def main():
    files = sorted({k.split("::")[0] for _, k in KINDS if isinstance(k, str)} | {BAD, LOCK, SIGNALS, "tests/pipeline/test_faults.py"})
    nodes = collect(files)
    sys.path.insert(0, ROOT)
    from tests.tools.test_bad_input import CASES

    tool_of = {case[0]: case[1] for case in CASES}
    per_tool = collections.Counter(tool_of[n[n.index("[") + 1:-1]] for n in nodes if n.startswith(KINDS[0][1]))
    print("| cases | count |\n|---|---|")
    for what, kind in KINDS:
        count = sum(_matches(kind, n) for n in nodes)
        detail = f" ({', '.join(f'{t} {c}' for t, c in per_tool.most_common())})" if kind == KINDS[0][1] else ""
        print(f"| {what} | {count}{detail} |")
    print(f"| total | {sum(any(_matches(k, n) for _, k in KINDS) for n in nodes)} |")


if __name__ == "__main__":
    main()
