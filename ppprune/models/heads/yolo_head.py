"""YOLOv3 head: yolo_block stacks per level, yolo_loss for training, yolo_box + multiclass NMS for eval.

Names follow PaddleDetection (`yolo_block.0.0.0.conv.weights`, `yolo_transition.0.bn.scale`,
`yolo_output.0.conv.weights`) so its pruning recipes apply unchanged.
"""
import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.base.layer_helper import LayerHelper
from paddle.framework import in_dynamic_or_pir_mode
from paddle.nn.initializer import Assign, Normal
from paddle.regularizer import L2Decay

from ...config import ConfigValueError
from ...config.checks import need, need_list
from ...registry import HEADS
from ..layers import ConvBN

COCO_ANCHORS = [[10, 13], [16, 30], [33, 23], [30, 61], [62, 45], [59, 119], [116, 90], [156, 198], [373, 326]]
COCO_MASKS = [[6, 7, 8], [3, 4, 5], [0, 1, 2]]


def _conv_bn(cin, cout, k, name):
    return ConvBN(cin, cout, k, f"{name}.conv.weights",
                  (f"{name}.bn.scale", f"{name}.bn.offset", f"{name}.bn.mean", f"{name}.bn.var"),
                  act="leaky", init="normal")


class YoloBlock(nn.Layer):
    """Two (1x1 c, 3x3 2c) pairs, then `route` (1x1 c, fed to the next level) and `tip` (3x3 2c, to the output)."""

    def __init__(self, cin, channels, name):
        super().__init__()
        layers = []
        for j in range(2):
            layers += [_conv_bn(cin, channels, 1, f"{name}.{j}.0"), _conv_bn(channels, channels * 2, 3, f"{name}.{j}.1")]
            cin = channels * 2
        self.body = nn.Sequential(*layers)
        self.route = _conv_bn(channels * 2, channels, 1, f"{name}.2")
        self.tip = _conv_bn(channels, channels * 2, 3, f"{name}.tip")

    def forward(self, x):
        route = self.route(self.body(x))
        return route, self.tip(route)


def _output_bias(num_anchors, num_classes, prior=0.01):
    """Objectness logits start at log(prior / (1 - prior)): with the usual 0 (p = 0.5) the loss of every
    background cell is so large in the first steps that its gradients blow the backbone weights up."""
    bias = np.zeros((num_anchors, num_classes + 5), np.float32)
    bias[:, 4] = np.log(prior / (1 - prior))
    return Assign(bias.reshape(-1))


def multiclass_nms(bboxes, scores, score_threshold, nms_top_k, keep_top_k, nms_threshold, normalized=False):
    """Paddle's multiclass_nms3 op: [N, M, 4] boxes + [N, C, M] scores -> ([K, 6] rows, [N] counts).
    `normalized=False` measures pixel boxes with +1 (YOLOv3's convention); PP-YOLOE keeps True.

    Paddle 3 has no public wrapper; the op is reachable through `_C_ops` (dygraph, PIR) or a raw
    append_op (legacy programs).
    """
    if in_dynamic_or_pir_mode():
        out, _, num = paddle._C_ops.multiclass_nms3(bboxes, scores, None, score_threshold, nms_top_k, keep_top_k,
                                                    nms_threshold, normalized, 1.0, -1)
        return out, num
    helper = LayerHelper("multiclass_nms3")
    out = helper.create_variable_for_type_inference(bboxes.dtype)
    index = helper.create_variable_for_type_inference("int32")
    num = helper.create_variable_for_type_inference("int32")
    helper.append_op(type="multiclass_nms3", inputs={"BBoxes": bboxes, "Scores": scores},
                     outputs={"Out": out, "Index": index, "NmsRoisNum": num},
                     attrs={"background_label": -1, "score_threshold": score_threshold, "nms_top_k": nms_top_k,
                            "nms_threshold": nms_threshold, "keep_top_k": keep_top_k, "nms_eta": 1.0,
                            "normalized": normalized})
    return out, num


