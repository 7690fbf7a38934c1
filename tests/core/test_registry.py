"""One Registry for every named component: dependency-free in the core, with the error its caller chooses."""
import subprocess
import sys

import pytest

from ppprune.core.registry import Registry


def test_importing_the_core_does_not_import_the_config_stack():
    code = ("import sys, ppprune.core, ppprune.core.planner, ppprune.core.rules, ppprune.core.criteria, "
            "ppprune.core.selectors; bad = sorted({'yaml', 'ppprune.config.loader', 'ppprune.registry'} & "
            "set(sys.modules)); assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


class LookupFailed(Exception):
    pass


def test_register_by_decorator_call_and_several_names():
    reg = Registry("widget", error=LookupFailed)

    @reg.register
    def plain():
        return 1

    reg.register(len, name="size")
    shared = reg.under("a", "b")(abs)
    assert shared is abs and reg.get("a") is reg.get("b") is abs
    assert reg.get("plain") is plain and reg.build("size", [1, 2]) == 2
    assert reg.names() == ["a", "b", "plain", "size"] and set(reg) == set(reg.names())
    assert "plain" in reg and "other" not in reg
    assert reg.table["size"] is len and reg.table.get("other") is None


def test_unknown_name_raises_the_chosen_error_with_near_matches():
    reg = Registry("widget", error=LookupFailed)
    reg.register(len, name="l1_norm")
    with pytest.raises(LookupFailed, match="unknown widget 'l1norm'. Did you mean 'l1_norm'"):
        reg.get("l1norm")


def test_a_name_taken_by_another_object_is_refused():
    reg = Registry("widget")
    reg.register(len, name="x")
    reg.register(len, name="x")  # the same object again (a module imported twice) is fine
    with pytest.raises(KeyError, match="widget 'x' is already registered"):
        reg.register(abs, name="x")
    with pytest.raises(TypeError):
        reg.table["y"] = abs  # the table is read-only: registering goes through `register`


def test_rules_and_evaluators_are_registries():
    from ppprune.core.errors import PruneError
    from ppprune.core.rules import RULES, conv2d
    from ppprune.config.loader import ConfigError
    from ppprune.engine import evaluators  # noqa: F401 - registers the metrics
    from ppprune.registry import EVALUATORS

    assert isinstance(RULES, Registry) and RULES.get("depthwise_conv2d") is conv2d
    with pytest.raises(PruneError, match="unknown channel rule"):
        RULES.get("no_such_op")
    assert {"VOC", "COCO", "accuracy"} <= set(EVALUATORS.names())
    with pytest.raises(ConfigError, match="unknown metric"):
        EVALUATORS.get("mAP")
