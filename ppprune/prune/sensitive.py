"""Sensitivity analysis (PaddleSlim's `sensitivity` API) and the file that stores it (ratios chosen from
sensitivities are in ratios.py).

A trial zeroes, in the scope, the channels one conv would lose, evaluates the *same* program and puts the
touched tensors back. A zeroed plan computes what the structurally pruned program computes (the oracle in
tests/oracle.py checks exactly that), so nothing is cloned, re-walked or recompiled per trial: each conv's
group is walked once for all its ratios, and ratios that prune the same channels share one evaluation.
"""
import json
import math
import numbers
import os
import pickle
import warnings

import numpy as np
import paddle
from tqdm import tqdm

from ..core.criteria import get_criterion
from ..core.errors import PruneError
from ..core.graph import view_of
from ..core.planner import Listing, choose, one_group, unit_group
from ..core.removal import scope_changes
from ..core.request import check_names, check_ratio
from ..core.scope_write import apply_scope, restore_scope
from ..core.selectors import get_selector
from ..core.tensors import scope_reader
from ..fsutil import atomic_write
from .workers import run as workers_run

DEFAULT_RATIOS = tuple(round(0.1 * i, 1) for i in range(1, 10))
_DIGITS = 10  # ratio keys are rounded to this many decimals: 0.3, never 0.30000000000000004
_FORMAT_V1 = "ppprune.sensitivities/1"  # the older single-pickle format
_FORMAT = "ppprune.sensitivities/2"


def sensitivity(program, place, param_names, eval_func, sensitivities_file=None, pruned_ratios=None,
                scope=None, criterion="l1_norm", idx_selector="default_idx_selector", workers=1, provenance=None,
                restart=False):
    """Return `{param: {ratio: loss}}` with loss = (baseline - metric) / baseline, `metric` being
    `eval_func(program)` while `param` has lost `ratio` of its output channels (0.1 ... 0.9 by default).

    `eval_func` receives `program` itself (its fetch targets work as they are) while the pruned channels
    are zeroed in `scope` (default: the global scope); the scope is restored exactly after every trial,
    also when `eval_func` raises. With `sensitivities_file`, the results (and the baseline) are rewritten
    atomically after every evaluation and a restart evaluates only what is missing. The returned dict also
    holds everything the file already had. `workers=N` runs the trials in N forked processes (one per core
    is the useful maximum); this process alone writes the file, and its scope is never changed.

    `provenance` ({"weights": digest, "model": digest, "split": ...}: what the caller evaluates on) is
    recorded in the file with the ratios and criterion; resuming a file recorded with anything else is a
    PruneError (nothing evaluated or written), unless `restart=True` starts the file anew. Without
    `provenance` nothing is checked (PaddleSlim's behaviour)."""
    scope = paddle.static.global_scope() if scope is None else scope
    ratios = _clean_ratios(DEFAULT_RATIOS if pruned_ratios is None else pruned_ratios)
    params = [param_names] if isinstance(param_names, str) else list(param_names)
    wanted = measured_on(provenance or {}, ratios, criterion, idx_selector)
    if provenance is not None and not restart and sensitivities_file is not None:
        why = provenance_mismatch(sensitivities_file, wanted)
        if why:
            raise PruneError(f"{why}: give another sensitivities_file, or restart=True to measure it anew")
    store = _Store(sensitivities_file, fresh=restart)
    if provenance is not None or store.provenance is None:  # unchecked (PaddleSlim-style): the record stays
        store.provenance = wanted
    view = view_of(program)
    check_names(view, params)
    trials = _trials(view, scope_reader(scope, view), params, ratios, store, get_criterion(criterion), get_selector(idx_selector))
    if trials and store.baseline is None:
        store.baseline = _metric(eval_func(program))
        if store.baseline == 0:
            raise PruneError("the baseline metric is 0: sensitivity losses are relative to it. Evaluate a metric "
                             "that is non-zero on the unpruned model (accuracy, mAP...).")
    store.save()

    def evaluate(trial):
        backup = apply_scope(scope, trial.changes, place=place, lazy=True)
        try:
            return _metric(eval_func(program))
        finally:
            restore_scope(scope, backup, place)

    with tqdm(total=len(trials), unit="eval", desc="sensitivity", dynamic_ncols=True) as bar:
        def record(trial, metric):
            _record(store, trial.params, trial.ratios, (store.baseline - metric) / store.baseline)
            store.save()
            bar.set_description(f"{' + '.join(trial.params)} ratio {'/'.join(map(str, trial.ratios))}")
            bar.update()

        workers_run(trials, evaluate, workers, record)
    return {p: dict(losses) for p, losses in store.sens.items()}


