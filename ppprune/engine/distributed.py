"""Data-parallel runs under `python -m paddle.distributed.launch`: ranks, gradient averaging, agreement.

Paddle 3.3.1 offers no working static data-parallel optimizer on CPU: `fleet.distributed_optimizer(...)
.minimize` fails on PIR programs (fleet clones the startup program with the legacy `clone(for_test=)`),
and on legacy programs its communicator set-up only knows NCCL/BKCL ("comm_id must be generated in
paddlepaddle-xpu ..."). What works on both CPU/gloo and GPU/NCCL is the process group of
`paddle.distributed.init_parallel_env()` plus Paddle's static collective op: `paddle.distributed.all_reduce`
called while building a PIR program appends `pd_op.all_reduce_` on that group. So the optimizer's
`minimize` is split into `backward` -> all_reduce + scale(1/world) per gradient -> `apply_gradients`,
the same ops fleet's raw-program optimizer inserts. Legacy-IR programs get the legacy `all_reduce` op,
which has no CPU kernel in 3.3.1 (NotFoundError "interface not found"), so they are refused on CPU.

Outside a launch (no PADDLE_TRAINERS_NUM) everything here is a no-op with world size 1.
"""
import hashlib
import itertools
import json
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import paddle

from .place import get_place

TIMEOUT_ENV = "PPPRUNE_COLLECTIVE_TIMEOUT"  # seconds a rank waits to join, at a barrier, in an NCCL collective
DEFAULT_TIMEOUT = 1800


class DistributedError(RuntimeError):
    """The ranks of a launch cannot work together; the message says why and what to do."""


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_world: int = 1  # ranks on this machine (launch's --nproc_per_node / number of --gpus)
    nnodes: int = 1

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def parallel(self):
        return self.world > 1


@lru_cache(maxsize=None)
def ranks():
    """This process's place in the launch, from the variables `paddle.distributed.launch` sets."""
    world = int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))
    if world <= 1:
        return Ranks()
    return Ranks(int(os.environ.get("PADDLE_TRAINER_ID", "0")), world,
                 int(os.environ.get("PADDLE_LOCAL_SIZE", world)), int(os.environ.get("PADDLE_NNODES", "1")))


def is_main():
    return ranks().is_main


def _check_devices(r, use_cuda):
    have = paddle.device.cuda.device_count() if use_cuda else (os.cpu_count() or 1)
    what = "visible GPUs" if use_cuda else "CPU cores"
    if r.local_world > have:
        raise DistributedError(
            f"launched {r.local_world} ranks on this machine but it has {have} {what}; start at most {have} "
            + ("(--gpus 0,1,... naming existing GPUs)" if use_cuda else f"(--nproc_per_node {have})"))


def setup(use_gpu):
    """The place for this rank; under a launch also joins the process group (gloo on CPU, NCCL on GPU)
    and prints how the run is parallelised. Call once per process, before building programs."""
    r = ranks()
    timeout = int(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
    if r.parallel:  # read when paddle first builds its parallel environment
        os.environ.setdefault("PADDLE_PG_TIMEOUT", str(timeout * 1000))  # NCCL process groups, milliseconds
        os.environ.setdefault("FLAGS_stop_check_timeout", str(timeout))  # TCP store: ranks joining the group
    place = get_place(use_gpu)
    if not r.parallel:
        print("data-parallel: no (1 process); start with `python -m paddle.distributed.launch` for more")
        return place
    use_cuda = isinstance(place, paddle.CUDAPlace)
    _check_devices(r, use_cuda)
    if not use_cuda and not paddle.framework.use_pir_api():
        raise DistributedError(
            "data-parallel training on CPU needs the PIR program format (the default): Paddle 3.3.1 has no CPU "
            "kernel for the legacy-IR all_reduce op. Unset FLAGS_enable_pir_api=0, or run one process.")
    static = not paddle.in_dynamic_mode()
    paddle.disable_static()  # the process group is created in dynamic mode only
    try:
        paddle.distributed.init_parallel_env()
    finally:
        if static:
            paddle.enable_static()
    print(f"data-parallel: {r.world} ranks, {'nccl' if use_cuda else 'gloo'} ({r.nnodes} machine{'s' * (r.nnodes > 1)}, "
          f"{r.local_world} here); this is rank {r.rank}; batch_size is per rank; timeout {timeout} s")
    return place


def minimize(optimizer, loss):
    """`optimizer.minimize(loss)`, with every gradient averaged over the ranks when there are several."""
    world = ranks().world
    if world == 1:
        return optimizer.minimize(loss)
    params_grads = optimizer.backward(loss)
    if paddle.framework.in_pir_mode():
        for _, g in params_grads:
            paddle.distributed.all_reduce(g)
        params_grads = [(p, paddle.scale(g, 1.0 / world)) for p, g in params_grads]
    else:  # legacy IR (GPU only, see setup): the ops fleet's raw-program optimizer appends
        program = loss.block.program
        block = program.global_block()
        with program._backward_role_guard():
            for _, g in params_grads:
                block.append_op(type="all_reduce", inputs={"x": [g]}, outputs={"out": [g]},
                                attrs={"ring_id": 0, "reduce_type": int(paddle.distributed.ReduceOp.SUM)})
                block.append_op(type="scale", inputs={"X": [g]}, outputs={"Out": [g]}, attrs={"scale": 1.0 / world})
    return optimizer.apply_gradients(params_grads)


class _Dygraph:
    """Collectives on host data run as eager calls, also while the process builds static programs."""

    def __enter__(self):
        self.static = not paddle.in_dynamic_mode()
        paddle.disable_static()

    def __exit__(self, *exc):
        if self.static:
            paddle.enable_static()


def broadcast_scope(scope, names, place):
    """Overwrite `names` in `scope` with rank 0's values, so every rank starts from the same tensors
    (random initialisers draw differently per process)."""
    if not ranks().parallel:
        return
    barrier()  # gloo gives up after 30 s: meet on the store first, whatever each rank did before
    with _Dygraph():
        for name in names:
            tensor = scope.find_var(name).get_tensor()
            value = paddle.to_tensor(np.array(tensor))
            paddle.distributed.broadcast(value, src=0)
            tensor.set(value.numpy(), place)


def gather(obj):
    """[obj of rank 0, obj of rank 1, ...] (just [obj] in one process)."""
    if not ranks().parallel:
        return [obj]
    out = []
    barrier()
    with _Dygraph():
        paddle.distributed.all_gather_object(out, obj)
    return out


def same_value(value):
    """Rank 0's `value` on every rank (e.g. a seed one rank drew)."""
    return gather(value)[0]


def digest(obj):
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_same(obj, what, fix):
    """Stop on every rank, with one clear message, unless `obj` is identical on all ranks."""
    digests = gather(digest(obj))
    if len(set(digests)) > 1:
        raise DistributedError(f"the ranks disagree on {what} (digests by rank: {', '.join(digests)}); {fix}")
    return digests[0]


_barriers = itertools.count()


def barrier():
    """Wait until every rank got here. On the job's TCP store, not gloo: gloo collectives give up after a
    fixed 30 s in Paddle 3.3.1, and ranks wait here much longer (rank 0 evaluating, a longer shard)."""
    r = ranks()
    if not r.parallel:
        return
    from paddle.base import core

    store, n = core.create_or_get_global_tcp_store(), next(_barriers)
    store.set(f"ppprune/barrier/{n}/{r.rank}", b"1")
    for i in range(r.world):
        store.wait(f"ppprune/barrier/{n}/{i}")
