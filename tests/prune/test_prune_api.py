"""The seed API's semantics: shapes, backups, lazy/only_graph, replayable plans, bad input that changes nothing."""
import json

import numpy as np
import paddle
import pytest

from tests.helpers import nets, oracle
from ppprune.core.scope_write import restore_scope
from ppprune.core.errors import PruneError
from ppprune.core.plan import Plan
from ppprune.prune import Pruner


def seed_net(ir="pir", net=nets.residual):
    with oracle.ir_guard(ir):
        main, startup, x, out = oracle.build(net, [3, 8, 8])
        scope, exe = oracle.init_scope(startup, main)
    return main, scope, exe, x, out


def param_shapes(program):
    with oracle.ir_guard("pir" if isinstance(program, paddle.pir.Program) else "legacy"):
        from ppprune.core.graph import view_of

        view = view_of(program)
        return {n: list(view.shape(view.param_key(n))) for n in view.param_names()}


def scope_arrays(scope, names):
    return {n: np.array(scope.find_var(n).get_tensor()) for n in names if scope.find_var(n)}


@pytest.mark.parametrize("ir", ["pir", "legacy"])
def test_seed_example_shapes(ir):
    """conv4 at 0.5: conv1, conv2, conv4 lose outputs (residual adds); conv2, conv3, conv5 lose inputs."""
    main, scope, *_ = seed_net(ir)
    with oracle.ir_guard(ir):
        pruned, _, _ = Pruner().prune(main, scope, ["conv4_weights"], [0.5])
    shapes = {n: s for n, s in param_shapes(pruned).items() if n.endswith("_weights")}
    assert shapes == {"conv1_weights": [4, 3, 3, 3], "conv2_weights": [4, 4, 3, 3], "conv3_weights": [8, 4, 3, 3],
                      "conv4_weights": [4, 8, 3, 3], "conv5_weights": [8, 4, 3, 3], "conv6_weights": [8, 8, 3, 3]}
    assert np.array(scope.find_var("conv2_weights").get_tensor()).shape == (4, 4, 3, 3)


def test_input_program_untouched_and_backups_restore_exactly():
    main, scope, *_ = seed_net()
    before_shapes = param_shapes(main)
    before_text = str(main)
    names = list(before_shapes)
    before = scope_arrays(scope, names)
    pruned, backup, shape_backup = Pruner().prune(main, scope, ["conv4_weights"], [0.5], param_backup=True, param_shape_backup=True)
    assert str(main) == before_text
    assert shape_backup["conv2_weights"] == [8, 8, 3, 3]  # pruned on both axes
    assert np.array(scope.find_var("conv2_weights").get_tensor()).shape == (4, 4, 3, 3)
    restore_scope(scope, backup)
    after = scope_arrays(scope, names)
    for n in names:
        np.testing.assert_array_equal(after[n], before[n], err_msg=n)


def test_backups_are_none_unless_asked():
    main, scope, *_ = seed_net()
    _, backup, shapes = Pruner().prune(main, scope, ["conv4_weights"], [0.5])
    assert backup is None and shapes is None


def test_only_graph_leaves_scope_and_lazy_leaves_graph():
    main, scope, *_ = seed_net()
    names = list(param_shapes(main))
    before = scope_arrays(scope, names)
    pruned, _, _ = Pruner().prune(main, scope, ["conv4_weights"], [0.5], only_graph=True)
    assert param_shapes(pruned)["conv4_weights"] == [4, 8, 3, 3]
    for n, arr in scope_arrays(scope, names).items():
        np.testing.assert_array_equal(arr, before[n])
    lazy_prog, _, _ = Pruner().prune(main, scope, ["conv4_weights"], [0.5], lazy=True)
    assert param_shapes(lazy_prog) == param_shapes(main)
    w = np.array(scope.find_var("conv4_weights").get_tensor())
    assert w.shape == (8, 8, 3, 3) and int((np.abs(w).reshape(8, -1).sum(1) == 0).sum()) == 4


def test_coupled_params_with_same_ratio_prune_once():
    main, scope, *_ = seed_net()
    pruner = Pruner()
    pruner.prune(main, scope, ["conv1_weights", "conv2_weights", "conv4_weights"], [0.5, 0.5, 0.5])
    assert [e.param for e in pruner.plan.entries] == ["conv1_weights"]
    assert np.array(scope.find_var("conv4_weights").get_tensor()).shape == (4, 8, 3, 3)


