"""Static programs (train / eval / infer) built from a config, sharing one set of parameter names.

Each program is built under its own `unique_name.guard()` from a fresh model Layer; the explicit
ParamAttr names make all of them address the same tensors in one Scope, so one startup program
initialises the lot and a checkpoint loaded once serves every program. The pruning core edits these
programs in place, so nothing here runs them: the loops in `trainer` take a `ProgramSpec`.
"""
from dataclasses import dataclass, field

import paddle

from .. import models  # noqa: F401 - registers the architectures the config names
from ..config import ConfigValueError, check_keys, create
from ..config.checks import need, need_list
from ..core.graph import persistable_names
from ..registry import ARCHITECTURES, BACKBONES, HEADS, NECKS
from . import distributed, optim

MODES = ("train", "eval", "infer")
# Top-level keys of every config, besides the sections named after registered components and the
# architecture's own `config_keys`
GLOBAL_KEYS = ("architecture", "num_classes", "use_gpu", "max_iters", "snapshot_iter", "save_dir", "weights",
               "pretrain_weights", "metric", "VOCMetric", "LearningRate", "Optimizer", "TrainReader",
               "EvalReader", "demo_data", "filename", "freeze_norm_stats", "ignore_head_shapes")
READER_OF = {"train": "TrainReader", "eval": "EvalReader", "infer": "EvalReader"}


@dataclass
class ProgramSpec:
    """A program plus how to drive it: `feeds` are batch keys fed in order, `fetches` named outputs."""

    program: object
    feeds: list
    fetches: dict
    lr_scheduler: object = None  # train only; stepped once per iteration by the train loop
    # infer only: the network's own outputs before post-processing (NMS), so the network can be timed alone
    network: list = field(default_factory=list)
    network_feeds: list = field(default_factory=list)  # the feeds those outputs depend on


@dataclass
class Programs:
    startup: object
    param_names: list  # every model tensor a checkpoint holds (weights, biases, BN statistics)
    train: ProgramSpec = None
    eval: ProgramSpec = None
    infer: ProgramSpec = None
    opt_names: list = field(default_factory=list)  # optimizer accumulators of `train`
    # the tensors of the model's registered head(s): those `ignore_head_shapes` lets differ (other classes)
    head_names: list = field(default_factory=list)


def _build_one(cfg, mode):
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup), paddle.utils.unique_name.guard():
        model = create(ARCHITECTURES, cfg["architecture"], cfg)
        if mode != "train":
            eval_mode(model)
        elif cfg.get("freeze_norm_stats"):
            _freeze_norm_stats(model)
        image_shape = cfg[READER_OF[mode]]["image_shape"]
        feeds = {name: paddle.static.data(name, shape, dtype) for name, shape, dtype in model.input_specs(mode, image_shape)}
        fetches = model(feeds, mode=mode)
        network = list(fetches.pop("network", []))
        network_feeds = [f for f in feeds if f in getattr(model, "network_feeds", feeds)]
        lr = None
        if mode == "train":
            lr = optim.build_lr(cfg)
            distributed.minimize(optim.build_optimizer(cfg, lr), fetches["loss"])
    # dict.fromkeys: a layer registered under two names (PicoHeadV2's head_cls0 = head_cls_list.0) is one tensor
    params = list(dict.fromkeys(p.name for p in model.state_dict().values()))
    heads = list(dict.fromkeys(p.name for child in model.children() if type(child).__name__ in HEADS
                               for p in child.state_dict().values()))
    return startup, params, heads, ProgramSpec(main, list(feeds), fetches, lr, network, network_feeds)


def eval_mode(model):
    """BN uses its running statistics and never updates them. `eval()` alone does not tell a legacy-IR
    `nn.BatchNorm`: its static op takes `is_test` from the constructor, so it is set here too."""
    model.eval()
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.BatchNorm):
            layer._is_test = True


def _freeze_norm_stats(model):
    """BN normalises with its running statistics in training too, and keeps them; scale and offset still
    train. For fine-tuning on small per-device batches, whose batch statistics are noisy; it also makes a
    data-parallel step equal to one step on the ranks' batches together (nothing depends on the batch)."""
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.BatchNorm):
            layer._use_global_stats = True


