"""PPYOLOEHead: per level an ESE-attended class branch and box branch; boxes regressed as distributions
over `reg_max + 1` distance bins (DFL); task-aligned assignment; varifocal + GIoU + DFL losses; NMS.

Names follow PaddleDetection (`yolo_head.stem_cls.0.fc.weight`, `yolo_head.pred_reg.2.bias`,
`yolo_head.proj_conv.weight`: the fixed 0..reg_max bin values).
"""
import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import Assign, Constant, Normal
from paddle.regularizer import L2Decay

from ...config import ConfigValueError
from ...registry import HEADS
from ..assigners.task_aligned import TaskAlignedAssigner
from ..backbones.cspresnet import ConvBNLayer
from ..bbox_utils import bbox2distance, distance2bbox, giou_loss
from ..losses.dense import dfl_loss, varifocal_loss
from .yolo_head import multiclass_nms

LOSS_WEIGHT = {"class": 1.0, "iou": 2.5, "dfl": 0.5}
NMS = {"name": "MultiClassNMS", "nms_top_k": 1000, "keep_top_k": 300, "score_threshold": 0.01, "nms_threshold": 0.7}
ASSIGNER = {"name": "TaskAlignedAssigner", "topk": 13, "alpha": 1.0, "beta": 6.0}


class ESEAttn(nn.Layer):
    """conv(feat * sigmoid(fc(avg_feat))), `avg_feat` the level's global average (shared by both branches)."""

    def __init__(self, channels, name, act="swish"):
        super().__init__()
        self.fc = nn.Conv2D(channels, channels, 1, weight_attr=ParamAttr(name=f"{name}.fc.weight", initializer=Normal(0, 0.001)),
                            bias_attr=ParamAttr(name=f"{name}.fc.bias", regularizer=L2Decay(0.0)))
        self.conv = ConvBNLayer(channels, channels, 1, f"{name}.conv", act=act)

    def forward(self, feat, avg_feat):
        return self.conv(paddle.multiply(feat, F.sigmoid(self.fc(avg_feat))))


def _pred_conv(cin, cout, name, bias):
    """The 3x3 output conv; zero weights and a constant bias, so training starts from a flat prior."""
    return nn.Conv2D(cin, cout, 3, padding=1, weight_attr=ParamAttr(name=f"{name}.weight", initializer=Constant(0.0)),
                     bias_attr=ParamAttr(name=f"{name}.bias", initializer=Constant(bias), regularizer=L2Decay(0.0)))


def _section(value, defaults, what):
    """A config sub-dict over `defaults`; an unknown key is an error naming the allowed ones."""
    value = dict(value or {})
    unknown = sorted(set(value) - set(defaults))
    if unknown:
        raise ConfigValueError(f"PPYOLOEHead.{what}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(defaults)}")
    return {**defaults, **value}


def anchor_points(feats, strides, offset=0.5):
    """Cell centres of every level in input pixels [L, 2] (x, y) and each one's stride [L, 1], from the
    maps' run-time sizes (multi-scale training feeds varying H, W to one program)."""
    points, stride_of = [], []
    for feat, stride in zip(feats, strides):
        size = paddle.shape(feat)
        xs = (paddle.arange(size[3]).astype("float32") + offset) * stride
        ys = (paddle.arange(size[2]).astype("float32") + offset) * stride
        yy, xx = paddle.meshgrid(ys, xs)
        level = paddle.stack([xx, yy], axis=-1).reshape([-1, 2])
        points.append(level)
        stride_of.append(paddle.full_like(level[:, :1], stride))
    return paddle.concat(points, axis=0), paddle.concat(stride_of, axis=0)


