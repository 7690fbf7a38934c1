"""A two-stage detector (`nets.two_stage`, Faster R-CNN in miniature), both IRs: the FPN's convs prune
through roi_align, the RPN's shared conv through a slice of other axes; listing every conv with
`skip_blocked` (what `--pruned_params all` does) skips, with the reason, the convs whose channels meet an op
without a rule or a slice that cuts them, and naming one of those fails with the clear error."""
import json
import re

import paddle
import pytest

from tests.helpers import nets, oracle
from tests.helpers.tools import run_in_process
from ppprune.core.errors import PruneError
from ppprune.prune import Pruner

NET, SHAPE = nets.TWO_STAGE
# The top-k is 'topk' in PIR and 'top_k_v2' in a legacy program.
BLOCKED = {"rpn_score_weights": r"^its channels reach 'top_?k(_v2)?' \(op #\d+\) and ppprune has no channel rule",
           "rpn_pred_weights": r"^its channels reach 'slice' \(op #\d+\) and it cuts axis 1, the pruned one",
           "rpn_box_weights": r"^its channels reach a network output"}


def _every_conv(ir):
    """(program, scope, every conv weight) of a fresh build."""
    with oracle.ir_guard(ir):
        main, startup, *_ = oracle.build(NET, SHAPE)
        scope, _ = oracle.init_scope(startup, main)
        return main, scope, oracle.conv_weights(main)


@pytest.mark.parametrize("ir", ["pir", "legacy"])
def test_every_prunable_conv_prunes_exactly_and_the_others_are_skipped_with_the_reason(ir, tmp_path):
    main, scope, convs = _every_conv(ir)
    every = Pruner()
    with oracle.ir_guard(ir):
        every.prune(main, scope, convs, 0.3, only_graph=True, skip_blocked=True)
    reasons = {s["param"]: s["reason"] for s in every.plan.skipped}
    assert sorted(reasons) == sorted(BLOCKED)
    for param, pattern in BLOCKED.items():
        assert reasons[param] and re.match(pattern, reasons[param]), reasons[param]
    planned = {e.param for e in every.plan.entries}
    # through roi_align (the FPN output), through a slice along the height (the RPN's shared conv)
    assert {"frc_fpn_weights", "rpn_conv_weights", "roi_conv_weights"} <= planned

    prunable = [p for p in convs if p not in reasons]
    pruner = oracle.check(NET, SHAPE, prunable, [0.3] * len(prunable), ir, infer_dir=str(tmp_path))
    assert [(e.param, e.pruned) for e in pruner.plan.entries] == [(e.param, e.pruned) for e in every.plan.entries]


@pytest.mark.parametrize("param,message", [
    ("rpn_score_weights", r"cannot prune 'rpn_score_weights': its channels reach op 'topk'.*no channel rule for this "
                          r"op type. Leave 'rpn_score_weights' out of the pruned params"),
    ("rpn_pred_weights", r"cannot prune 'rpn_pred_weights': its channels reach op 'slice'.*it cuts axis 1, the pruned one"),
])
def test_a_named_conv_that_cannot_be_followed_still_fails_clearly(param, message):
    main, scope, convs = _every_conv("pir")
    # alone, or among every prunable conv: without skip_blocked a named conv is never dropped silently
    for params in ([param], [p for p in convs if p not in BLOCKED or p == param]):
        with pytest.raises(PruneError, match=message):
            Pruner().prune(main, scope, params, 0.3, only_graph=True)


def test_tool_all_skips_the_blocked_convs_and_a_named_one_is_refused(tmp_path, capfd):
    with oracle.ir_guard("pir"):
        main, startup, x, out = oracle.build(NET, SHAPE)
        scope, exe = oracle.init_scope(startup, main)
        with paddle.static.scope_guard(scope):
            paddle.static.save_inference_model(str(tmp_path / "src" / "model"), [x], [out], exe, program=main)
    argv = ["--model", str(tmp_path / "src"), "--pruned_ratios", "0.5", "--output_dir"]
    # --round_to rounds only what can be pruned: the blocked convs are left to the planner's skip
    assert run_in_process("prune_inference", argv + [str(tmp_path / "all"), "--pruned_params", "all",
                                                     "--round_to", "2"]) in (0, None)
    text = capfd.readouterr().out
    assert "skipped rpn_score_weights: its channels reach 'topk'" in text
    assert "skipped rpn_pred_weights: its channels reach 'slice'" in text
    plan = json.loads((tmp_path / "all" / "plan.json").read_text())
    assert {s["param"] for s in plan["skipped"]} == set(BLOCKED)
    assert all((e["size"] - len(e["pruned"])) % 2 == 0 for e in plan["entries"]) and plan["entries"]

    assert run_in_process("prune_inference", argv + [str(tmp_path / "one"), "--pruned_params", "rpn_score_weights"]) == 2
    err = [line for line in capfd.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "cannot prune 'rpn_score_weights'" in err[0] and "no channel rule" in err[0]
    assert not (tmp_path / "one").exists()
