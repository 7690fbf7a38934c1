"""One test per channel rule, on a fake view holding just the op: a failure names the broken rule, where an
oracle failure only says that some network computes something else.

Each test enters the op with all channels of one (tensor, axis) and checks what the rule reaches: the other
tensors and axes, which channel of each follows which master channel, and the edits and ties it records."""
import pytest

from ppprune.core.channel_map import ChannelMap
from ppprune.core.graph.base import FORWARD, GraphView, OpView
from ppprune.core.groups import Group
from ppprune.core.rules import RULES
from ppprune.core.walk import Refused, Walk


class FakeView(GraphView):
    """A view of one op: `shapes` {key: shape}, `ins`/`outs` {slot: [key]}, `attrs` {name: value}; `more`
    lists (op_type, ins, outs, attrs) of ops after it (the users a rule looks at)."""

    ir = "fake"

    def __init__(self, op_type, ins, outs, shapes, attrs=None, more=()):
        self.shapes = shapes
        self.ops = [_op(i, *spec) for i, spec in enumerate([(op_type, ins, outs, attrs)] + list(more))]
        self._index()

    def shape(self, key):
        return self.shapes.get(key)

    def persistable_name(self, key):
        return None

    def is_fetched(self, key):
        return False


def _op(index, op_type, ins, outs, attrs):
    attrs = attrs or {}
    return OpView(None, op_type, FORWARD, ins, outs, index, lambda op, name: attrs.get(name))


def enter(view, key, axis):
    """Run the op's rule once for every channel of (key, axis); returns the group it filled."""
    size = view.shape(key)[axis]
    group = Group("master", key, axis, size)
    walk = Walk(view, group)
    op = view.ops[0]
    walk.current = op
    RULES.get(op.type)(walk, op, key, axis, ChannelMap.identity(size))
    return group


def reached(group):
    """{(key, axis): [(local, master), ...]} of every node the rule reached."""
    return {node: sorted(zip(ch.local.tolist(), ch.master.tolist())) for node, ch in group.nodes.items()}


def ident(n):
    return [(i, i) for i in range(n)]


def test_conv2d_output_channels_follow_the_filter():
    view = FakeView("conv2d", {"input": ["x"], "filter": ["f"]}, {"out": ["y"]},
                    {"x": [1, 3, 8, 8], "f": [4, 3, 3, 3], "y": [1, 4, 8, 8]}, {"groups": 1})
    assert reached(enter(view, "f", 0)) == {("y", 1): ident(4)}
    group = enter(view, "x", 1)
    assert reached(group) == {("f", 1): ident(3)}
    assert group.tagged("filter_in") == [("f", 1)]


def test_depthwise_conv2d_input_output_and_filter_go_together_and_shrink_groups():
    view = FakeView("depthwise_conv2d", {"input": ["x"], "filter": ["f"]}, {"out": ["y"]},
                    {"x": [1, 4, 8, 8], "f": [4, 1, 3, 3], "y": [1, 4, 8, 8]}, {"groups": 4})
    group = enter(view, "x", 1)
    assert reached(group) == {("f", 0): ident(4), ("y", 1): ident(4)}
    assert [(op.type, name) for op, name in group.attr_edits] == [("depthwise_conv2d", "groups")]
    assert len(group.atoms()) == 4


def test_grouped_conv2d_prunes_whole_groups():
    view = FakeView("conv2d", {"input": ["x"], "filter": ["f"]}, {"out": ["y"]},
                    {"x": [1, 4, 8, 8], "f": [6, 2, 3, 3], "y": [1, 6, 8, 8]}, {"groups": 2})
    group = enter(view, "x", 1)
    assert [a.tolist() for a in group.atoms()] == [[0, 1], [2, 3]]
    assert reached(group)[("y", 1)] == [(0, 0), (1, 0), (2, 0), (3, 2), (4, 2), (5, 2)]


