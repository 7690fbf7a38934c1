"""A latency model of the deploy backend, measured on this machine.

Each conv of a program, with the batch norm, bias and activation the backend fuses into it, is a *block*.
A block is timed alone in Paddle Inference (the config export uses: threads, oneDNN or not, GPU) at a few
channel counts; the times are kept in a lookup table file keyed by backend, device, threads, Paddle
version and the block's exact shape, so each is measured once on a machine and reused. Per block a
least-squares line over (multiply-adds, output channels, input channels) fitted to those times predicts
it at any channel count. A pruned network is predicted as the measured latency of the whole original
network plus the change of its blocks: what no block covers (concats, upsampling, adds) is assumed not to
change, which is why the prediction is checked against a measurement of the pruned network.
"""
import json
import os
import tempfile
import time

import numpy as np

from ..core.convs import CONV_TYPES
from ..core.errors import PruneError
from ..core.graph import FORWARD
from ..fsutil import atomic_write

# activations the CPU and GPU backends fuse into the conv before them, with the attribute that shapes them
# (by its name in PIR, then in the legacy IR)
_FUSED_ACTS = {"relu": (), "relu6": (), "leaky_relu": (("negative_slope", "alpha"),), "swish": (), "silu": (),
               "hardswish": (), "sigmoid": (), "mish": ()}
# the channel shares a block is timed at: (output share, input share)
_GRID = {"both": [(1, 1), (.5, 1), (1, .5), (.5, .5), (.25, .25), (.25, 1)],
         "out": [(1, 1), (.75, 1), (.5, 1), (.25, 1)],
         "in": [(1, 1), (1, .75), (1, .5), (1, .25)],
         "tied": [(1, 1), (.75, .75), (.5, .5), (.25, .25)]}