class _Trial:
    """One evaluation: the ratios of `params` that prune the same channels, and the scope tensors to zero."""

    def __init__(self, params, ratio, changes):
        self.params, self.ratios, self.changes = params, [ratio], changes


def _trials(view, read_tensor, params, ratios, store, criterion, selector):
    """The evaluations still needed. Results implied without evaluating are recorded in `store` on the way:
    a ratio that prunes nothing loses nothing, and one that prunes the channels of a stored ratio has its loss.
    Convs whose groups overlap (a concat feeding an add) are pruned as one merged group, so they are measured
    as one: all at the same ratio, selected once over the union as `Pruner.prune` would, one loss for all."""
    listing = Listing(view, fold=False)
    for param in params:
        if any(round(float(r), _DIGITS) not in {round(float(k), _DIGITS) for k in store.sens.get(param, {})} for r in ratios):
            listing.add(param, 0.0)
            if listing.skipped:
                raise PruneError(f"'{param}' cannot be pruned: its channels reach a network output. Leave it out of param_names.")
    renormalized = [m.param for m in listing.members if m.group.renormalized]
    if renormalized:
        warnings.warn(f"{', '.join(renormalized)}: a layer norm takes its statistics over these channels, so a "
                      f"trial that zeroes them only approximates pruning them; their sensitivities are estimates")
    trials = []
    for members in listing.units():
        if one_group(members):  # residual adds: one by one
            for m in members:
                scores, atoms = criterion(m.group, read_tensor), m.group.atoms()
                trials += _unit_trials(view, store, ratios, [m.param], m.group,
                                       lambda r, s=scores, a=atoms: selector(s, r, a))
        else:  # planned as Pruner.prune plans them: convs sharing one group exactly folded into the first
            folded = Listing(view)
            for m in members:
                folded.add(m.param, 0.0, m.group)
            unit = [m for u in folded.units() for m in u]
            group = unit_group(unit)

            def select(ratio, group=group, unit=unit):
                for m in unit:
                    m.ratio = ratio
                return choose(view, group, unit, read_tensor, criterion, selector)

            trials += _unit_trials(view, store, ratios, [m.param for m in members], group, select)
    return trials


def _unit_trials(view, store, ratios, params, group, select):
    """Trials for `params` pruned together by `select(ratio)` (channels of `group`)."""
    stored = {}
    for param in params:
        for r, loss in store.sens.get(param, {}).items():
            stored.setdefault(round(float(r), _DIGITS), loss)
    missing = [r for r in ratios if any(r not in {round(float(k), _DIGITS) for k in store.sens.get(p, {})} for p in params)]

    def channels(ratio):
        return np.asarray(select(ratio), dtype=np.int64).tobytes() if ratio > 0 else b""

    known = {channels(r): loss for r, loss in stored.items()}
    pending = {}
    for r in missing:
        chosen = channels(r)
        if not chosen:
            _record(store, params, [r], 0.0)
        elif chosen in known:
            _record(store, params, [r], known[chosen])
        elif chosen in pending:
            pending[chosen].ratios.append(r)
        else:
            removal, _ = group.removal(np.frombuffer(chosen, dtype=np.int64))
            pending[chosen] = _Trial(params, r, scope_changes(view, removal))
    return list(pending.values())


