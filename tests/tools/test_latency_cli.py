"""tools/prune.py --target_latency on the tiny model, in this process: the plan it writes is a normal plan
(the pruned model computes the original with those channels zeroed), its report says what was asked and
got; a second run (with -s sensitivities) measures no block, and an impossible target or a bad combination
of flags is one line, exit 2, nothing written."""
import json
import os
import re

import numpy as np
import pytest

from ppprune.deploy import latency_model
from tests.helpers import oracle
from tests.helpers.tools import run_in_process

pytestmark = pytest.mark.heavy(30)  # seconds, about: heavy modules start first

# three early convs at the largest resolutions; few blocks keep the table cheap (about 30 timings)
PARAMS = ["conv2_1_sep_weights", "conv2_2_sep_weights", "conv3_1_sep_weights"]
TARGET = 0.005  # small: at 96 px per-op overhead dominates, so the three convs can buy only a few percent


@pytest.fixture(scope="module")
def counted():
    """Block measurements per run: time_block is looked up at call time, so wrapping it counts them."""
    calls, real = [], latency_model.time_block
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(latency_model, "time_block", lambda *a, **k: calls.append(1) or real(*a, **k))
        yield calls


@pytest.fixture(scope="module")
def world(tiny_cli, tmp_path_factory, counted):
    """A fresh table cache (for every test of the module) and one --target_latency run with it."""
    tmp = tmp_path_factory.mktemp("latency_cli")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PPPRUNE_CACHE", str(tmp / "cache"))
        out = tmp / "first"
        code = prune(tiny_cli, out, "--target_latency", str(TARGET))
        first = len(counted)
        yield {**tiny_cli, "tmp": tmp, "code": code, "out": out / "tiny_pruned", "measured": first}


def prune(tiny_cli, save_dir, *args, params=PARAMS):
    return run_in_process("prune", ["-c", tiny_cli["cfg"], "-o", f"weights={tiny_cli['base']}", f"save_dir={save_dir}",
                                    "max_iters=0", "-p", ",".join(params), *args])


def test_plan_is_normal_pruned_equals_zeroed(world):
    from ppprune.cli.driver import load_model
    from ppprune.config import load_config
    from ppprune.models.base import Detector
    from ppprune.prune import Pruner

    assert world["code"] == 0
    plan = json.loads((world["out"] / "plan.json").read_text())
    params, ratios = [e["param"] for e in plan["entries"]], [e["ratio"] for e in plan["entries"]]
    assert params and set(params) <= set(PARAMS) and all(0 < r < 1 for r in ratios)
    image = np.random.RandomState(1).rand(3, 96, 96).astype("float32")
    # the pruned checkpoint the tool wrote, reshaped by its plan.json alone
    pruned = load_model(load_config(world["cfg"], [f"weights={world['out'] / 'model_final'}"]), "eval", None)
    feed = {k: v for k, v in Detector.eval_inputs(image, (96, 96)).items() if k in pruned.spec.feeds}
    (got,) = oracle.run(pruned.exe, pruned.spec.program, pruned.scope, feed, pruned.spec.network[:1])
    # the original weights with the plan's channels zeroed
    original = load_model(load_config(world["cfg"], [f"weights={world['base']}"]), "eval", None)
    lazy = Pruner()
    zeroed_program, _, _ = lazy.prune(original.spec.program, original.scope, params, ratios, lazy=True)
    assert [e.pruned for e in lazy.plan.entries] == [e["pruned"] for e in plan["entries"]]
    (zeroed,) = oracle.run(original.exe, zeroed_program, original.scope, feed, [lazy.lookup(original.spec.network[0])])
    assert got.shape == zeroed.shape
    np.testing.assert_allclose(got, zeroed, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(zeroed).max())))


def test_report_says_what_was_asked_and_got(world):
    report = json.loads((world["out"] / "prune_report.json").read_text())
    lat = report["latency"]
    assert report["asked"]["target_latency"] == TARGET and lat["target"] == TARGET
    # the prediction of the plan as carried out meets the target (the greedy stops there)
    assert lat["predicted_ms"] <= lat["original_ms"] * (1 - TARGET) + 1e-9
    assert lat["predicted_removed"] == pytest.approx(1 - lat["predicted_ms"] / lat["original_ms"])
    for label in ("original", "pruned"):
        m = lat["measured_ms"][label]
        assert 0 < m["min"] <= m["median"] <= m["max"]
    assert lat["measured_removed"] == pytest.approx(1 - lat["measured_ms"]["pruned"]["median"]
                                                    / lat["measured_ms"]["original"]["median"])
    assert lat["prediction_error"] == pytest.approx(
        (lat["predicted_ms"] / lat["original_ms"]) / (1 - lat["measured_removed"]) - 1)
    assert len(lat["load_average"]) == 2 and lat["rounds"] == 5
    # the choice was measured before pruning: each search round says what it asked, predicted and measured
    search = lat["search_rounds"]
    assert 1 <= len(search) <= 3 and search[0]["asked"] == TARGET and all(r["asked"] >= TARGET for r in search)
    assert all(set(r) == {"asked", "predicted_removed", "measured_removed"} for r in search)
    assert lat["settings"] == latency_model.Settings(threads=1).key()
    assert lat["table_measured"] == world["measured"] > 0  # the first run measured every block it needed
    assert os.path.isfile(lat["table"]) and lat["table"].startswith(str(world["tmp"] / "cache" / "latency"))
    assert 0 < report["flops"]["removed"] < 1 and report["flops"]["after"] < report["flops"]["before"]
    assert report["params"]["after"] < report["params"]["before"]
    assert {e["param"] for e in report["entries"]} == {e["param"] for e in
                                                       json.loads((world["out"] / "plan.json").read_text())["entries"]}


def test_impossible_target_with_sensitivities_measures_nothing_writes_nothing(world, counted, tmp_path, capsys):
    """A second run, with -s: every block time comes from the first run's table; the target is out of reach
    of the three convs, so the run is one line, exit 2, and no output folder."""
    from ppprune.prune import save_sensitivities

    sens = tmp_path / "sens" / "sens.pkl"
    os.makedirs(sens.parent)
    save_sensitivities(str(sens), {p: {r: 0.01 * r for r in (0.25, 0.5, 0.75)} for p in PARAMS})
    before = len(counted)
    code = prune(world, tmp_path / "out", "--target_latency", "0.99", "-s", str(sens))
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code == 2 and len(err) == 1, captured.out + captured.err
    assert re.search(r"cannot remove 99\.0% of the measured latency .* predicted to remove \d+\.\d%", err[0]), err
    assert len(counted) == before, captured.out  # a second run measures nothing
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.parametrize("args, message", [
    (["--target_latency", "1.5"], r"--target_latency 1\.5: give the share of latency to remove, in \(0, 1\)"),
    (["--target_latency", "0.3", "--target_flops", "0.3"], "give one target: --target_flops or --target_latency"),
    (["--target_latency", "0.3", "--pruned_ratios", "0.2"], "--target_latency chooses the ratios: drop --pruned_ratios"),
])
def test_bad_flags_are_one_line_and_write_nothing(world, tmp_path, capsys, args, message):
    code = prune(world, tmp_path / "out", *args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and re.search(message, err[0]), err
    assert not (tmp_path / "out").exists()  # nothing written

