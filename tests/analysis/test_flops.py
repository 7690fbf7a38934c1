"""FLOPs (multiply-adds per sample) and model size against hand counts, before and after pruning, both IRs."""
import paddle
import pytest
from paddle import nn
import paddle.nn.functional as F

from tests.helpers import oracle
from ppprune.analysis import flops, model_size
from ppprune.core.errors import PruneError
from ppprune.prune import Pruner

IRS = ["pir", "legacy"]


def _attr(name):
    return paddle.ParamAttr(name=name)


def plain(x):
    """[1,8,8] -> conv1 3x3 (4) -> relu -> conv2 3x3/2 (6) -> fc 96->10."""
    y = F.relu(nn.Conv2D(1, 4, 3, padding=1, weight_attr=_attr("f_conv1_w"), bias_attr=False)(x))
    y = nn.Conv2D(4, 6, 3, stride=2, padding=1, weight_attr=_attr("f_conv2_w"), bias_attr=False)(y)
    return nn.Linear(96, 10, weight_attr=_attr("f_fc_w"), bias_attr=_attr("f_fc_b"))(paddle.flatten(y, 1))


def mixed(x):
    """[2,8,8] -> depthwise 3x3 -> bn -> maxpool 2 -> conv2d_transpose 2x2/2 (3) -> global avg pool -> fc 3->5."""
    y = nn.Conv2D(2, 2, 3, padding=1, groups=2, weight_attr=_attr("f_dw_w"), bias_attr=False)(x)
    y = nn.BatchNorm2D(2, use_global_stats=True)(y)
    y = F.max_pool2d(y, 2, 2)
    y = nn.Conv2DTranspose(2, 3, 2, stride=2, weight_attr=_attr("f_up_w"), bias_attr=False)(y)
    y = F.adaptive_avg_pool2d(y, 1)
    return nn.Linear(3, 5, weight_attr=_attr("f_head_w"), bias_attr=_attr("f_head_b"))(paddle.flatten(y, 1))


# Hand counts. plain: conv1 8*8*4*(1*9); relu 8*8*4; conv2 4*4*6*(4*9); fc 96*10; fc bias 10.
PLAIN = {"f_conv1_w": 2304, "f_conv2_w": 3456, "f_fc_w": 960}
PLAIN_ALL = 2304 + 256 + 3456 + 960 + 10
# Pruned to conv1 2 and conv2 3 channels: 8*8*2*9; relu 128; 4*4*3*(2*9); fc 48*10; bias 10.
PRUNED = {"f_conv1_w": 1152, "f_conv2_w": 864, "f_fc_w": 480}
PRUNED_ALL = 1152 + 128 + 864 + 480 + 10
# mixed: depthwise 8*8*2*(1*9); bn 128; maxpool 4*4*2*(2*2); transpose 32 inputs*(3*2*2); global pool reads
# 8*8*3; fc 3*5; bias 5.
MIXED_CONV = 1152 + 384
MIXED_ALL = 1152 + 128 + 128 + 384 + 192 + 15 + 5


@pytest.mark.parametrize("ir", IRS)
def test_plain_net_before_and_after_pruning(ir):
    with oracle.ir_guard(ir):
        main, startup, _, _ = oracle.build(plain, [1, 8, 8])
        scope, _ = oracle.init_scope(startup, main)
        total, layers = flops(main, detail=True, only_conv=True)
        assert (total, layers) == (sum(PLAIN.values()) - 960, {k: v for k, v in PLAIN.items() if k != "f_fc_w"})
        total, layers = flops(main, detail=True)
        assert total == PLAIN_ALL and {k: layers[k] for k in PLAIN} == PLAIN
        assert model_size(main) == 4 * 9 + 6 * 4 * 9 + 960 + 10

        pruned, _, _ = Pruner().prune(main, scope, ["f_conv1_w", "f_conv2_w"], [0.5, 0.5])
        total, layers = flops(pruned, detail=True)
        assert total == PRUNED_ALL and {k: layers[k] for k in PRUNED} == PRUNED
        assert flops(pruned, only_conv=True) == 1152 + 864
        assert model_size(pruned) == model_size(pruned, scope) == 2 * 9 + 3 * 2 * 9 + 480 + 10
        assert flops(main) == PLAIN_ALL, "the input program must be left as it was"


@pytest.mark.parametrize("ir", IRS)
def test_depthwise_transpose_pool_bn(ir):
    with oracle.ir_guard(ir):
        main, _, _, _ = oracle.build(mixed, [2, 8, 8])
        total, layers = flops(main, detail=True)
        assert flops(main, only_conv=True) == MIXED_CONV
        assert total == MIXED_ALL
        assert layers["f_dw_w"] == 1152 and layers["f_up_w"] == 384 and layers["f_head_w"] == 15
        assert sorted(k.split("#")[0] for k in layers if "#" in k) == ["add", "batch_norm", "pool2d", "pool2d"]


def test_model_size_reads_the_scope():
    main, startup, _, _ = oracle.build(plain, [1, 8, 8])
    scope, _ = oracle.init_scope(startup, main)
    Pruner().prune(main, scope, ["f_conv1_w"], [0.5], only_graph=False)  # scope pruned, `main` untouched
    assert model_size(main) == 1222
    assert model_size(main, scope) == 1222 - 2 * 9 - 6 * 2 * 9


def test_unknown_spatial_size_is_a_clear_error():
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        x = paddle.static.data("image", [None, 1, None, None], "float32")
        nn.Conv2D(1, 2, 3, bias_attr=False)(x)
    with pytest.raises(PruneError, match="fixed size"):
        flops(main)


def test_batch_dimension_counts_once():
    """A fixed batch of 4 costs four samples; an unknown batch (-1) counts as one."""
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        x = paddle.static.data("image", [4, 1, 8, 8], "float32")
        nn.Conv2D(1, 4, 3, padding=1, bias_attr=False)(x)
    assert flops(main) == 4 * 2304
    assert flops(oracle.build(plain, [1, 8, 8])[0], only_conv=True) == 5760


def test_mobilenet_v1_matches_the_paper():
    """MobileNetV1 1.0-224 is quoted at 569 million mult-adds (Howard et al. 2017, table 8): 568,740,352
    for its convolutions and classifier."""
    from paddle.vision import models

    def net(x):
        model = models.mobilenet_v1(num_classes=1000)
        model.eval()
        return model(x)

    main = oracle.build(net, [3, 224, 224])[0]
    _, layers = flops(main, detail=True)
    conv_and_fc = flops(main, only_conv=True) + sum(v for k, v in layers.items() if k.startswith("linear"))
    assert conv_and_fc == 568_740_352
