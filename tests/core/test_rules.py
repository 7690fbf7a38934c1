"""One test per channel rule, on a fake view holding just the op: a failure names the broken rule, where an
oracle failure only says that some network computes something else.

Each test enters the op with all channels of one (tensor, axis) and checks what the rule reaches: the other
tensors and axes, which channel of each follows which master channel, and the edits and ties it records."""
from ppprune.core.channel_map import ChannelMap
from ppprune.core.graph.base import FORWARD, GraphView, OpView
from ppprune.core.groups import Group
from ppprune.core.rules import RULES
from ppprune.core.walk import Walk


class FakeView(GraphView):
    """A view of one op: `shapes` {key: shape}, `ins`/`outs` {slot: [key]}, `attrs` {name: value}."""

    ir = "fake"

    def __init__(self, op_type, ins, outs, shapes, attrs=None):
        attrs = attrs or {}
        self.shapes = shapes
        self.ops = [OpView(None, op_type, FORWARD, ins, outs, 0, lambda op, name: attrs.get(name))]
        self._index()

    def shape(self, key):
        return self.shapes.get(key)

    def persistable_name(self, key):
        return None

    def is_fetched(self, key):
        return False


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


def test_every_tested_rule_is_registered():
    assert {"conv2d", "depthwise_conv2d", "batch_norm", "concat", "add", "reshape", "transpose", "split",
            "layer_norm", "matmul"} <= set(RULES)
