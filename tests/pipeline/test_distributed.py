"""The tools under `python -m paddle.distributed.launch` with 2 CPU processes (gloo), against one process.

Every launch runs the tool through `traced_tool.py` (written below), which records per rank the files the
tool replaces into place (all outputs are written atomically, temp file + os.replace) and the evaluations
sensitive.py runs, and can make rank 1 die mid-analysis.
"""
import os
import pickle
import subprocess
import sys
import time

import numpy as np
import pytest

from ppprune.prune.sensitive import load_sensitivities, sensitivity_baseline

from tests.helpers import ROOT

pytestmark = pytest.mark.heavy(175)  # seconds, about: heavy modules start first
PARAMS = "yolo_block.0.0.0.conv.weights,yolo_block.0.0.1.conv.weights,yolo_block.0.1.0.conv.weights"

TRACED_TOOL = '''
import os, runpy, sys
rank, trace = os.environ.get("PADDLE_TRAINER_ID", "0"), os.environ["TRACE_DIR"]

def note(kind, text):
    with open(os.path.join(trace, f"{kind}.{rank}"), "a") as f:
        f.write(text + "\\n")

_replace = os.replace
def replace(src, dst, *args, **kwargs):
    note("writes", os.path.abspath(dst))
    return _replace(src, dst, *args, **kwargs)
os.replace = replace

import ppprune.engine as engine
_eval_loop, calls = engine.eval_loop, [0]
def eval_loop(*args, **kwargs):
    calls[0] += 1
    if rank == "1" and calls[0] == int(os.environ.get("RANK1_DIES_AT_EVAL", 0)):
        os._exit(17)  # as if killed: no cleanup, no message
    out = _eval_loop(*args, **kwargs)
    note("evals", "1")
    return out
engine.eval_loop = eval_loop

swap = os.environ.get("RANK1_ARG_SWAP")  # "old=>new": rank 1 gets a different command line
if rank == "1" and swap:
    old, new = swap.split("=>")
    sys.argv = [new if a == old else a for a in sys.argv]
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
'''


def _env(**extra):
    return dict(os.environ, PYTHONPATH=ROOT, PYTHONWARNINGS="ignore", GLOG_minloglevel="2", **extra)


def run_tool(name, *args):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", name), *args], capture_output=True,
                          text=True, env=_env(), timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


class Launch:
    """One `paddle.distributed.launch` of a tool: return code, launcher output, per-rank logs and traces."""

    def __init__(self, work, tag, name, *args, nproc=2, **env):
        self.dir = work["tmp"] / tag
        self.trace = self.dir / "trace"
        self.trace.mkdir(parents=True)
        cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(nproc),
               "--log_dir", str(self.dir / "log"), work["traced"], os.path.join(ROOT, "tools", name), *args]
        tic = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(TRACE_DIR=str(self.trace), **env),
                              timeout=600)
        self.seconds = time.time() - tic
        self.code, self.out = proc.returncode, proc.stdout + proc.stderr
        self.logs = [self._read(self.dir / "log" / f"workerlog.{r}") for r in range(nproc)]

    @staticmethod
    def _read(path):
        return path.read_text(errors="replace") if path.exists() else ""

    def lines(self, kind, rank):
        return self._read(self.trace / f"{kind}.{rank}").split()

    def explain(self):
        return self.out[-3000:] + "".join(f"\n--- rank {r} ---\n{log[-3000:]}" for r, log in enumerate(self.logs))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A tiny config (frozen BN statistics, so a step does not depend on how the batch is split) and a
    briefly trained checkpoint every run starts from."""
    from tests.helpers import tiny

    tmp = tmp_path_factory.mktemp("dist")
    common = tiny.write_config(tmp, name="common")
    cfg = tmp / "tiny.yml"
    cfg.write_text(f"""_BASE_: [{common}]
