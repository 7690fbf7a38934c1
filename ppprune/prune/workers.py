"""Run independent evaluations in forked worker processes, results flowing back to the caller.

Sensitivity trials are independent and each one is a full evaluation, usually single-threaded on CPU, so
on a machine with N cores N workers finish the same trials in about 1/N of the time. Workers are forked
(the evaluation function is any closure, which could not be pickled for `spawn`); each gets a copy-on-write
copy of the scope, so the caller's tensors are never touched. Paddle's multi-threaded interpreter does not
survive a fork, so workers switch the executor to serial mode first (measured on paddle 3.3.1).

Caveat: threads do not survive a fork. An evaluation that reads data through a `paddle.io.DataLoader`
(prefetch threads, worker processes) hangs in a worker; feed arrays directly, or keep `workers=1`.
"""
import multiprocessing as mp
import traceback


def can_fork():
    return "fork" in mp.get_all_start_methods()


def run(tasks, evaluate, workers, on_result):
    """Call `evaluate(task)` for every task, in `workers` forked processes (or in this process when
    workers <= 1 or fork is unavailable); `on_result(task, value)` runs here, in completion order.
    An exception in a worker stops all of them and is raised here."""
    if workers <= 1 or len(tasks) <= 1 or not can_fork():
        for task in tasks:
            on_result(task, evaluate(task))
        return
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    shares = [list(range(i, len(tasks), workers)) for i in range(workers)]
    # not daemonic: an evaluation may start processes of its own (DataLoader workers); `finally` reaps them
    procs = [ctx.Process(target=_work, args=(share, tasks, evaluate, queue)) for share in shares if share]
    for p in procs:
        p.start()
    finished = False
    try:
        done = 0
        while done < len(tasks):
            kind, index, payload = queue.get()
            if kind == "error":
                raise payload
            on_result(tasks[index], payload)
            done += 1
        finished = True
    finally:
        for p in procs:
            if finished:
                p.join(timeout=30)  # workers exit on their own once their share is done
            if p.is_alive():
                p.terminate()
                p.join()


def _work(share, tasks, evaluate, queue):
    import paddle

    paddle.set_flags({"FLAGS_new_executor_serial_run": True})
    for index in share:
        try:
            queue.put(("result", index, evaluate(tasks[index])))
        except BaseException as e:  # noqa: BLE001 - handed to the parent, which raises it
            error = e if _picklable(e) else RuntimeError(f"{type(e).__name__}: {e}")
            error.__notes__ = [f"in a sensitivity worker:\n{traceback.format_exc()}"]
            queue.put(("error", index, error))
            return


def _picklable(obj):
    import pickle

    try:
        pickle.dumps(obj)
        return True
    except Exception:  # noqa: BLE001
        return False