def _record(store, params, ratios, loss):
    for param in params:
        have = {round(float(k), _DIGITS) for k in store.sens.get(param, {})}
        todo = [r for r in ratios if r not in have]
        if todo:
            store.record(param, todo, loss)


def _metric(value):
    try:
        metric = float(np.asarray(value, dtype=np.float64).item())
    except (TypeError, ValueError):
        raise PruneError(f"eval_func returned {value!r}: it must return one number (the metric)") from None
    if not math.isfinite(metric):
        raise PruneError(f"eval_func returned {metric}: the metric must be a finite number; check the evaluation "
                         "(an empty eval set, a diverged model)")
    return metric


def _clean_ratios(ratios):
    out = []
    for r in ratios:
        r = round(check_ratio(r, "pruned ratio"), _DIGITS)
        if r not in out:
            out.append(r)
    return out


def measured_on(provenance, ratios, criterion="l1_norm", idx_selector="default_idx_selector"):
    """The provenance a results file records: the caller's (weights, model, split digests) plus the ratio
    grid and the channel choice. The params are the file's own keys: a rerun with more params adds them."""
    def name(f):
        return f if isinstance(f, str) else getattr(f, "__name__", type(f).__name__)

    return {**provenance, "ratios": [float(r) for r in _clean_ratios(ratios)], "criterion": name(criterion),
            "idx_selector": name(idx_selector)}


_WHAT = {"weights": "other weights", "model": "another model (other params or shapes)",
         "split": "another evaluation split", "ratios": "another ratio grid", "criterion": "another criterion",
         "idx_selector": "another selector"}


def provenance_difference(recorded, wanted):
    """None if two provenances agree, else what differs (e.g. "other weights")."""
    if recorded is None:
        return "inputs it does not record (an older or PaddleSlim file)"
    for key in sorted(set(recorded) | set(wanted)):
        if recorded.get(key) != wanted.get(key):
            if key == "ratios":
                return f"the ratio grid {_grid(recorded.get(key))} (asked: {_grid(wanted.get(key))})"
            return _WHAT.get(key, f"another {key}")
    return None


def _grid(ratios):
    return ",".join(f"{r:g}" for r in ratios or ())


def provenance_mismatch(sensitivities_file, wanted):
    """None if the file is absent or holds no results yet, or was measured on `wanted`; else a message."""
    if not os.path.exists(sensitivities_file):
        return None
    sens, _, recorded = _read(os.fspath(sensitivities_file))
    why = provenance_difference(recorded, wanted) if sens or recorded is not None else None
    return why and f"{sensitivities_file} was measured on {why}; its results do not describe this run"


class _Store:
    """Sensitivities pickled as the plain `{param: {ratio: loss}}` dict PaddleSlim reads; the baseline they
    are relative to and what they were measured on (`provenance`) in a JSON sidecar `<file>.baseline.json`.
    Files of the older single-pickle format `{"format", "baseline", "sensitivities"}` are read too.

    A kill between the two files' writes leaves a consistent pair: the sidecar changes only with its
    baseline or provenance, and results measured on another provenance are emptied before it changes."""

    def __init__(self, path, fresh=False):
        self.path = os.fspath(path) if path is not None else None
        exists = self.path is not None and os.path.exists(self.path)
        self.sens, self.baseline, self.provenance = _read(self.path) if exists else ({}, None, None)
        self._on_disk, self._fresh = (self.baseline, self.provenance), fresh and bool(self.sens)
        if fresh:
            self.sens, self.baseline, self.provenance = {}, None, None

    def record(self, param, ratios, loss):
        losses = self.sens.setdefault(param, {})
        losses.update((r, loss) for r in ratios)
        self.sens[param] = dict(sorted(losses.items()))

    def save(self):
        if self.path is None:
            return
        if self._fresh and self.provenance != self._on_disk[1]:  # never old results under a new record
            with atomic_write(self.path, "wb") as f:
                pickle.dump({}, f)
            self._fresh = False
        if (self.baseline, self.provenance) != self._on_disk:  # before the losses relative to it
            with atomic_write(_sidecar(self.path)) as f:
                json.dump({"format": _FORMAT, "baseline": self.baseline, "provenance": self.provenance}, f)
            self._on_disk = (self.baseline, self.provenance)
        with atomic_write(self.path, "wb") as f:
            pickle.dump(self.sens, f)