def test_batch_norm_statistics_scale_and_bias_follow():
    side = {"scale": ["s"], "bias": ["b"], "mean": ["m"], "variance": ["v"]}
    view = FakeView("batch_norm", {"x": ["x"], **side}, {"out": ["y"]},
                    {"x": [1, 4, 8, 8], "y": [1, 4, 8, 8], **{k[0]: [4] for k in side.values()}})
    group = enter(view, "x", 1)
    assert reached(group) == {("y", 1): ident(4), **{(k, 0): ident(4) for k in "sbmv"}}
    assert group.tagged("bn_scale") == [("s", 0)]


def test_concat_offsets_each_input_along_the_joined_axis():
    view = FakeView("concat", {"x": ["a", "b"]}, {"out": ["y"]},
                    {"a": [1, 2, 4, 4], "b": [1, 3, 4, 4], "y": [1, 5, 4, 4]}, {"axis": 1})
    assert reached(enter(view, "b", 1)) == {("y", 1): [(2, 0), (3, 1), (4, 2)]}
    assert reached(enter(view, "y", 1)) == {("a", 1): ident(2), ("b", 1): [(0, 2), (1, 3), (2, 4)]}


def test_elementwise_add_couples_both_operands_and_skips_a_broadcast_one():
    view = FakeView("add", {"x": ["x"], "y": ["z"]}, {"out": ["o"]},
                    {"x": [1, 4, 4, 4], "z": [1, 4, 4, 4], "o": [1, 4, 4, 4]})
    assert reached(enter(view, "x", 1)) == {("o", 1): ident(4), ("z", 1): ident(4)}
    broadcast = FakeView("multiply", {"x": ["x"], "y": ["z"]}, {"out": ["o"]},
                         {"x": [1, 4, 4, 4], "z": [1, 1, 4, 4], "o": [1, 4, 4, 4]})
    assert reached(enter(broadcast, "x", 1)) == {("o", 1): ident(4)}


