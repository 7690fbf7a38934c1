"""Datasets and data loaders from the `TrainReader` / `EvalReader` sections of a config."""
from ..config import check_keys, create
from ..registry import DATASETS

READER_KEYS = ("dataset", "sample_transforms", "batch_transforms", "batch_size", "shuffle", "drop_last",
               "num_workers", "seed", "image_shape")


def build_reader(cfg, name, shard=False, every_rank=False):
    """-> (dataset, loader) for reader section `name`. Generates the demo data first if `demo_data` is set.

    Under a data-parallel launch, `every_rank` says all ranks build this reader (rank 0 alone does by
    default), and `shard` (implies `every_rank`) gives this rank its share of every batch, from a seed all
    ranks share.
    """
    import numpy as np

    from ..data import build_dataloader, ensure_demo_voc  # data stack (PIL, scipy) only when reading data
    from . import distributed

    section = cfg[name]
    check_keys(section, READER_KEYS, name)
    if cfg.get("demo_data"):
        if distributed.is_main():  # one rank generates; the others wait for the finished files
            ensure_demo_voc(**cfg["demo_data"])
        if shard or every_rank:
            distributed.barrier()
    dataset = create(DATASETS, {**section["dataset"], "transforms": section.get("sample_transforms")}, cfg)
    num_classes = cfg.get("num_classes")
    if num_classes is not None and getattr(dataset, "num_classes", num_classes) != num_classes:
        raise ValueError(f"num_classes is {num_classes} but the {name} dataset has {dataset.num_classes} classes "
                         f"({', '.join(dataset.class_names)}); set -o num_classes={dataset.num_classes}")
    ranks, seed = distributed.ranks(), section.get("seed")
    if shard and ranks.parallel:
        seed = distributed.same_value(int(np.random.SeedSequence().entropy) if seed is None else seed)
    rank, world = (ranks.rank, ranks.world) if shard else (0, 1)
    loader = build_dataloader(dataset, section.get("batch_size", 1), shuffle=section.get("shuffle", False),
                              drop_last=section.get("drop_last", False), num_workers=section.get("num_workers", 0),
                              batch_transforms=section.get("batch_transforms"), seed=seed, rank=rank, world=world)
    return dataset, loader