def test_plan_replays_from_json(tmp_path):
    main, scope, *_ = seed_net()
    names = list(param_shapes(main))
    fresh = oracle.copy_scope(scope, names)
    pruner = Pruner("geometry_median")
    pruned, _, _ = pruner.prune(main, scope, ["conv4_weights", "conv6_weights"], [0.5, 0.3])
    pruner.plan.save(tmp_path / "plan.json")
    plan = Plan.load(tmp_path / "plan.json")
    assert json.loads((tmp_path / "plan.json").read_text())["criterion"] == "geometry_median"
    replayed, _, _ = Pruner().apply_plan(main, fresh, plan)
    assert param_shapes(replayed) == param_shapes(pruned)
    for n in names:
        np.testing.assert_array_equal(np.array(fresh.find_var(n).get_tensor()), np.array(scope.find_var(n).get_tensor()))


def test_output_conv_is_skipped_and_reported():
    def conv_out(x):
        y = nets.conv(x, 3, 8, "body")
        return nets.conv(y, 8, 4, "last", bn=False, act=None)

    main, scope, *_ = seed_net(net=conv_out)
    pruner = Pruner()
    pruned, _, _ = pruner.prune(main, scope, ["body_weights", "last_weights"], [0.5, 0.5])
    assert [s["param"] for s in pruner.plan.skipped] == ["last_weights"]
    assert "network output" in pruner.plan.skipped[0]["reason"]
    assert param_shapes(pruned)["last_weights"] == [4, 4, 3, 3]


def _unchanged(call, match):
    main, scope, *_ = seed_net()
    text, names = str(main), list(param_shapes(main))
    before = scope_arrays(scope, names)
    with pytest.raises(PruneError, match=match):
        call(main, scope)
    assert str(main) == text
    for n, arr in scope_arrays(scope, names).items():
        np.testing.assert_array_equal(arr, before[n])


@pytest.mark.parametrize("params,ratios,match", [
    (["conv4_weight"], [0.5], r"unknown parameter 'conv4_weight'.*Did you mean 'conv4_weights'"),
    (["conv4_weights"], [1.0], r"outside \[0, 1\)"),
    (["conv4_weights"], [-0.1], r"outside \[0, 1\)"),
    (["conv4_weights"], ["half"], r"outside \[0, 1\)"),
    (["conv4_weights", "conv3_weights"], [0.5], r"2 params but 1 ratios"),
    (["linear_0.w_0"], [0.5], r"not a convolution weight .*feeds matmul"),
    (["conv4_bn_scale"], [0.5], r"not a convolution weight .*feeds batch_norm"),
    (["conv4_weights", "conv2_weights"], [0.5, 0.25], r"same channels as 'conv4_weights' .*Give them the same ratio"),
    (["conv6_weights", "conv4_weights", "conv6_weights"], [0.1, 0.2, 0.1], r"more than once"),
])
def test_bad_input_is_a_clear_error_and_changes_nothing(params, ratios, match):
    _unchanged(lambda main, scope: Pruner().prune(main, scope, params, ratios), match)


def test_unknown_criterion_and_selector():
    with pytest.raises(PruneError, match="unknown criterion 'l1norm'.*Did you mean 'l1_norm'"):
        Pruner("l1norm")
    with pytest.raises(PruneError, match="unknown idx_selector 'best'.*Registered idx_selectors: default_idx_selector"):
        Pruner(idx_selector="best")


def test_op_without_rule_is_a_clear_error_and_changes_nothing():
    def with_cumsum(x):
        y = nets.conv(x, 3, 8, "body")
        y = paddle.cumsum(y, axis=1)
        return nets.head(y, 8, 8)

    main, scope, *_ = seed_net(net=with_cumsum)
    text = str(main)
    before = np.array(scope.find_var("body_weights").get_tensor())
    with pytest.raises(PruneError, match=r"cannot prune 'body_weights'.*'cumsum'.*no channel rule.*Leave 'body_weights' out"):
        Pruner().prune(main, scope, ["body_weights"], [0.5])
    assert str(main) == text
    np.testing.assert_array_equal(np.array(scope.find_var("body_weights").get_tensor()), before)


def test_grouped_conv_loses_whole_groups():
    """reduce feeds a conv of 4 groups of 4 channels, so its channels go a group at a time: round(4 * 0.3) = 1
    group, the one whose filters have the least mean L1."""
    main, scope, *_ = seed_net(net=nets.grouped)
    w = np.array(scope.find_var("reduce_weights").get_tensor()).reshape(16, -1)
    weakest = int(np.argmin(np.abs(w).sum(1).reshape(4, 4).mean(1)))
    pruner = Pruner()
    pruned, _, _ = pruner.prune(main, scope, ["reduce_weights"], [0.3])
    (entry,) = pruner.plan.entries
    assert entry.pruned == list(range(4 * weakest, 4 * weakest + 4))
    assert param_shapes(pruned)["group_weights"][0] == 12


