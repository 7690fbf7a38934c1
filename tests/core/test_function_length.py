"""No function over 60 lines in ppprune/core, ppprune/cli and ppprune/deploy: a longer one holds more than
one idea, split it into named pieces."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
LIMIT = 60


def long_functions(paths, limit=LIMIT):
    """['path:line name (N lines)'] of every function (nested ones too) in `paths` whose decorators,
    docstring and body span more than `limit` lines."""
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - min([node.lineno] + [d.lineno for d in node.decorator_list]) + 1
                if lines > limit:
                    found.append(f"{path}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_over_sixty_lines():
    paths = [p for package in ("core", "cli", "deploy") for p in sorted((ROOT / "ppprune" / package).rglob("*.py"))]
    assert len(paths) > 20  # the packages are where this test looks for them
    long = long_functions(paths)
    assert not long, f"functions over {LIMIT} lines (split them into named pieces): {long}"


def test_the_check_counts_decorators_docstring_and_nested_functions(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(57))
    source = (f"@staticmethod\ndef at_limit():\n    '''doc'''\n{body}    return 0\n\n\n"  # 1 + 1 + 1 + 57 + 1 = 61
              f"def short():\n    '''doc'''\n{body}    return 0\n\n\n"  # 60
              f"class C:\n    def outer(self):\n        def inner():\n{body.replace('    ', '            ')}"
              "            return 0\n        return inner\n")  # inner: 1 + 57 + 1 = 59, outer: 61
    path = tmp_path / "m.py"
    path.write_text(source)
    assert long_functions([path]) == [f"{path}:2 at_limit (61 lines)", f"{path}:127 outer (61 lines)"]