def _check_args(levels, num_classes, anchors, anchor_masks, base_channels, args):
    """The head's numbers, each named as its config key (`YOLOv3Head.<arg>`)."""
    need("num_classes", num_classes, int, low=1)
    for i, anchor in enumerate(need_list("YOLOv3Head.anchors", anchors, list)):
        need_list(f"YOLOv3Head.anchors[{i}]", anchor, float, length=2, above=0)
    if not isinstance(anchor_masks, (list, tuple)) or len(anchor_masks) != levels:
        raise ConfigValueError(f"YOLOv3Head.anchor_masks is {anchor_masks!r}; it must list {levels} masks, one per "
                               "feature level of the backbone (fix the config or -o YOLOv3Head.anchor_masks=...)")
    for i, mask in enumerate(anchor_masks):
        for j, index in enumerate(need_list(f"YOLOv3Head.anchor_masks[{i}]", mask, int)):
            need(f"YOLOv3Head.anchor_masks[{i}][{j}]", index, int, low=0, high=len(anchors) - 1)
    # each level halves the width, and the route between levels halves it again: at least 1 channel
    need("YOLOv3Head.base_channels", base_channels, int, low=2 ** max(levels - 1, 1))
    for key in ("ignore_thresh", "conf_thresh", "nms_threshold"):
        need(f"YOLOv3Head.{key}", args[key], float, low=0, high=1)
    for key in ("nms_top_k", "keep_top_k"):  # -1: keep all (Paddle's convention)
        if args[key] != -1:
            need(f"YOLOv3Head.{key}", args[key], int, low=1)
    need("YOLOv3Head.label_smooth", args["label_smooth"], bool)


@HEADS.register
class YOLOv3Head(nn.Layer):
    """`in_channels` lists backbone features shallow to deep; the deepest one is level 0 (stride 32).

    `base_channels` is level 0's route width (512 in the paper; halved per level); lower it for small demos.
    """

    __shared__ = ["num_classes"]

    def __init__(self, in_channels, num_classes=80, anchors=COCO_ANCHORS, anchor_masks=COCO_MASKS,
                 base_channels=512, ignore_thresh=0.7, label_smooth=False, conf_thresh=0.01,
                 nms_threshold=0.45, nms_top_k=1000, keep_top_k=100):
        super().__init__()
        _check_args(len(in_channels), num_classes, anchors, anchor_masks, base_channels, locals())
        self.num_classes, self.anchors, self.anchor_masks = num_classes, anchors, anchor_masks
        self.ignore_thresh, self.label_smooth = ignore_thresh, label_smooth
        self.nms_cfg = dict(score_threshold=conf_thresh, nms_top_k=nms_top_k, keep_top_k=keep_top_k,
                            nms_threshold=nms_threshold)
        self.conf_thresh = conf_thresh
        self.strides = [32 // 2 ** i for i in range(len(in_channels))]
        blocks, transitions, outputs = [], [], []
        route_ch = 0
        for i, cin in enumerate(reversed(in_channels)):
            ch = base_channels // 2 ** i
            blocks.append(YoloBlock(cin + route_ch, ch, f"yolo_block.{i}"))
            outputs.append(nn.Conv2D(
                ch * 2, len(anchor_masks[i]) * (num_classes + 5), 1,
                weight_attr=ParamAttr(name=f"yolo_output.{i}.conv.weights", initializer=Normal(0.0, 0.01)),
                bias_attr=ParamAttr(name=f"yolo_output.{i}.conv.bias", regularizer=L2Decay(0.0),
                                    initializer=_output_bias(len(anchor_masks[i]), num_classes))))
            if i < len(in_channels) - 1:
                route_ch = ch // 2
                transitions.append(_conv_bn(ch, route_ch, 1, f"yolo_transition.{i}"))
        self.blocks, self.transitions, self.outputs = (nn.LayerList(x) for x in (blocks, transitions, outputs))

    def forward(self, feats):
        """Raw per-level maps [N, A*(5+C), H, W], deepest level first."""
        outs, route = [], None
        for i, feat in enumerate(reversed(feats)):
            if route is not None:
                feat = paddle.concat([route, feat], axis=1)
            route, tip = self.blocks[i](feat)
            outs.append(self.outputs[i](tip))
            if i < len(self.transitions):
                route = F.interpolate(self.transitions[i](route), scale_factor=2.0, mode="nearest")
        return outs

    def loss(self, outs, gt_bbox, gt_class, gt_score):
        anchors = [v for a in self.anchors for v in a]
        losses = [paddle.vision.ops.yolo_loss(
            out, gt_bbox, gt_class, anchors, mask, self.num_classes, self.ignore_thresh, stride,
            gt_score=gt_score, use_label_smooth=self.label_smooth).mean()
            for out, mask, stride in zip(outs, self.anchor_masks, self.strides)]
        return paddle.add_n(losses)

    def predict(self, outs, im_shape):
        """-> ([K, 6] rows (class, score, x1, y1, x2, y2) in original-image pixels, [N] rows per image)."""
        boxes, scores = [], []
        for out, mask, stride in zip(outs, self.anchor_masks, self.strides):
            anchors = [v for m in mask for v in self.anchors[m]]
            b, s = paddle.vision.ops.yolo_box(out, im_shape, anchors, self.num_classes, self.conf_thresh, stride)
            boxes.append(b)
            scores.append(s)
        scores = paddle.transpose(paddle.concat(scores, axis=1), [0, 2, 1])
        return multiclass_nms(paddle.concat(boxes, axis=1), scores, **self.nms_cfg)
