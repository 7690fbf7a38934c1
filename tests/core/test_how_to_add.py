"""The checklists of docs/architecture.md ("How to add"), enforced: what a newcomer adding an op rule, a
criterion, a detector family, a deploy backend or a tool must not forget fails here, naming what is missing."""
import ast
import importlib
import inspect
import pathlib
import pkgutil

import numpy as np
import yaml

from tests.core import test_rules
from tests.helpers import nets, oracle
from ppprune import deploy
from ppprune.analysis.flops import COUNTED, NOT_COUNTED
from ppprune.core.criteria import CRITERIA
from ppprune.core.graph import legacy, view_of
from ppprune.core.groups import discover
from ppprune.core.rules import RULES
from ppprune.core.tensors import scope_reader
from ppprune.dygraph import apply as dygraph_apply

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _rule_functions():
    """{rule function: [op types it is registered under]}."""
    out = {}
    for op_type in RULES:
        out.setdefault(RULES.get(op_type), []).append(op_type)
    return out


def test_every_registered_rule_has_its_own_unit_test():
    tests = [n for n in vars(test_rules) if n.startswith("test_")]
    missing = {fn.__name__: types for fn, types in _rule_functions().items()
               if not any(t.startswith(f"test_{fn.__name__}_") for t in tests)}
    assert not missing, (f"channel rules without a unit test (add test_<rule function>_... to "
                         f"tests/core/test_rules.py): {missing}")


def test_every_op_type_with_a_rule_counts_its_flops_or_is_declared_free():
    ruled = set(RULES)
    undeclared = sorted(ruled - COUNTED - NOT_COUNTED)
    assert not undeclared, (f"op types with a channel rule but no FLOPs decision: {undeclared}; count them in "
                            "ppprune/analysis/flops.py or list them in its NOT_COUNTED")
    assert not COUNTED & NOT_COUNTED
    assert NOT_COUNTED <= ruled, f"NOT_COUNTED lists op types without a rule: {sorted(NOT_COUNTED - ruled)}"


def test_every_legacy_spelling_names_an_op_type_with_a_rule():
    stale = {old: new for old, new in legacy._TYPES.items() if new not in RULES}
    assert not stale, f"legacy op types mapped to canonical types without a channel rule: {stale}"


def test_every_legacy_slot_and_attribute_rename_names_an_op_type_with_a_rule():
    stale = sorted(t for t in [*legacy._SLOTS, *legacy._ATTRS] if t not in RULES)
    assert not stale, f"legacy slot/attribute renames for op types without a channel rule: {stale}"


def test_rules_that_shrink_an_attribute_have_a_dygraph_layer_attribute():
    """A shrunk `groups` must also be written to the Layer (dygraph/apply.py `_GROUP_ATTRS`)."""
    unsynced = sorted(t for fn, types in _rule_functions().items() if "shrink_attr" in inspect.getsource(fn)
                      for t in types if t not in dygraph_apply._GROUP_ATTRS)
    assert not unsynced, f"op types whose rule shrinks an attribute the dygraph applier cannot sync: {unsynced}"


def test_every_registered_criterion_scores_each_master_channel():
    with oracle.ir_guard("pir"):
        main, startup, *_ = oracle.build(lambda x: nets.head(nets.conv(x, 3, 6, "crit"), 6, 8), [3, 8, 8])
        scope, _ = oracle.init_scope(startup, main)
        view = view_of(main)
        group, read = discover(view, "crit_weights"), scope_reader(scope, view)
        for name in CRITERIA.names():
            scores = np.asarray(CRITERIA.get(name)(group, read))
            assert scores.shape == (6,) and np.isfinite(scores).all(), f"criterion {name!r} gave {scores!r}"


def test_every_detector_family_keeps_the_contract_and_has_a_config():
    from ppprune import models  # noqa: F401 - registers the architectures
    from ppprune.models.base import Detector
    from ppprune.registry import ARCHITECTURES

    named = set()
    for path in (ROOT / "configs").rglob("*.yml"):
        named.add((yaml.safe_load(path.read_text()) or {}).get("architecture"))
    families = [n for n in ARCHITECTURES.names() if issubclass(ARCHITECTURES.get(n), Detector)]
    assert families, "no detector family registered"
    for name in families:
        cls = ARCHITECTURES.get(name)
        lacking = [m for m in ("train_specs", "loss", "predict") if getattr(cls, m) is getattr(Detector, m)]
        assert not lacking, f"{name} does not define {lacking} (see ppprune/models/base.py)"
        assert callable(getattr(cls, "from_config", None)), f"{name} has no from_config classmethod"
        assert name in named, f"no config in configs/ names architecture {name!r}"


def test_every_deploy_backend_is_found_by_its_module_name_and_takes_the_options():
    """`create_predictor(prefix, backend=name)` imports `ppprune/deploy/<name>.py` on first use: a backend
    registered under another name would only be found once something else imported it."""
    for module in pkgutil.iter_modules(deploy.__path__):
        importlib.import_module(f"ppprune.deploy.{module.name}")
    ours = {n: deploy.BACKENDS.get(n) for n in deploy.BACKENDS.names()
            if deploy.BACKENDS.get(n).__module__.startswith("ppprune.deploy.")}
    assert "paddle_inference" in ours
    for name, factory in ours.items():
        assert factory.__module__ == f"ppprune.deploy.{name}", (
            f"backend {name!r} is registered in {factory.__module__}: register it in ppprune/deploy/{name}.py")
        inspect.signature(factory).bind("model_prefix", threads=1, use_gpu=False, onednn=True)


def _tool_module(path):
    """(the module tools/<name>.py runs `main` of, as its source file) from its `__main__` block."""
    tree = ast.parse(path.read_text())
    (block,) = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
    call = ast.unparse(block.body[0])
    if call == "sys.exit(runner.run(main))":
        return path, tree
    aliases = {(a.asname or a.name): a.name for n in tree.body if isinstance(n, ast.ImportFrom)
               and n.module == "ppprune.cli" for a in n.names}
    for alias, name in aliases.items():
        if call == f"sys.exit(runner.run({alias}.main))":
            source = ROOT / "ppprune" / "cli" / f"{name}.py"
            return source, ast.parse(source.read_text())
    raise AssertionError(f"{path.name}: its __main__ block is {call!r}, not sys.exit(runner.run(<module>.main))")


def test_every_tool_defines_run_and_main_from_it():
    """One convention: `run(argv)` does the work, `main = runner.exit_zero(run)`, the script exits with
    `runner.run(main)` (0, 2 on bad input, 128 + the signal when interrupted)."""
    for path in sorted((ROOT / "tools").glob("*.py")):
        source, tree = _tool_module(path)
        defs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        mains = [ast.unparse(n.value) for n in tree.body if isinstance(n, ast.Assign)
                 and [ast.unparse(t) for t in n.targets] == ["main"]]
        assert "run" in defs and "main" not in defs and mains == ["runner.exit_zero(run)"], (
            f"{source.relative_to(ROOT)} (run by tools/{path.name}): define run(argv) and "
            "main = runner.exit_zero(run)")