def test_reshape_flattening_channels_expands_each_into_its_block():
    view = FakeView("reshape", {"x": ["x"]}, {"out": ["y"]}, {"x": [1, 2, 2, 2], "y": [1, 8]}, {"shape": [1, 8]})
    group = enter(view, "x", 1)
    assert reached(group) == {("y", 1): [(i, i // 4) for i in range(8)]}
    assert [(op.type, slot, pos) for op, slot, pos in group.const_edits] == [("reshape", "shape", 1)]
    assert group.const_edits[next(iter(group.const_edits))][1] == 4  # 4 entries per channel


def test_transpose_moves_the_channel_axis():
    view = FakeView("transpose", {"x": ["x"]}, {"out": ["y"]}, {"x": [1, 4, 2, 3], "y": [1, 2, 3, 4]},
                    {"perm": [0, 2, 3, 1]})
    assert reached(enter(view, "x", 1)) == {("y", 3): ident(4)}
    assert reached(enter(view, "y", 3)) == {("x", 1): ident(4)}


def test_split_by_sections_gives_each_piece_its_channels_and_shrinks_its_section():
    view = FakeView("split", {"x": ["x"]}, {"out": ["a", "b"]},
                    {"x": [1, 6, 4, 4], "a": [1, 2, 4, 4], "b": [1, 4, 4, 4]}, {"axis": 1, "sections": [2, 4]})
    group = enter(view, "x", 1)
    assert reached(group) == {("a", 1): ident(2), ("b", 1): [(i, i + 2) for i in range(4)]}
    assert sorted(pos for _, _, pos in group.const_edits) == [0, 1]


def test_layer_norm_over_the_channel_axis_renormalizes_and_its_weights_follow():
    view = FakeView("layer_norm", {"x": ["x"], "scale": ["w"], "bias": ["b"]}, {"out": ["y"]},
                    {"x": [1, 4, 4, 8], "y": [1, 4, 4, 8], "w": [8], "b": [8]}, {"begin_norm_axis": 3})
    group = enter(view, "x", 3)
    assert reached(group) == {("y", 3): ident(8), ("w", 0): ident(8), ("b", 0): ident(8)}
    assert group.renormalized == ["'layer_norm' (op #0)"]
    per_channel = enter(view, "x", 1)  # before the normalized axes: the statistics' axis, weights untouched
    assert reached(per_channel) == {("y", 1): ident(4)} and not per_channel.renormalized


def test_matmul_input_features_prune_weight_rows():
    view = FakeView("matmul", {"x": ["x"], "y": ["w"]}, {"out": ["o"]}, {"x": [1, 8], "w": [8, 10], "o": [1, 10]},
                    {"transpose_x": False, "transpose_y": False})
    group = enter(view, "x", 1)
    assert reached(group) == {("w", 0): ident(8)}
    assert group.tagged("fc_in") == [("w", 0)]
    assert reached(enter(view, "w", 1)) == {("o", 1): ident(10)}


def refusal(view, key, axis):
    """The refusal of the op's rule entered on (key, axis)."""
    with pytest.raises(Refused) as info:
        enter(view, key, axis)
    return info.value


def test_conv2d_transpose_input_channels_are_the_filter_rows():
    view = FakeView("conv2d_transpose", {"x": ["x"], "filter": ["f"]}, {"out": ["y"]},
                    {"x": [1, 4, 4, 4], "f": [4, 3, 3, 3], "y": [1, 3, 8, 8]}, {"groups": 1})
    group = enter(view, "x", 1)
    assert reached(group) == {("f", 0): ident(4)} and group.tagged("filter_in") == [("f", 0)]
    assert reached(enter(view, "f", 1)) == {("y", 1): ident(3)}
    group = enter(view, "y", 1)
    assert reached(group) == {("f", 1): ident(3)} and group.tagged("filter_out") == [("f", 1)]
    grouped = FakeView("conv2d_transpose", {"x": ["x"], "filter": ["f"]}, {"out": ["y"]},
                       {"x": [1, 4, 4, 4], "f": [4, 3, 3, 3], "y": [1, 6, 8, 8]}, {"groups": 2})
    assert "grouped conv2d_transpose" in refusal(grouped, "x", 1).why


def test_instance_norm_scale_and_bias_follow_the_channels():
    view = FakeView("instance_norm", {"x": ["x"], "scale": ["s"], "bias": ["b"]}, {"y": ["y"]},
                    {"x": [1, 4, 8, 8], "y": [1, 4, 8, 8], "s": [4], "b": [4]})
    assert reached(enter(view, "x", 1)) == {("y", 1): ident(4), ("s", 0): ident(4), ("b", 0): ident(4)}
    assert reached(enter(view, "y", 1)) == {("x", 1): ident(4), ("s", 0): ident(4), ("b", 0): ident(4)}


def test_group_norm_prunes_whole_groups_and_their_statistics():
    view = FakeView("group_norm", {"x": ["x"], "scale": ["s"], "bias": ["b"]},
                    {"y": ["y"], "mean": ["m"], "variance": ["v"]},
                    {"x": [1, 6, 4, 4], "y": [1, 6, 4, 4], "s": [6], "b": [6], "m": [1, 3], "v": [1, 3]},
                    {"groups": 3})
    group = enter(view, "x", 1)
    one_per_group = [(0, 0), (1, 2), (2, 4)]  # each group's statistic follows the group's first channel
    assert reached(group) == {("y", 1): ident(6), ("s", 0): ident(6), ("b", 0): ident(6),
                              ("m", 1): one_per_group, ("v", 1): one_per_group}
    assert [a.tolist() for a in group.atoms()] == [[0, 1], [2, 3], [4, 5]]
    assert [(op.type, name) for op, name in group.attr_edits] == [("group_norm", "groups")]
    assert "statistics cannot be pruned directly" in refusal(view, "m", 1).why


def test_unary_outputs_of_the_same_rank_keep_the_channels():
    view = FakeView("relu", {"x": ["x"]}, {"out": ["y"]}, {"x": [1, 4, 8, 8], "y": [1, 4, 8, 8]})
    assert reached(enter(view, "x", 1)) == {("y", 1): ident(4)}
    assert reached(enter(view, "y", 1)) == {("x", 1): ident(4)}
    indexed = FakeView("max_pool2d_with_index", {"x": ["x"]}, {"out": ["y"], "mask": ["i"]},
                       {"x": [1, 4, 8, 8], "y": [1, 4, 4, 4], "i": [1, 4, 4, 4]})
    group = enter(indexed, "x", 1)
    assert reached(group) == {("y", 1): ident(4), ("i", 1): ident(4)} and group.outputs == ["y"]  # mask: side
    assert "changes size (8 -> 4)" in refusal(indexed, "x", 2).why


def test_prelu_per_channel_slopes_follow_and_a_shared_slope_does_not():
    view = FakeView("prelu", {"x": ["x"], "alpha": ["a"]}, {"out": ["y"]},
                    {"x": [1, 4, 8, 8], "a": [1, 4, 1, 1], "y": [1, 4, 8, 8]}, {"mode": "channel"})
    assert reached(enter(view, "x", 1)) == {("y", 1): ident(4), ("a", 1): ident(4)}
    shared = FakeView("prelu", {"x": ["x"], "alpha": ["a"]}, {"out": ["y"]},
                      {"x": [1, 4, 8, 8], "a": [1], "y": [1, 4, 8, 8]}, {"mode": "all"})
    assert reached(enter(shared, "x", 1)) == {("y", 1): ident(4)}
    element = FakeView("prelu", {"x": ["x"], "alpha": ["a"]}, {"out": ["y"]},
                       {"x": [1, 4, 8, 8], "a": [1, 4, 8, 8], "y": [1, 4, 8, 8]}, {"mode": "element"})
    assert "element-wise" in refusal(element, "x", 1).why


def test_softmax_passes_other_axes_and_refuses_its_own():
    view = FakeView("softmax", {"x": ["x"]}, {"out": ["y"]}, {"x": [1, 4, 10], "y": [1, 4, 10]}, {"axis": -1})
    assert reached(enter(view, "x", 1)) == {("y", 1): ident(4)}
    assert "normalizes over the pruned axis" in refusal(view, "x", 2).why


def test_add_n_couples_every_input_and_the_sum():
    view = FakeView("add_n", {"inputs": ["a", "b"]}, {"out": ["y"]},
                    {"a": [1, 4, 2, 2], "b": [1, 4, 2, 2], "y": [1, 4, 2, 2]})
    assert reached(enter(view, "b", 1)) == {("a", 1): ident(4), ("y", 1): ident(4)}


def test_block_boundary_values_crossing_a_branch_lose_the_same_channels():
    view = FakeView("select_input", {"mask": ["m"], "x": ["a", "b"]}, {"out": ["y"]},
                    {"m": [1], "a": [1, 4, 2, 2], "b": [1, 4, 2, 2], "y": [1, 4, 2, 2]})
    assert reached(enter(view, "a", 1)) == {("b", 1): ident(4), ("y", 1): ident(4)}  # never the mask
    uneven = FakeView("select_input", {"mask": ["m"], "x": ["a", "b"]}, {"out": ["y"]},
                      {"m": [1], "a": [1, 4, 2, 2], "b": [1, 6, 2, 2], "y": [1, -1, 2, 2]})
    assert "differ in shape on axis 1" in refusal(uneven, "a", 1).why


def test_condition_refuses_wherever_it_is():
    view = FakeView("condition", {"x": ["c"]}, {}, {"c": [1, 4]})
    refused = refusal(view, "c", 1)
    assert refused.anywhere and "decides which branch runs" in refused.why


def test_reduce_keeps_the_channels_of_the_axes_it_does_not_reduce():
    view = FakeView("mean", {"x": ["x"]}, {"out": ["y"]}, {"x": [1, 4, 8, 8], "y": [1, 4]},
                    {"axis": [2, 3], "keepdim": False})
    assert reached(enter(view, "x", 1)) == {("y", 1): ident(4)}
    assert reached(enter(view, "y", 1)) == {("x", 1): ident(4)}
    assert "reduces over the pruned axis" in refusal(view, "x", 2).why
    leading = FakeView("sum", {"x": ["x"]}, {"out": ["y"]}, {"x": [3, 4], "y": [4]}, {"axis": [0], "keepdim": False})
    assert reached(enter(leading, "x", 1)) == {("y", 0): ident(4)}  # the axes before it shift down
    kept = FakeView("max", {"x": ["x"]}, {"out": ["y"]}, {"x": [3, 4], "y": [1, 4]}, {"axis": [0], "keepdim": True})
    assert reached(enter(kept, "x", 1)) == {("y", 1): ident(4)}


def test_pixel_shuffle_ties_each_output_channel_to_its_block_of_inputs():
    view = FakeView("pixel_shuffle", {"x": ["x"]}, {"out": ["y"]}, {"x": [1, 8, 4, 4], "y": [1, 2, 8, 8]},
                    {"upscale_factor": 2})
    assert reached(enter(view, "y", 1)) == {("x", 1): [(i, i // 4) for i in range(8)]}
    group = enter(view, "x", 1)
    assert [a.tolist() for a in group.atoms()] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert reached(group)[("y", 1)] == [(0, 0), (1, 4)]
    unshuffle = FakeView("pixel_unshuffle", {"x": ["x"]}, {"out": ["y"]}, {"x": [1, 2, 8, 8], "y": [1, 8, 4, 4]},
                         {"downscale_factor": 2})
    assert reached(enter(unshuffle, "x", 1)) == {("y", 1): [(i, i // 4) for i in range(8)]}
    assert "moves axis 2" in refusal(view, "x", 2).why


def test_shape_is_refused_only_where_the_channel_count_is_used():
    query = ("shape", {"input": ["x"]}, {"out": ["s"]})
    shapes = {"x": [1, 4, 8, 8], "s": [4], "n": [1], "z": [2, 2], "r": [16]}
    batch_only = FakeView(*query, shapes, more=[("slice", {"input": ["s"]}, {"out": ["n"]},
                                                   {"axes": [0], "starts": [0], "ends": [1]}),
                                                  ("reshape", {"x": ["r"], "shape": ["n"]}, {"out": ["z"]}, None)])
    assert reached(enter(batch_only, "x", 1)) == {}  # it reads the batch size alone
    channels = FakeView(*query, shapes, more=[("slice", {"input": ["s"]}, {"out": ["n"]},
                                                 {"axes": [0], "starts": [1], "ends": [2]}),
                                                ("reshape", {"x": ["r"], "shape": ["n"]}, {"out": ["z"]}, None)])
    refused = refusal(channels, "x", 1)
    assert refused.anywhere and "used by 'slice'" in refused.why
    unused = FakeView(*query, shapes, more=[("slice", {"input": ["s"]}, {"out": ["n"]},
                                               {"axes": [0], "starts": [1], "ends": [2]})])
    assert reached(enter(unused, "x", 1)) == {}  # nothing reads what the slice computes


def test_mul_flattened_input_channels_prune_weight_row_blocks():
    view = FakeView("mul", {"x": ["x"], "y": ["w"]}, {"out": ["o"]}, {"x": [1, 4, 2, 2], "w": [16, 10], "o": [1, 10]},
                    {"x_num_col_dims": 1})
    group = enter(view, "x", 1)
    assert reached(group) == {("w", 0): [(i, i // 4) for i in range(16)]} and group.tagged("fc_in") == [("w", 0)]
    assert "only the first flattened axis" in refusal(view, "x", 2).why


def test_every_tested_rule_is_registered():
    assert {"conv2d", "depthwise_conv2d", "batch_norm", "concat", "add", "reshape", "transpose", "split",
            "layer_norm", "matmul"} <= set(RULES)


def test_slices_along_other_axes_keep_the_channels_and_a_cut_of_them_is_refused():
    shapes = {"x": [2, 6, 8, 8], "y": [2, 6, 4, 8]}
    rows = FakeView("slice", {"input": ["x"]}, {"out": ["y"]}, shapes,
                    {"axes": [2], "starts": [1], "ends": [5], "decrease_axis": []})
    assert reached(enter(rows, "x", 1)) == {("y", 1): ident(6)}
    assert reached(enter(rows, "y", 1)) == {("x", 1): ident(6)}
    one_image = FakeView("slice", {"input": ["x"]}, {"out": ["y"]}, {"x": [2, 6, 8, 8], "y": [6, 8, 8]},
                         {"axes": [0], "starts": [1], "ends": [2], "decrease_axis": [0]})
    assert reached(enter(one_image, "x", 1)) == {("y", 0): ident(6)}  # the dropped batch axis shifts it down
    assert reached(enter(one_image, "y", 0)) == {("x", 1): ident(6)}
    cut = FakeView("slice", {"input": ["x"]}, {"out": ["y"]}, {"x": [2, 6, 8, 8], "y": [2, 2, 8, 8]},
                   {"axes": [1], "starts": [2], "ends": [4], "decrease_axis": []})
    assert "cuts axis 1, the pruned one" in refusal(cut, "x", 1).why
    whole = FakeView("slice", {"input": ["x"]}, {"out": ["y"]}, {"x": [2, 6, 8, 8], "y": [2, 6, 8, 8]},
                     {"axes": [1], "starts": [0], "ends": [2 ** 31 - 1], "decrease_axis": []})
    assert reached(enter(whole, "x", 1)) == {("y", 1): ident(6)}  # all of them: no cut
    strided = FakeView("strided_slice", {"x": ["x"]}, {"out": ["y"]}, {"x": [2, 6, 8, 8], "y": [2, 6, 8, 8]},
                       {"axes": [1], "starts": [0], "ends": [6], "strides": [-1]})
    assert "cuts axis 1" in refusal(strided, "x", 1).why  # a reversal moves every channel
    cols = FakeView("strided_slice", {"x": ["x"]}, {"out": ["y"]}, {"x": [2, 6, 8, 8], "y": [2, 6, 8, 4]},
                    {"axes": [3], "starts": [0], "ends": [8], "strides": [2]})
    assert reached(enter(cols, "x", 1)) == {("y", 1): ident(6)}


def test_gather_along_other_axes_keeps_the_channels_and_along_them_is_refused():
    shapes = {"x": [5, 6, 2, 2], "i": [5], "y": [5, 6, 2, 2]}
    rois = FakeView("gather", {"x": ["x"], "index": ["i"]}, {"out": ["y"]}, shapes, {"axis": 0})
    assert reached(enter(rois, "x", 1)) == {("y", 1): ident(6)}
    assert reached(enter(rois, "y", 1)) == {("x", 1): ident(6)}
    assert "picks along axis 0, the pruned one" in refusal(rois, "x", 0).why
    assert "its index holds positions" in refusal(rois, "i", 0).why
    channels = FakeView("gather", {"x": ["x"], "index": ["i"]}, {"out": ["y"]}, {**shapes, "i": [6]}, {"axis": 1})
    assert "picks along axis 1, the pruned one" in refusal(channels, "x", 1).why
    computed = FakeView("gather", {"x": ["x"], "index": ["i"], "axis": ["a"]}, {"out": ["y"]}, shapes, {})
    assert "computed at run time" in refusal(computed, "x", 1).why


def test_roi_align_pools_every_box_from_the_feature_maps_channels():
    view = FakeView("roi_align", {"x": ["x"], "boxes": ["b"], "boxes_num": ["n"]}, {"out": ["y"]},
                    {"x": [2, 6, 8, 8], "b": [5, 4], "n": [2], "y": [5, 6, 2, 2]}, {"pooled_height": 2})
    assert reached(enter(view, "x", 1)) == {("y", 1): ident(6)}
    assert reached(enter(view, "y", 1)) == {("x", 1): ident(6)}
    assert "only the channel axis (1)" in refusal(view, "b", 1).why
    assert "only the channel axis (1)" in refusal(view, "x", 2).why