# Top-level values, by type (None: not set); the trainer's numbers are range-checked by `check_train_keys`
_TOP_TYPES = {"num_classes": (int, {"low": 1}), "use_gpu": (bool, {}), "freeze_norm_stats": (bool, {}),
              "ignore_head_shapes": (bool, {}),
              "max_iters": (int, {}), "snapshot_iter": (int, {}), "save_dir": (str, {}), "weights": (str, {}),
              "pretrain_weights": (str, {}), "metric": (str, {}), "VOCMetric": (dict, {}), "LearningRate": (dict, {}),
              "Optimizer": ((str, dict), {}), "demo_data": (dict, {})}


def check_config(cfg):
    """Fail on a misspelt top-level key (it would otherwise be ignored silently), and on a value of the
    wrong type: one line naming the key, before anything is built."""
    sections = set(ARCHITECTURES.names()) | set(BACKBONES.names()) | set(NECKS.names()) | set(HEADS.names())
    arch = cfg.get("architecture")
    family = getattr(ARCHITECTURES.get(arch), "config_keys", ()) if isinstance(arch, str) and arch in ARCHITECTURES else ()
    check_keys(cfg, set(GLOBAL_KEYS) | sections | set(family), "the config")
    need("architecture", arch, str)
    for key, (kind, bounds) in _TOP_TYPES.items():
        if isinstance(kind, tuple):  # a registered name or an inline spec
            kind = str if isinstance(cfg.get(key), str) else dict
        need(key, cfg.get(key), kind, optional=True, **bounds)
    for key in sections & set(cfg):
        need(key, cfg[key], dict, optional=True)  # a component's arguments
    _check_schedules(cfg.get("LearningRate") or {})
    for name in sorted(set(READER_OF.values()) & set(cfg)):
        _check_reader(name, cfg[name])


def _check_schedules(lr):
    need("LearningRate.base_lr", lr.get("base_lr"), float, optional=True)
    schedules = need("LearningRate.schedulers", lr.get("schedulers"), dict, optional=True) or {}
    for name, kwargs in schedules.items():
        need(f"LearningRate.schedulers.{name}", kwargs, dict, optional=True)


def _check_reader(name, reader):
    need(name, reader, dict)
    need(f"{name}.dataset", reader.get("dataset"), dict, optional=True)
    if reader.get("image_shape") is not None:  # [C, H, W]; -1 leaves H or W open (multi-scale training)
        for i, size in enumerate(need_list(f"{name}.image_shape", reader["image_shape"], int, length=3)):
            if size != -1 or i == 0:
                need(f"{name}.image_shape[{i}]", size, int, low=1)
    for key in ("sample_transforms", "batch_transforms"):
        for i, spec in enumerate(need(f"{name}.{key}", reader.get(key), list, optional=True) or ()):
            if not isinstance(spec, str):
                need(f"{name}.{key}[{i}]", spec, dict)
                if len(spec) != 1 or not isinstance(next(iter(spec.values())), (dict, type(None))):
                    raise ConfigValueError(f"{name}.{key}[{i}] is {spec!r}; each transform is one 'Name: {{args}}' "
                                           f"entry, e.g. - Resize: {{target_size: 320}}")
    for key in ("batch_size", "num_workers", "seed"):
        need(f"{name}.{key}", reader.get(key), int, optional=True)
    for key in ("shuffle", "drop_last"):
        need(f"{name}.{key}", reader.get(key), bool, optional=True)


def build_programs(cfg, mode="train"):
    """mode 'train' -> train + eval programs; 'eval' -> eval; 'infer' -> infer (export). One startup."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    check_config(cfg)
    wanted = {"train": ("train", "eval"), "eval": ("eval",), "infer": ("infer",)}[mode]
    built = {m: _build_one(cfg, m) for m in wanted}
    startup, param_names, head_names, _ = built[wanted[0]]  # params of every mode are the same names
    programs = Programs(startup, param_names, head_names=head_names, **{m: spec for m, (*_, spec) in built.items()})
    if programs.train is not None:
        programs.opt_names = [n for n in persistable_names(programs.train.program) if n not in set(param_names)]
    return programs
