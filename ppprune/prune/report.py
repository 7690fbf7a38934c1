"""What `--print_params` shows: each conv weight, whether it can be pruned, and what goes with it."""
from ..analysis.flops import count
from ..core.convs import conv_weights
from ..core.errors import CannotFollow, PruneError
from ..core.graph import view_of
from ..core.groups import discover
from ..core.planner import Listing, one_group, unit_group


def prunable_params(program):
    """(prunable, blocked). Prunable rows: name, shape, coupled (the conv/fc weights that lose channels with
    it, as 'name[axis]'), other_tensors (how many norm statistics/biases follow), flops_share, and for a
    merged group (see `_merge_rows`) merged: its other convs. Blocked rows: name, shape, reason."""
    view = view_of(program)
    total, layers = count(view)
    prunable, blocked = [], []
    for name in conv_weights(view):
        shape = view.shape(view.param_key(name))
        try:
            group = discover(view, name)
        except CannotFollow as e:
            blocked.append({"name": name, "shape": shape, "reason": e.reason})
            continue
        except PruneError as e:
            blocked.append({"name": name, "shape": shape, "reason": str(e)})
            continue
        if group.outputs:
            blocked.append({"name": name, "shape": shape, "reason": group.skip_reason()})
            continue
        coupled, others = _couplings(group, {(name, group.axis)})
        prunable.append({"name": name, "shape": shape, "coupled": coupled, "other_tensors": others,
                         "flops_share": layers.get(name, 0) / total if total else 0.0, "group": group})
    return _merge_rows(view, prunable), blocked


def _couplings(group, own):
    """(conv/fc weights that lose channels with the group, as sorted 'name[axis]', how many other tensors
    follow), leaving out the (name, axis) pairs in `own`."""
    weights = {node for tag in ("filter_in", "filter_out", "fc_in") for node in group.tagged(tag)}
    coupled, others = [], 0
    for k, a in group.nodes:
        pname = group.names.get(k)
        if not pname or (pname, a) in own:
            continue
        if (k, a) in weights:
            coupled.append(f"{pname}[{a}]")
        else:
            others += 1
    return sorted(coupled), others


def _merge_rows(view, rows):
    """Convs whose groups overlap (a concat feeding an add) are pruned as one merged group: one row, named
    by its first conv, with the others under `merged` and the FLOPs of all of them."""
    listing = Listing(view, fold=False)
    for row in rows:
        listing.add(row["name"], 0.0, row.pop("group"))
    by_name = {row["name"]: row for row in rows}
    drop = set()
    for members in listing.units():
        if one_group(members):
            continue  # the same group reached from each conv (residual adds): a row per conv, as before
        names = [m.param for m in members]
        head = by_name[names[0]]
        head["merged"] = names[1:]
        head["coupled"], head["other_tensors"] = _couplings(unit_group(members), {(m.param, m.group.axis) for m in members})
        head["flops_share"] = sum(by_name[n]["flops_share"] for n in names)
        drop.update(names[1:])
    return [row for row in rows if row["name"] not in drop]


def format_report(prunable, blocked):
    """A plain-text table for terminals."""
    lines = [f"{'parameter':<42} {'shape':<18} {'FLOPs':>6}  pruned together with"]
    for row in prunable:
        others = row["other_tensors"]
        together = ", ".join(row["coupled"]) + (f" (+{others} norm/bias tensors)" if others else "")
        if row.get("merged"):
            together = f"one merged group with {', '.join(row['merged'])}; " + together
        lines.append(f"{row['name']:<42} {str(row['shape']):<18} {100 * row['flops_share']:>5.1f}%  {together or '-'}")
    if blocked:
        lines += ["", "not prunable:"]
        lines += [f"  {row['name']:<40} {str(row['shape']):<18} {row['reason']}" for row in blocked]
    return "\n".join(lines)