@pytest.mark.parametrize("target_ir", ["legacy", "pir"])
def test_legacy_pdmodel_from_load_inference_model(tmp_path, target_ir):
    """A Paddle 2.x style .pdmodel: loaded in legacy mode, or translated to PIR, then pruned and run."""
    with oracle.ir_guard("legacy"):
        main, startup, x, out = oracle.build(nets.residual, [3, 8, 8])
        scope, exe = oracle.init_scope(startup, main)
        with paddle.static.scope_guard(scope):
            paddle.static.save_inference_model(str(tmp_path / "m"), [x], [out], exe, program=main)
    feed = {"image": np.random.RandomState(0).rand(2, 3, 8, 8).astype("float32")}
    with oracle.ir_guard("legacy"):
        load_scope = paddle.static.Scope()
        with paddle.static.scope_guard(load_scope):
            program, feeds, fetches = paddle.static.load_inference_model(str(tmp_path / "m"), exe)
        if target_ir == "pir":
            program = paddle.pir.translate_to_pir(program.desc)
    if target_ir == "pir":
        from ppprune.core.graph import view_of

        view = view_of(program)
        fetch_value = [view.values[k] for k in view._markers][0]
        fetch = lambda p: [p.lookup(fetch_value)]
    else:
        fetch = lambda p: [p.lookup(fetches[0])]
    with oracle.ir_guard(target_ir):
        zeroed_scope = oracle.copy_scope(load_scope, oracle.persistable_names(program))
        lazy = Pruner()
        lazy_prog, _, _ = lazy.prune(program, zeroed_scope, ["conv4_weights"], [0.5], lazy=True)
        real = Pruner()
        pruned, _, _ = real.prune(program, load_scope, ["conv4_weights"], [0.5])
        (want,) = oracle.run(exe, lazy_prog, zeroed_scope, feed, fetch(lazy))
        (got,) = oracle.run(exe, pruned, load_scope, feed, fetch(real))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_place_is_honoured():
    main, scope, *_ = seed_net()
    Pruner().prune(main, scope, ["conv4_weights"], [0.5], place=paddle.CPUPlace())
    assert scope.find_var("conv4_weights").get_tensor()._place().is_cpu_place()


def test_reshape_rules_with_unit_and_unknown_dims():
    from ppprune.core.reshape_geometry import regroup as _regroup

    assert _regroup([1, 8, 1, 1], [1, 8], 1) == (1, 1)       # a fixed batch of 1 after global pooling
    assert _regroup([-1, 8, 4, 4], [-1, 128], 1) == (1, 16)  # flatten before fc: each channel is 16 features
    assert _regroup([8], [1, 8, 1, 1], 0) == (1, 1)          # a conv bias broadcast to NCHW
    assert _regroup([-1, 8, 4, 4], [-1, 4, 32], 1) is None   # channels folded with space: cannot follow


@pytest.mark.parametrize("ir", ["pir", "legacy"])
def test_each_coupled_group_is_walked_once(ir, monkeypatch):
    """Naming every conv of a residual stage must not walk the stage's shared group once per conv (that is
    quadratic in depth); the plan is the same in any order."""
    import ppprune.core.planner as planning

    net, shape = nets.vision_model("resnet18")
    with oracle.ir_guard(ir):
        main, startup, *_ = oracle.build(net, shape)
        scope, _ = oracle.init_scope(startup, main)
        convs = oracle.conv_weights(main)
        walks = []
        real = planning.discover
        monkeypatch.setattr(planning, "discover", lambda view, param: walks.append(param) or real(view, param))
        forward = Pruner()
        forward.prune(main, scope, convs, [0.3] * len(convs), only_graph=True)
        assert len(walks) == len(forward.plan.entries) + len(forward.plan.skipped) < len(convs)
        backward = Pruner()
        backward.prune(main, scope, convs[::-1], [0.3] * len(convs), only_graph=True)
    assert sorted(forward.plan.tensors) == sorted(backward.plan.tensors)
    assert forward.plan.shapes == backward.plan.shapes


def test_scope_tensors_are_read_without_copy_and_backups_own_their_memory():
    from ppprune.core import tensors

    main, scope, *_ = seed_net()
    tensor = scope.find_var("conv4_weights").get_tensor()
    view = tensors.read(tensor)
    assert view.__array_interface__["data"][0] == tensor._ptr() and not view.flags.writeable
    before = np.array(tensor)
    _, backup, _ = Pruner().prune(main, scope, ["conv4_weights"], [0.5], param_backup=True)
    assert backup["conv4_weights"].flags.owndata
    np.testing.assert_array_equal(backup["conv4_weights"], before)