@HEADS.register
class PPYOLOEHead(nn.Layer):
    """`in_channels` lists the neck's maps deep to shallow, matching `fpn_strides` (32, 16, 8).

    Without ATSS: PaddleDetection warms up with an ATSS assigner for `static_assigner_epoch` epochs;
    here the task-aligned assigner is used from the first iteration (the only `assigner` implemented).
    """

    __shared__ = ["num_classes"]

    def __init__(self, in_channels, num_classes=80, act="swish", fpn_strides=(32, 16, 8), grid_cell_offset=0.5,
                 reg_max=16, loss_weight=None, assigner=None, nms=None, name="yolo_head"):
        super().__init__()
        if len(in_channels) != len(fpn_strides):
            raise ValueError(f"PPYOLOEHead: {len(in_channels)} input levels for {len(fpn_strides)} fpn_strides")
        self.num_classes, self.reg_max, self.strides, self.offset = num_classes, reg_max, list(fpn_strides), grid_cell_offset
        self.loss_weight = _section(loss_weight, LOSS_WEIGHT, "loss_weight")
        assign = _section(assigner, ASSIGNER, "assigner")
        if assign.pop("name") != "TaskAlignedAssigner":
            raise ConfigValueError("PPYOLOEHead.assigner.name: only TaskAlignedAssigner is implemented (no ATSS warm-up)")
        self.assigner = TaskAlignedAssigner(**assign)
        self.nms_cfg = _section(nms, NMS, "nms")
        if self.nms_cfg.pop("name") != "MultiClassNMS":
            raise ConfigValueError("PPYOLOEHead.nms.name: only MultiClassNMS is implemented")
        prior = float(-np.log((1 - 0.01) / 0.01))  # class scores start at 0.01
        bins = reg_max + 1
        self.stem_cls = nn.LayerList([ESEAttn(c, f"{name}.stem_cls.{i}", act) for i, c in enumerate(in_channels)])
        self.stem_reg = nn.LayerList([ESEAttn(c, f"{name}.stem_reg.{i}", act) for i, c in enumerate(in_channels)])
        self.pred_cls = nn.LayerList([_pred_conv(c, num_classes, f"{name}.pred_cls.{i}", prior) for i, c in enumerate(in_channels)])
        self.pred_reg = nn.LayerList([_pred_conv(c, 4 * bins, f"{name}.pred_reg.{i}", 1.0) for i, c in enumerate(in_channels)])
        # the expectation over the bins, as a frozen 1x1 conv weight in PaddleDetection's checkpoints
        self.proj = self.create_parameter(
            [1, bins, 1, 1], attr=ParamAttr(name=f"{name}.proj_conv.weight", trainable=False,
                                            initializer=Assign(np.arange(bins, dtype="float32").reshape(1, bins, 1, 1))))

    def forward(self, feats):
        """-> (class logits [B, L, C], box bin logits [B, L, 4, reg_max + 1], points [L, 2], strides [L, 1])."""
        cls, reg = [], []
        for i, feat in enumerate(feats):
            avg = F.adaptive_avg_pool2d(feat, 1)
            cls.append(self.pred_cls[i](paddle.add(self.stem_cls[i](feat, avg), feat)).flatten(2).transpose([0, 2, 1]))
            reg.append(self.pred_reg[i](self.stem_reg[i](feat, avg)).flatten(2).transpose([0, 2, 1]))
        reg = paddle.concat(reg, axis=1).reshape([0, 0, 4, self.reg_max + 1])
        points, strides = anchor_points(feats, self.strides, self.offset)
        return paddle.concat(cls, axis=1), reg, points, strides

    def distances(self, reg):
        """Expected (l, t, r, b) distance in strides: softmax over the bins times their values."""
        return paddle.matmul(F.softmax(reg, axis=-1), self.proj.reshape([-1, 1])).squeeze(-1)

    def loss(self, outs, gt_bbox, gt_class, gt_mask):
        """gt_bbox [B, n, 4] x1y1x2y2 in input pixels, gt_class [B, n], gt_mask [B, n] (0 for padding rows)."""
        cls, reg, points, strides = outs
        grid = points / strides
        boxes = distance2bbox(grid, self.distances(reg))  # in strides
        labels, target_boxes, target_scores = self.assigner(
            F.sigmoid(cls).detach(), (boxes * strides).detach(), points, gt_class, gt_bbox, gt_mask, self.num_classes)
        target_boxes = target_boxes / strides
        onehot = F.one_hot(labels, self.num_classes + 1)[..., :self.num_classes]
        total = target_scores.sum().clip(min=1.0)
        weight = target_scores.sum(axis=-1)  # zero off the positives: their box losses drop out
        loss_cls = varifocal_loss(cls, target_scores, onehot) / total
        loss_iou = (giou_loss(boxes, target_boxes) * weight).sum() / total
        loss_dfl = (dfl_loss(reg, bbox2distance(grid, target_boxes, self.reg_max)) * weight).sum() / total
        w = self.loss_weight
        return w["class"] * loss_cls + w["iou"] * loss_iou + w["dfl"] * loss_dfl

    def decode(self, outs):
        """-> (boxes [B, L, 4] in input pixels, scores [B, C, L]): the network's output before NMS."""
        cls, reg, points, strides = outs
        boxes = distance2bbox(points, self.distances(reg) * strides)
        return boxes, F.sigmoid(cls).transpose([0, 2, 1])

    def predict(self, boxes, scores, scale_factor):
        """Boxes back to original pixels (scale_factor [B, 2] = resized / original (h, w)), then NMS."""
        sy, sx = scale_factor[:, 0:1], scale_factor[:, 1:2]
        boxes = boxes / paddle.concat([sx, sy, sx, sy], axis=-1).unsqueeze(1)
        return multiclass_nms(boxes, scores, normalized=True, **self.nms_cfg)