save_dir: {tmp / 'base'}
max_iters: 4
freeze_norm_stats: true
VOCMetric: {{overlap_thresh: 0.01}}
TrainReader: {{shuffle: true, seed: 7}}
""")
    traced = tmp / "traced_tool.py"
    traced.write_text(TRACED_TOOL)
    code, out = run_tool("train.py", "-c", str(cfg))
    assert code == 0, out
    return {"tmp": tmp, "cfg": str(cfg), "base": str(tmp / "base" / "tiny" / "model_final"), "traced": str(traced)}


@pytest.mark.parametrize("n,drop_last", [(12, False), (11, False), (11, True)])
def test_rank_shards_make_up_the_global_batches(n, drop_last):
    from ppprune.data.loader import _BatchSampler

    one = _BatchSampler(n, 6, True, drop_last, seed=5)
    ranks = [_BatchSampler(n, 2, True, drop_last, seed=5, rank=r, world=3) for r in range(3)]
    for epoch in (0, 1):
        for s in [one] + ranks:
            s.epoch = epoch
        shards = [list(s) for s in ranks]
        assert len({len(b) for b in shards}) == 1 and len(shards[0]) == len(one)  # no rank runs out first
        for g, batch in enumerate(one):
            got = sum((shard[g] for shard in shards), [])
            assert len({len(shard[g]) for shard in shards}) == 1
            assert got[:len(batch)] == batch  # the ranks see one process's global batch (the last one padded)
    orders = []
    for epoch in (0, 1):
        one.epoch = epoch
        orders.append(list(one))
    assert orders[0] != orders[1]  # each epoch its own order


def load(prefix):
    with open(prefix + ".pdparams", "rb") as f:
        return pickle.load(f)


def assert_same_weights(a, b, rtol=1e-4, atol=1e-6):
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=rtol, atol=atol, err_msg=name)


@pytest.fixture(scope="module")
def trained(work):
    """4 data-parallel steps of 2 ranks x 2 images, from the base checkpoint."""
    run = Launch(work, "dp", "train.py", "-c", work["cfg"], "-o", f"pretrain_weights={work['base']}",
                 f"save_dir={work['tmp'] / 'dp'}")
    assert run.code == 0, run.explain()
    return run


def test_data_parallel_steps_equal_one_process_with_the_doubled_batch(work, trained):
    assert "data-parallel: 2 ranks, gloo" in trained.logs[0] and "this is rank 1" in trained.logs[1]
    code, out = run_tool("train.py", "-c", work["cfg"], "-o", f"pretrain_weights={work['base']}",
                         f"save_dir={work['tmp'] / 'one'}", "TrainReader.batch_size=4")
    assert code == 0, out
    assert "data-parallel: no (1 process)" in out
    dp, one = work["tmp"] / "dp" / "tiny", work["tmp"] / "one" / "tiny"
    base = load(work["base"])
    for name in ("2", "model_final"):
        got, want = load(str(dp / name)), load(str(one / name))
        assert_same_weights(got, want)
        assert any(not np.allclose(got[n], base[n]) for n in base)  # the steps did change the weights


def test_only_rank_0_writes(work, trained):
    assert trained.lines("writes", 1) == []
    written = {os.path.relpath(p, work["tmp"] / "dp" / "tiny") for p in trained.lines("writes", 0)}
    assert {"config.yml", "2.pdparams", "2.pdopt", "4.pdparams", "model_final.pdparams"} <= written


def test_resume_under_launch_continues_identically(work, trained):
    snapshot = str(work["tmp"] / "dp" / "tiny" / "2")
    run = Launch(work, "resumed", "train.py", "-c", work["cfg"], "-r", snapshot, "-o",
                 f"save_dir={work['tmp'] / 'resumed'}")
    assert run.code == 0, run.explain()
    assert "resumed from" in run.logs[0]
    assert_same_weights(load(str(work["tmp"] / "resumed" / "tiny" / "model_final")),
                        load(str(work["tmp"] / "dp" / "tiny" / "model_final")), rtol=1e-6, atol=1e-7)


def test_prune_finetune_and_resume_under_launch(work):
    out = work["tmp"] / "pruned"
    run = Launch(work, "prune", "prune.py", "-c", work["cfg"], "-o", f"weights={work['base']}", f"save_dir={out}",
                 "max_iters=2", "--pruned_params", PARAMS, "--pruned_ratios", "0.2,0.3,0.4")
    assert run.code == 0, run.explain()
    digests = [next(line for line in log.splitlines() if "digest" in line) for log in run.logs]
    assert digests[0] == digests[1] and "the same on all 2 ranks" in digests[0]
    assert run.lines("writes", 1) == []
    final = str(out / "tiny_pruned" / "model_final")
    weights = load(final)
    assert weights["yolo_block.0.0.1.conv.weights"].shape[0] == 45  # 64 channels, 30% pruned
    code, text = run_tool("eval.py", "-c", work["cfg"], "-o", f"weights={final}", "YOLOv3Head.conf_thresh=0.0")
    assert code == 0, text
    assert "mAP" in text
    resumed = work["tmp"] / "pruned_resumed"
    run = Launch(work, "prune_resumed", "prune.py", "-c", work["cfg"], "-r", str(out / "tiny_pruned" / "2"),
                 "-o", f"save_dir={resumed}", "max_iters=4")
    assert run.code == 0, run.explain()
    again = load(str(resumed / "tiny_pruned" / "model_final"))
    assert {n: a.shape for n, a in again.items()} == {n: a.shape for n, a in weights.items()}


def test_ranks_that_prune_differently_stop_with_a_clear_error(work):
    run = Launch(work, "disagree", "prune.py", "-c", work["cfg"], "-o", f"weights={work['base']}",
                 f"save_dir={work['tmp'] / 'disagree'}", "max_iters=0", "--pruned_params", PARAMS,
                 "--pruned_ratios", "0.2,0.3,0.4", RANK1_ARG_SWAP="0.2,0.3,0.4=>0.5,0.3,0.4")
    assert run.code != 0
    assert "error: the ranks disagree on the pruning plan" in run.logs[0], run.explain()
    assert not os.path.exists(work["tmp"] / "disagree" / "tiny_pruned" / "plan.json")


def test_sensitivity_under_launch_matches_one_process_and_resumes_after_a_rank_dies(work):
    args = ["-c", work["cfg"], "-o", f"weights={work['base']}", "YOLOv3Head.conf_thresh=0.0",
            "--pruned_params", "yolo_block.0.0.0.conv.weights,yolo_block.1.tip.conv.weights,yolo_block.2.tip.conv.weights",
            "--pruned_ratios", "0.3,0.9", "--eval_batches", "1"]
    one = work["tmp"] / "sens_one.pkl"
    code, out = run_tool("sensitive.py", *args, "-s", str(one))
    assert code == 0, out
    merged = work["tmp"] / "sens_dp" / "sens.pkl"
    # rank 1 (1 weight x 2 ratios) dies when starting its 3rd evaluation: baseline and one ratio are saved
    first = Launch(work, "sens_killed", "sensitive.py", *args, "-s", str(merged), RANK1_DIES_AT_EVAL="3")
    assert first.code != 0 and first.seconds < 120, first.explain()
    assert "shard 1/2: 2 of 6 evaluations" in first.logs[1] and "shard 0/2: 4 of 6 evaluations" in first.logs[0]
    assert first.lines("evals", 1) == ["1", "1"] and not merged.exists()
    saved = [done(work["tmp"] / "sens_dp" / f"sens.shard{r}of2.pkl") for r in (0, 1)]
    assert saved[1] == 2
    again = Launch(work, "sens_rerun", "sensitive.py", *args, "-s", str(merged))
    assert again.code == 0, again.explain()
    # each rank evaluates only what its file lacks (baseline + its share of weights x ratios)
    assert [len(again.lines("evals", r)) for r in (0, 1)] == [1 + 4 - saved[0], 1 + 2 - saved[1]]
    with open(one, "rb") as f, open(merged, "rb") as g:
        want, got = pickle.load(f), pickle.load(g)
    assert got == want and sensitivity_baseline(str(merged)) == sensitivity_baseline(str(one))
    assert any(loss != 0 for losses in want.values() for loss in losses.values())  # not all 0


def done(shard_file):
    """Evaluations a shard file holds: its baseline and every (weight, ratio) loss."""
    if not os.path.exists(shard_file):
        return 0
    return (sensitivity_baseline(str(shard_file)) is not None) + sum(len(v) for v in load_sensitivities(str(shard_file)).values())


def test_more_ranks_than_cores_is_refused(work):
    cores = os.cpu_count() or 1
    if cores > 3:
        pytest.skip("starts one rank more than there are cores")
    run = Launch(work, "too_many", "train.py", "-c", work["cfg"], "-o", f"save_dir={work['tmp'] / 'too_many'}",
                 nproc=cores + 1)
    assert run.code != 0
    assert f"launched {cores + 1} ranks on this machine but it has {cores} CPU cores" in run.logs[0], run.explain()


def test_legacy_ir_data_parallel_on_cpu_is_refused(work):
    run = Launch(work, "legacy", "train.py", "-c", work["cfg"], "-o", f"save_dir={work['tmp'] / 'legacy'}",
                 FLAGS_enable_pir_api="0")
    assert run.code != 0
    assert "error: data-parallel training on CPU needs the PIR program format" in run.logs[0], run.explain()
    assert not os.path.exists(work["tmp"] / "legacy" / "tiny" / "config.yml")
