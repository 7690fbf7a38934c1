"""Batching detection samples into dicts of numpy arrays with `paddle.io.DataLoader`.

Every random draw (shuffle order, per-sample and per-batch augmentation) is seeded from
(seed, epoch, sample index), so a run is reproducible given `seed` and does not depend on
`num_workers` or on which worker handled which sample.

paddle's DataLoader hangs (num_workers=0) or loses the exception (workers) when a dataset or
collate function raises, so failures travel to the main process as a pickled `_error` batch and
are re-raised there with the original type and traceback.
"""
import os
import pickle
import sys
import traceback

import numpy as np
import paddle

from ppprune.data.transforms import PER_BOX_FIELDS, Compose, seeded

# Dtypes of the fields the models consume; other numeric fields keep their own dtype.
FIELD_DTYPES = {
    "image": np.float32, "gt_bbox": np.float32, "gt_class": np.int32, "gt_score": np.float32,
    "difficult": np.int32, "is_crowd": np.int32, "im_shape": np.int32, "im_id": np.int64,
}


def stack_samples(samples):
    """Dict of stacked arrays over the fields every sample has.

    Strings (paths) are left out: the dataset records keep them, keyed by `im_id`. Per-box
    fields of unequal length are left out too (eval batches need none; training adds `PadBox`).
    Images of unequal size are an error.
    """
    out = {}
    for key in samples[0]:
        if key.startswith("_") or not all(key in s for s in samples):
            continue
        arrays = [np.asarray(s[key]) for s in samples]
        if arrays[0].dtype.kind not in "biuf":
            continue
        if any(a.shape != arrays[0].shape for a in arrays):
            if key in PER_BOX_FIELDS:
                continue
            raise ValueError(
                f"field '{key}' differs in shape within a batch ({sorted({a.shape for a in arrays})}); "
                "resize images to one size (Resize or BatchRandomResize) before batching"
            )
        out[key] = np.stack(arrays).astype(FIELD_DTYPES.get(key, arrays[0].dtype), copy=False)
    return out


def apply_batch_transforms(transforms, samples):
    """Batch transforms (`is_batch = True`) see the whole list; the others run per sample."""
    for t in transforms:
        samples = t(samples) if getattr(t, "is_batch", False) else [t(s) for s in samples]
    return samples


class DataPipelineError(RuntimeError):
    """Carries the traceback of a failure inside the data pipeline (possibly in a worker)."""


def _error_batch():
    exc, text = sys.exc_info()[1], traceback.format_exc()
    try:
        blob = pickle.dumps((exc, text))
    except Exception:  # unpicklable exception: keep its text
        blob = pickle.dumps((None, text))
    return {"_error": np.frombuffer(blob, np.uint8).copy()}


def _raise_error_batch(batch):
    try:
        exc, text = pickle.loads(np.asarray(batch["_error"]).tobytes())
    except Exception:  # an exception class that cannot be rebuilt from its pickle
        exc, text = None, "(the original error could not be unpickled)"
    cause = DataPipelineError("data pipeline failed:\n" + text)
    if exc is None:
        raise cause
    raise exc from cause


class _SeededDataset(paddle.io.Dataset):
    def __init__(self, dataset, seed):
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        try:
            with seeded([self.seed, self.epoch, 0, i]):
                sample = self.dataset[i]
        except Exception:
            return _error_batch()
        sample["_index"] = i
        return sample


class _Collate:
    def __init__(self, batch_transforms, seed):
        self.batch_transforms, self.seed, self.epoch = batch_transforms, seed, 0

    def __call__(self, samples):
        for s in samples:
            if "_error" in s:
                return s
        try:
            indices = [s.pop("_index") for s in samples]
            with seeded([self.seed, self.epoch, 1] + indices):
                samples = apply_batch_transforms(self.batch_transforms, samples)
            return stack_samples(samples)
        except Exception:
            return _error_batch()


