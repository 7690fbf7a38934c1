"""What `--print_params` shows: each conv weight, whether it can be pruned, and what goes with it."""
from ..analysis.flops import count
from ..core.errors import CannotFollow, PruneError
from ..core.graph import view_of
from ..core.groups import CONV_TYPES, discover


def conv_weights(view):
    """Names of the conv filters of a view, in program order."""
    names = []
    for op in view.ops:
        if op.type in CONV_TYPES:
            name = view.persistable_name(op.ins("filter")[0])
            if name and name not in names:
                names.append(name)
    return names


def prunable_params(program):
    """(prunable, blocked). Prunable rows: name, shape, coupled (the conv/fc weights that lose channels with
    it, as 'name[axis]'), other_tensors (how many norm statistics/biases follow), flops_share. Blocked
    rows: name, shape, reason."""
    view = view_of(program)
    total, layers = count(view)
    prunable, blocked = [], []
    for name in conv_weights(view):
        shape = view.shape(view.param_key(name))
        try:
            group = discover(view, name)
        except CannotFollow as e:
            blocked.append({"name": name, "shape": shape, "reason": f"its channels reach '{e.op_type}' and {e.why}"})
            continue
        except PruneError as e:
            blocked.append({"name": name, "shape": shape, "reason": str(e)})
            continue
        if group.outputs:
            reason = "its channels reach a network output" + (f" ({group.output_reason})" if group.output_reason else "")
            blocked.append({"name": name, "shape": shape, "reason": reason})
            continue
        weights = {node for tag in ("filter_in", "filter_out", "fc_in") for node in group.tagged(tag)}
        coupled, others = [], 0
        for k, a in group.nodes:
            pname = group.names.get(k)
            if not pname or (pname, a) == (name, group.axis):
                continue
            if (k, a) in weights:
                coupled.append(f"{pname}[{a}]")
            else:
                others += 1
        prunable.append({"name": name, "shape": shape, "coupled": sorted(coupled), "other_tensors": others,
                         "flops_share": layers.get(name, 0) / total if total else 0.0})
    return prunable, blocked


def format_report(prunable, blocked):
    """A plain-text table for terminals."""
    lines = [f"{'parameter':<42} {'shape':<18} {'FLOPs':>6}  pruned together with"]
    for row in prunable:
        others = row["other_tensors"]
        together = ", ".join(row["coupled"]) + (f" (+{others} norm/bias tensors)" if others else "")
        lines.append(f"{row['name']:<42} {str(row['shape']):<18} {100 * row['flops_share']:>5.1f}%  {together or '-'}")
    if blocked:
        lines += ["", "not prunable:"]
        lines += [f"  {row['name']:<40} {str(row['shape']):<18} {row['reason']}" for row in blocked]
    return "\n".join(lines)