def _sidecar(path):
    return path + ".baseline.json"


def _read(path):
    """(sensitivities, baseline or None, provenance or None) from a results file; a damaged file is a
    PruneError naming it."""
    try:
        with open(path, "rb") as f:
            data = pickle.load(f)
    except Exception as e:  # noqa: BLE001 - truncated or foreign files raise many types
        raise PruneError(f"{path} is not a readable sensitivities file ({e.__class__.__name__}: truncated or not a "
                         "pickle); delete it to start the analysis again, or give another -s file") from None
    baseline = provenance = None
    if isinstance(data, dict) and data.get("format") == _FORMAT_V1:  # the older single-pickle format
        data, baseline = data.get("sensitivities"), data.get("baseline")
    elif os.path.isfile(_sidecar(path)):
        try:
            with open(_sidecar(path)) as f:
                side = json.load(f)
            baseline, provenance = side.get("baseline"), side.get("provenance")
        except (ValueError, AttributeError):
            raise PruneError(f"{_sidecar(path)} is damaged; delete it (the baseline is evaluated again)") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise PruneError(f"{path} is not a sensitivities file: expected a pickled {{param: {{ratio: loss}}}} dict")
    for param, losses in data.items():
        for r, loss in losses.items():
            if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in (r, loss)):
                raise PruneError(f"{path}: '{param}' has ratio {r!r} with loss {loss!r}; ratios and losses must be "
                                 "finite numbers. Delete the entry (or the file) and measure it again")
    return data, baseline, provenance if isinstance(provenance, dict) else None


def load_sensitivities(sensitivities_file):
    """`{param: {ratio: loss}}` from a file written by `sensitivity` or by PaddleSlim ({} if it does not exist)."""
    if sensitivities_file is None or not os.path.exists(sensitivities_file):
        return {}
    sensitivities_file = os.fspath(sensitivities_file)
    return _read(sensitivities_file)[0]


def save_sensitivities(path, sensitivities, baseline=None, provenance=None):
    """Write `{param: {ratio: loss}}`, the baseline metric and the provenance atomically, as `sensitivity`
    does (replacing the file's earlier content)."""
    store = _Store(path, fresh=True)
    store.sens, store.baseline, store.provenance = sensitivities, baseline, provenance
    store.save()


def sensitivity_baseline(sensitivities_file):
    """The unpruned metric a file's losses are relative to (None if the file does not record it)."""
    return _read(sensitivities_file)[1] if os.path.exists(sensitivities_file) else None


def sensitivity_provenance(sensitivities_file):
    """What a file's results were measured on (see `sensitivity`), None if it does not record it."""
    return _read(sensitivities_file)[2] if os.path.exists(sensitivities_file) else None


def merged_provenance(files):
    """The provenance files share (shards of one analysis); PruneError naming the first file that records
    none or another one."""
    first = None
    for path in files:
        recorded = sensitivity_provenance(path)
        why = provenance_difference(recorded, first) if first is not None or recorded is None else None
        if why:
            raise PruneError(f"cannot merge {path}: it was measured on {why}, unlike {files[0]}; only shards of "
                             "one analysis (same weights, model, split and ratios) merge")
        first = recorded if first is None else first
    return first


def merge_sensitive(sensitivities):
    """Merge dicts and/or files (e.g. shards of one analysis); for a (param, ratio) in several, the last wins."""
    merged = {}
    for item in sensitivities:
        sens = item if isinstance(item, dict) else load_sensitivities(item)
        for param, losses in sens.items():
            merged.setdefault(param, {}).update(losses)
    return merged