class _BatchSampler:
    """Index batches of one epoch; with `world` > 1, this rank's share of each global batch.

    A global batch is `batch_size * world` consecutive indices of the epoch's order; rank r takes the r-th
    slice of it, so the ranks together see exactly the batches one process with `batch_size * world` would.
    The order is padded by wrapping around to a multiple of `world`, so every rank gets as many batches
    (and as many samples per batch) as the others: a rank that ran out first would leave the rest waiting
    in the gradient all-reduce."""

    def __init__(self, n, batch_size, shuffle, drop_last, seed, rank=0, world=1):
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is outside [0, {world})")
        self.n, self.batch_size, self.shuffle, self.drop_last, self.seed = n, batch_size, shuffle, drop_last, seed
        self.rank, self.world, self.epoch = rank, world, 0

    def __iter__(self):
        order = np.arange(self.n)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch, 2]).permutation(self.n)
        order = np.resize(order, -(-self.n // self.world) * self.world)  # np.resize repeats from the start
        step = self.batch_size * self.world
        for start in range(0, len(self) * step, step):
            chunk = order[start:start + step]
            share = len(chunk) // self.world
            yield chunk[self.rank * share:(self.rank + 1) * share].tolist()

    def __len__(self):
        step = self.batch_size * self.world
        return self.n // step if self.drop_last else -(-self.n // step)


class DetLoader:
    """Iterable of batches (dicts of numpy arrays); each pass over it is one epoch.

    `epoch` (settable, e.g. when resuming) picks the shuffle order and augmentation draws of the
    next pass and advances by one per pass.
    """

    def __init__(self, dataset, batch_size, shuffle, drop_last, num_workers, batch_transforms, seed, rank=0, world=1):
        self.dataset, self.epoch = dataset, 0
        self._data = _SeededDataset(dataset, seed)
        self._collate = _Collate(batch_transforms, seed)
        self._sampler = _BatchSampler(len(dataset), batch_size, shuffle, drop_last, seed, rank, world)
        self._loader = paddle.io.DataLoader(self._data, batch_sampler=self._sampler, collate_fn=self._collate,
                                            num_workers=num_workers, return_list=True,
                                            use_shared_memory=num_workers > 0 and _roomy_shared_memory())

    def __len__(self):
        return len(self._sampler)

    def __iter__(self):
        # Set before iter(): worker processes are forked then and take these values with them.
        for part in (self._data, self._collate, self._sampler):
            part.epoch = self.epoch
        self.epoch += 1
        batches = iter(self._loader)
        try:
            for batch in batches:
                if "_error" in batch:
                    _raise_error_batch(batch)
                # paddle hands back Tensors; the trainers feed numpy.
                yield {k: np.asarray(v) for k, v in batch.items()}
        finally:
            # A pass left early (first N batches, an error) must end its worker processes now: left to the
            # garbage collector, one loop of evaluations piles up hundreds of them.
            shutdown = getattr(batches, "_try_shutdown_all", None)
            if shutdown is not None:
                shutdown()


def _roomy_shared_memory(least=2**30):
    """Whether /dev/shm has `least` bytes free. Containers often mount 64 MB there (Docker's default), and
    workers passing batches through a full one stall; below 1 GB batches go through pipes instead."""
    try:
        stat = os.statvfs("/dev/shm")
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize >= least


def build_dataloader(dataset, batch_size, shuffle=False, drop_last=False, num_workers=0,
                     batch_transforms=None, seed=None, rank=0, world=1):
    """Batches of `dataset` samples as dicts of numpy arrays (see `stack_samples`).

    `batch_transforms`: callables or config dicts run in the collate step (in the workers), e.g.
    `[{'BatchRandomResize': {'target_sizes': [224, 256, 288]}}, {'NormalizeBox': {}}, ...]`.
    `seed=None` draws a fresh seed, so runs differ but each stays internally consistent.
    `rank`/`world`: data-parallel shard (see `_BatchSampler`); all ranks must pass the same seed.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(dataset) == 0:
        raise ValueError("cannot build a data loader over an empty dataset")
    if seed is None:
        seed = int(np.random.SeedSequence().entropy)
    if not isinstance(batch_transforms, Compose):
        batch_transforms = Compose(batch_transforms or [])
    return DetLoader(dataset, batch_size, shuffle, drop_last, num_workers, batch_transforms, seed, rank, world)