class Block:
    """One conv with what follows it fused: geometry read from the view, channel counts kept apart."""

    def __init__(self, view, op):
        self.param = view.persistable_name(op.ins("filter")[0])
        self.filter_key = op.ins("filter")[0]
        self.type = op.type
        self.filter_shape = list(view.shape(self.filter_key))
        cout, cin_g, kh, kw = self.filter_shape
        x = view.shape((op.ins("input") or op.ins("x"))[0])
        self.cout, self.groups, self.kernel, self.hw = cout, int(op.attr("groups") or 1), (kh, kw), tuple(x[2:])
        self.cin = cin_g * self.groups
        self.depthwise = self.groups > 1 and self.groups == self.cin == self.cout
        self.strides, self.dilations = list(op.attr("strides")), list(op.attr("dilations"))
        self.paddings, self.padding_algorithm = list(op.attr("paddings")), op.attr("padding_algorithm") or "EXPLICIT"
        self.bias, self.norm, self.act = _fused_followers(view, op.outs("out")[0])

    def channels(self, shape):
        """(output channels, input channels, groups) of this conv when its filter has `shape`."""
        cout, cin_g = int(shape[0]), int(shape[1])
        groups = cout if self.depthwise else max(1, self.groups * cout // self.cout) if self.groups > 1 else 1
        return cout, cin_g * groups, groups

    def signature(self, cout, cin, groups):
        """The table key of this block at these channel counts: everything its time depends on."""
        act = self.act and f"{self.act[0]}{list(self.act[1])}"
        return (f"{self.type}|in={cin}|out={cout}|groups={groups}|k={self.kernel[0]}x{self.kernel[1]}"
                f"|hw={self.hw[0]}x{self.hw[1]}|s={self.strides}|p={self.paddings}/{self.padding_algorithm}"
                f"|d={self.dilations}|bias={int(self.bias)}|bn={int(self.norm)}|act={act}")


def _fused_followers(view, out):
    """(bias add, batch norm, (activation, attrs)) that follow a conv's output alone, in that order."""
    bias = norm = False
    act = None
    key = out
    for _ in range(3):
        users = view.consumers.get(key, [])
        if len(users) != 1 or view.is_fetched(key):
            break
        op = users[0]
        if op.type == "add" and not bias and not norm and any(view.persistable_name(k) for k in op.ins("y")):
            bias = True
        elif op.type == "batch_norm" and not norm:
            norm = True
        elif op.type in _FUSED_ACTS:
            act = (op.type, tuple(float(next(v for v in map(op.attr, names) if v is not None))
                                  for names in _FUSED_ACTS[op.type]))
            break
        else:
            break
        key = op.outs("out")[0]
    return bias, norm, act


def conv_blocks(view):
    """{filter name: Block} of every forward conv2d / depthwise conv of the view, in program order
    (a transposed conv is left to the unmodelled rest)."""
    return {b.param: b for b in (Block(view, op) for op in view.ops
                                 if op.kind == FORWARD and op.type in CONV_TYPES and op.type != "conv2d_transpose")}


class Settings:
    """What a measurement depends on besides the block: the backend and how it runs."""

    def __init__(self, threads=1, onednn=True, use_gpu=False, backend="paddle_inference"):
        import paddle

        if not isinstance(threads, int) or threads < 1:
            raise PruneError(f"threads={threads!r}: give a positive number of CPU threads")
        self.threads, self.onednn, self.use_gpu, self.backend = threads, bool(onednn), bool(use_gpu), backend
        self.device = "gpu" if use_gpu else "cpu"
        self.paddle = paddle.__version__

    def key(self):
        kernels = "" if self.use_gpu else ("-onednn" if self.onednn else "-native")
        return f"{self.backend}-{self.device}-t{self.threads}{kernels}-paddle{self.paddle}"


class LatencyTable:
    """Measured block times (ms) for one `Settings`, in a JSON file named by the settings' key, so tables
    of other machines' settings never mix. Saved after every few measurements: an interrupted
    measurement resumes where it stopped."""

    def __init__(self, folder, settings):
        self.settings = settings
        self.path = os.path.join(folder, f"latency-{settings.key()}.json")
        self.entries = {}
        if os.path.exists(self.path):
            with open(self.path) as f:
                data = json.load(f)
            if data.get("settings") != settings.key():
                raise PruneError(f"'{self.path}' holds times for {data.get('settings')!r}, not {settings.key()!r}: "
                                 f"it was renamed or edited; move it away to measure anew")
            self.entries = {k: float(v) for k, v in data["entries"].items()}

    def save(self):
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with atomic_write(self.path, announce=False) as f:
            json.dump({"settings": self.settings.key(), "entries": self.entries}, f, indent=1, sort_keys=True)


def default_table_folder():
    """Where tables live unless told: PPPRUNE_CACHE or ~/.cache/ppprune, then latency/."""
    root = os.environ.get("PPPRUNE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ppprune")
    return os.path.join(root, "latency")


def time_block(block, cout, cin, groups, settings):
    """Median ms of one run of `block` alone at these channel counts in the backend, after warm-up."""
    import paddle

    from .. import deploy

    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        x = paddle.static.data("x", [1, cin, *block.hw], "float32")
        padding = block.padding_algorithm if block.padding_algorithm in ("SAME", "VALID") else block.paddings
        y = paddle.nn.Conv2D(cin, cout, block.kernel, block.strides, padding, block.dilations, groups,
                             bias_attr=None if block.bias else False)(x)
        if block.norm:
            y = paddle.nn.BatchNorm2D(cout)(y)
        if block.act:
            name, attrs = block.act
            y = getattr(paddle.nn.functional, name)(y, *attrs)
    scope = paddle.static.Scope()
    exe = paddle.static.Executor(paddle.CPUPlace())
    with tempfile.TemporaryDirectory(prefix="ppprune-latency-") as folder, paddle.static.scope_guard(scope):
        exe.run(startup)
        prefix = os.path.join(folder, "block")
        paddle.static.save_inference_model(prefix, [x], [y], exe, program=main)
        predictor = deploy.create_predictor(prefix, settings.backend, threads=settings.threads,
                                            use_gpu=settings.use_gpu, onednn=settings.onednn)
        feed = {predictor.input_names[0]: np.random.RandomState(0).rand(1, cin, *block.hw).astype("float32")}
        return steady_ms(lambda: predictor.run(feed))


def steady_ms(run, rounds=3, min_ms=60.0, min_runs=10, warmup=3):
    """The smallest of `rounds` medians of `run()` in ms, each over at least `min_runs` runs and `min_ms`
    of running: a burst of load on a shared machine raises one round's median, not the smallest."""
    for _ in range(warmup):
        run()
    medians = []
    for _ in range(rounds):
        times, spent = [], 0.0
        while len(times) < min_runs or spent < min_ms:
            start = time.perf_counter()
            run()
            times.append(1000 * (time.perf_counter() - start))
            spent += times[-1]
        medians.append(float(np.median(times)))
    return min(medians)


def _features(cout, cin, groups):
    return [1.0, cout * cin / groups, float(cout), float(cin)]


class LatencyModel:
    """Predicts a network's latency at any channel counts from the blocks' fitted lines and the measured
    latency `base_ms` of the whole original network."""

    def __init__(self, blocks, fits, base_ms, settings):
        self.blocks, self.fits, self.base_ms, self.settings = blocks, fits, float(base_ms), settings

    def block_ms(self, name, shape):
        block = self.blocks[name]
        return float(np.dot(self.fits[name], _features(*block.channels(shape))))

    def predict(self, view, shapes=None):
        """Predicted ms of the network `view` holds (the original or a pruned copy: blocks are found by
        their filter's name) whose values take `shapes` ({key: shape}, e.g. a plan's `cuts.shapes`;
        unlisted values keep their recorded shapes)."""
        shapes = shapes or {}
        delta = 0.0
        for name, block in self.blocks.items():
            if name in self.fits:
                key = view.param_key(name)
                shape = shapes.get(key) or view.shape(key)
                delta += self.block_ms(name, shape) - self.block_ms(name, block.filter_shape)
        return self.base_ms + delta


def build_model(view, base_ms, varying, settings, folder=None, measure=True, progress=True):
    """The LatencyModel of `view`'s blocks. `varying` ({filter name: 'out' | 'in' | 'both' | 'tied'}) says
    which channel counts of which block a plan can change; only those are measured (fixed blocks cancel
    out). Missing times are measured and saved to the table unless `measure=False`, when a missing time
    is an error naming it."""
    blocks = conv_blocks(view)
    table = LatencyTable(folder or default_table_folder(), settings)
    points = {}
    for name, how in varying.items():
        block = blocks[name]
        points[name] = [block.channels([max(1, round(block.cout * o)), max(1, round(block.cin // block.groups * i))])
                        for o, i in _GRID[how]]
    missing = {}  # signature -> (block, channels): blocks of one shape are timed once
    for n, ps in points.items():
        for p in ps:
            if blocks[n].signature(*p) not in table.entries:
                missing.setdefault(blocks[n].signature(*p), (n, p))
    if missing and not measure:
        n, p = next(iter(missing.values()))
        raise PruneError(f"the latency table '{table.path}' has no time for conv '{n}' at {p[0]} output / {p[1]} "
                         f"input channels ({len(missing)} missing): measure them (measure=True) on this machine")
    _measure(missing, blocks, table, settings, progress)
    fits = {}
    for name, ps in points.items():
        a = np.array([_features(*p) for p in ps])
        t = np.array([table.entries[blocks[name].signature(*p)] for p in ps])
        fits[name] = np.linalg.lstsq(a, t, rcond=None)[0]
    model = LatencyModel(blocks, fits, base_ms, settings)
    model.measured, model.table = len(missing), table.path
    return model


def _measure(missing, blocks, table, settings, progress):
    from tqdm import tqdm

    todo = tqdm(missing.items(), desc="latency table", unit="block", disable=not progress or not missing)
    for i, (signature, (name, p)) in enumerate(todo):
        table.entries[signature] = time_block(blocks[name], *p, settings)
        if i % 10 == 9 or i == len(missing) - 1:
            table.save()
