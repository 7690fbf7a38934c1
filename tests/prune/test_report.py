"""--print_params' report and the Paddle Inference helpers."""
import numpy as np
import paddle

from tests.helpers import nets, oracle
from ppprune import deploy
from ppprune.prune.report import format_report, prunable_params


def test_report_lists_couplings_flops_and_blocked_weights():
    def net(x):
        y = nets.residual(x)
        return y

    main, *_ = oracle.build(net, [3, 8, 8])
    prunable, blocked = prunable_params(main)
    rows = {r["name"]: r for r in prunable}
    assert set(rows) == {f"conv{i}_weights" for i in range(1, 7)} and not blocked
    assert "conv4_weights[0]" in rows["conv1_weights"]["coupled"]
    assert "conv2_weights[1]" in rows["conv1_weights"]["coupled"]
    assert rows["conv6_weights"]["coupled"] == ["linear_0.w_0[0]"]
    assert abs(sum(r["flops_share"] for r in prunable) - 1.0) < 0.05  # convs are nearly all of the cost
    text = format_report(prunable, blocked)
    assert "conv3_weights" in text and "conv4_weights[1]" in text


def test_report_says_why_a_weight_is_blocked():
    def net(x):
        y = nets.conv(x, 3, 8, "body")
        y = paddle.cumsum(y, axis=1)
        return nets.conv(y, 8, 4, "last", bn=False, act=None)

    main, *_ = oracle.build(net, [3, 8, 8])
    prunable, blocked = prunable_params(main)
    reasons = {r["name"]: r["reason"] for r in blocked}
    assert "cumsum" in reasons["body_weights"] and "network output" in reasons["last_weights"]
    assert not prunable
    assert "not prunable" in format_report(prunable, blocked)


def test_predictor_runs_and_times_an_exported_model(tmp_path):
    main, startup, x, out = oracle.build(nets.fpn, [3, 8, 8])
    scope, exe = oracle.init_scope(startup, main)
    feed = {"image": np.random.RandomState(0).rand(1, 3, 8, 8).astype("float32")}
    (want,) = oracle.run(exe, main, scope, feed, [out])
    with paddle.static.scope_guard(scope):
        paddle.static.save_inference_model(str(tmp_path / "model"), [x], [out], exe, program=main)
    # fpn upsamples after a conv + leaky_relu
    assert deploy.onednn_passes_to_skip(str(tmp_path / "model.json")) == ["onednn_placement_pass", "conv_activation_onednn_fuse_pass",
                                                                         "inplace_pass"]
    predictor = deploy.create_predictor(str(tmp_path / "model"))
    (got,) = deploy.run(predictor, feed)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert deploy.latency_ms(predictor, feed, warmup=1, repeat=3) > 0
    stats, (before, after) = deploy.compare_latency({"a": predictor, "b": predictor}, feed, rounds=3, repeat=2, warmup=1)
    for s in stats.values():
        assert 0 < s["min"] <= s["median"] <= s["max"]
    assert before >= 0 and after >= 0


def test_spread_warning_only_when_the_spread_hides_the_difference():
    wide = {"a": {"min": 8.0, "median": 10.0, "max": 14.0}, "b": {"min": 9.0, "median": 11.0, "max": 12.0}}
    assert "exceeds the difference" in deploy.spread_warning(wide, "a", "b")
    clear = {"a": {"min": 9.9, "median": 10.0, "max": 10.2}, "b": {"min": 5.0, "median": 5.1, "max": 5.3}}
    assert deploy.spread_warning(clear, "a", "b") is None
