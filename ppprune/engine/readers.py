"""Datasets and data loaders from the `TrainReader` / `EvalReader` sections of a config, and the held-out
split (`TrainReader.holdout`) that chooses pruning ratios.

`TrainReader.holdout: N` (a count >= 1, or a fraction in (0, 1)) sets the LAST N images of the training
list aside: training never reads them, and `HOLDOUT` reads them as the EvalReader reads its images (its
transforms and batch size). Ratios are then chosen on images neither trained on nor scored.
"""
from ..config import ConfigValueError, check_keys, create
from ..registry import DATASETS

READER_KEYS = ("dataset", "sample_transforms", "batch_transforms", "batch_size", "shuffle", "drop_last",
               "num_workers", "seed", "image_shape", "holdout")
HOLDOUT = "holdout"  # the reader name of the held-out training images


def build_reader(cfg, name, shard=False, every_rank=False):
    """-> (dataset, loader) for reader section `name` (or `HOLDOUT`). Generates the demo data first if
    `demo_data` is set.

    Under a data-parallel launch, `every_rank` says all ranks build this reader (rank 0 alone does by
    default), and `shard` (implies `every_rank`) gives this rank its share of every batch, from a seed all
    ranks share.
    """
    import numpy as np

    from ..data import build_dataloader, ensure_demo_voc  # data stack (PIL, scipy) only when reading data
    from . import distributed

    section = reader_section(cfg, name)
    if cfg.get("demo_data"):
        if distributed.is_main():  # one rank generates; the others wait for the finished files
            ensure_demo_voc(**cfg["demo_data"])
        if shard or every_rank:
            distributed.barrier()
    dataset = create(DATASETS, {**section["dataset"], "transforms": section.get("sample_transforms")}, cfg)
    if name in ("TrainReader", HOLDOUT):
        _split(dataset, cfg["TrainReader"].get("holdout"), name == HOLDOUT)
    _check_num_classes(cfg.get("num_classes"), dataset, name)
    ranks, seed = distributed.ranks(), section.get("seed")
    if shard and ranks.parallel:
        seed = distributed.same_value(int(np.random.SeedSequence().entropy) if seed is None else seed)
    rank, world = (ranks.rank, ranks.world) if shard else (0, 1)
    loader = build_dataloader(dataset, section.get("batch_size", 1), shuffle=section.get("shuffle", False),
                              drop_last=section.get("drop_last", False), num_workers=section.get("num_workers", 0),
                              batch_transforms=section.get("batch_transforms"), seed=seed, rank=rank, world=world)
    return dataset, loader


def _check_num_classes(num_classes, dataset, name):
    """The config's class count is the dataset's (its label list or categories, read as it was built)."""
    if num_classes is None or getattr(dataset, "num_classes", num_classes) == num_classes:
        return
    names = list(dataset.class_names)
    shown = ", ".join(names[:8]) + (f", ... ({len(names) - 8} more)" if len(names) > 8 else "")
    raise ConfigValueError(f"num_classes is {num_classes} but the {name} dataset has {dataset.num_classes} classes "
                           f"({shown}); set num_classes: {dataset.num_classes} in the config (or -o "
                           f"num_classes={dataset.num_classes}), or point the dataset at the label list you meant")


def has_holdout(cfg):
    return (cfg.get("TrainReader") or {}).get("holdout") is not None


def reader_section(cfg, name):
    """The checked config section of reader `name`; `HOLDOUT` is the EvalReader's over the TrainReader's dataset."""
    if name != HOLDOUT:
        section = cfg[name]
        check_keys(section, READER_KEYS, name)
        if name != "TrainReader" and "holdout" in section:
            raise ConfigValueError(f"{name}.holdout: only the TrainReader holds images out (TrainReader.holdout)")
        return section
    reader_section(cfg, "TrainReader")
    return {**reader_section(cfg, "EvalReader"), "dataset": cfg["TrainReader"]["dataset"]}


def holdout_count(spec, n):
    """How many of `n` training images `TrainReader.holdout` sets aside (0 without one)."""
    if spec is None:
        return 0
    fraction = isinstance(spec, float)
    if isinstance(spec, bool) or not isinstance(spec, (int, float)) or spec <= 0 or (fraction and spec >= 1):
        raise ConfigValueError(f"TrainReader.holdout is {spec!r}; give a count of images >= 1 or a fraction in "
                               "(0, 1) (the last images of the training list)")
    count = int(round(spec * n)) if fraction else spec
    if not 1 <= count < n:
        raise ConfigValueError(f"TrainReader.holdout {spec!r} sets aside {count} of the {n} training images; at "
                               "least one must be held out and one left to train on")
    return count


def _split(dataset, spec, held_out):
    """Keep the held-out (last) records of the training dataset, or all others."""
    if spec is None:
        return
    records = getattr(dataset, "records", None)
    if records is None:
        raise ConfigValueError(f"TrainReader.holdout: the {type(dataset).__name__} dataset has no image list to "
                               "hold images out of; drop the key")
    count = holdout_count(spec, len(records))
    dataset.records = list(records[-count:] if held_out else records[:-count])  # im_ids unchanged: metrics key by them


def split_identity(name, section, dataset, batches=None):
    """What a reader reads, as a digest: its images (in order, relative to the dataset folder), transforms,
    batch size and how many batches are used."""
    import hashlib
    import json
    import os

    root = getattr(dataset, "dataset_dir", "")
    images = [os.path.relpath(r["im_file"], root) for r in getattr(dataset, "records", ())]
    text = json.dumps([images, section.get("sample_transforms"), section.get("batch_size", 1), batches],
                      sort_keys=True, default=str)
    return {"reader": name, "images": len(images), "batches": batches,
            "digest": hashlib.sha1(text.encode()).hexdigest()[:16]}
