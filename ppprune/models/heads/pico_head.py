"""PicoHeadV2 (PicoDet's head, GFL-style): per level a stack of depthwise-separable convs shared by the class
and box branches (PicoFeat) with an SE-attended output, 1x1 class and box-distribution convs, and a class
score aligned by a second, box-side estimate: score = sqrt(sigmoid(cls) * sigmoid(cls_align)). Boxes are
distributions over `reg_max + 1` distance bins; task-aligned assignment; varifocal + GIoU + DFL; NMS.

Names follow PaddleDetection (`head.conv_feat.cls_conv_dw0.1.conv.weight`, `head.cls_align.2.dwconv.weight`).
Its head registers each output conv twice (`head.head_cls0` and `head.head_cls_list.0`, one tensor) and
keeps GFLHead's unused `p3_feat.scale_reg` scalars; both are reproduced, so its checkpoints load key for key.
"""
import math

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import Assign, Constant, Normal

from ...config import ConfigValueError, check_keys, create
from ...registry import HEADS
from ..assigners.task_aligned import TaskAlignedAssigner
from ..backbones.lcnet import bn_names
from ..layers import activate
from ..bbox_utils import EPS, bbox2distance, distance2bbox, giou_loss
from ..layers import batch_norm, conv2d
from ..losses.dense import dfl_loss, varifocal_loss
from ..necks.lc_pan import DPModule
from .ppyoloe_head import anchor_points
from .yolo_head import multiclass_nms

# PaddleDetection's picodet_v2.yml sections (the ATSS warm-up assigner is not implemented: see PicoHeadV2)
LOSS_CLASS = {"name": "VarifocalLoss", "use_sigmoid": False, "iou_weighted": True, "alpha": 0.75, "gamma": 2.0,
              "loss_weight": 1.0}
LOSS_DFL = {"name": "DistributionFocalLoss", "loss_weight": 0.5}
LOSS_BBOX = {"name": "GIoULoss", "loss_weight": 2.5}
ASSIGNER = {"name": "TaskAlignedAssigner", "topk": 13, "alpha": 1.0, "beta": 6.0}
NMS = {"name": "MultiClassNMS", "nms_top_k": 1000, "keep_top_k": 100, "score_threshold": 0.025, "nms_threshold": 0.6}


def _options(value, defaults, where):
    """A config sub-dict over `defaults`; an unknown key, or a `name` other than the implemented one, is an error."""
    value = dict(value or {})
    check_keys(value, defaults, where)
    opts = {**defaults, **value}
    if opts.pop("name") != defaults["name"]:
        raise ConfigValueError(f"{where}.name is {value['name']!r}: only {defaults['name']} is implemented")
    return opts


class ConvNormLayer(nn.Layer):
    """`name`.conv (no bias, N(0, 0.01)) -> `name`.norm (batch norm); no activation."""

    def __init__(self, cin, cout, k, name, groups=1):
        super().__init__()
        self.conv = conv2d(cin, cout, k, f"{name}.conv.weight", groups=groups, initializer=Normal(0.0, 0.01))
        self.norm = batch_norm(cout, bn_names(f"{name}.norm"))

    def forward(self, x):
        return self.norm(self.conv(x))


class PicoSE(nn.Layer):
    """conv(feat * sigmoid(fc(avg_feat))): `fc` a 1x1 conv with bias, `conv` a 1x1 ConvNormLayer."""

    def __init__(self, channels, name):
        super().__init__()
        self.fc = conv2d(channels, channels, 1, f"{name}.fc.weight", bias_name=f"{name}.fc.bias",
                         initializer=Normal(0.0, 0.001))
        self.conv = ConvNormLayer(channels, channels, 1, f"{name}.conv")

    def forward(self, feat, avg_feat):
        return self.conv(paddle.multiply(feat, F.sigmoid(self.fc(avg_feat))))


@HEADS.register
class PicoFeat(nn.Layer):
    """Per level `num_convs` pairs of (5x5 depthwise, 1x1) ConvNormLayers + activation, then (use_se) a PicoSE.
    forward(feat, level) -> (conv feature, SE feature): the class-alignment branch takes the first, the
    class and box convs the second (without SE both are the conv feature)."""

    def __init__(self, feat_in=96, feat_out=96, num_fpn_stride=4, num_convs=2, norm_type="bn", share_cls_reg=True,
                 act="hard_swish", use_se=True, name="conv_feat"):
        super().__init__()
        if norm_type != "bn" or not share_cls_reg:
            raise ConfigValueError("PicoFeat: only norm_type: bn with share_cls_reg: true is implemented "
                                   "(every PicoDet LCNet config uses them)")
        if feat_in != feat_out:
            raise ConfigValueError(f"PicoFeat: feat_in ({feat_in}) must equal feat_out ({feat_out}): "
                                   "its depthwise convs keep the width")
        self.act, self.channels, self.num_levels = act, feat_out, num_fpn_stride
        self.se = nn.LayerList() if use_se else None  # registered first: PaddleDetection's state dict lists it first
        self.cls_convs = []
        for s in range(num_fpn_stride):
            convs = []
            for i in range(num_convs):
                for kind, k, groups in (("dw", 5, feat_out), ("pw", 1, 1)):
                    key = f"cls_conv_{kind}{s}.{i}"
                    convs.append(self.add_sublayer(key, ConvNormLayer(feat_out, feat_out, k, f"{name}.{key}", groups)))
            self.cls_convs.append(convs)
            if use_se:
                self.se.append(PicoSE(feat_out, f"{name}.se.{s}"))

    def forward(self, feat, level):
        for conv in self.cls_convs[level]:
            feat = activate(conv(feat), self.act)
        if self.se is None:
            return feat, feat
        avg = paddle.mean(feat, axis=[2, 3], keepdim=True)
        return feat, activate(self.se[level](feat, avg), self.act)


class ScaleReg(nn.Layer):
    """GFLHead's per-level box scale: PicoHeadV2 never applies it; kept (frozen) for checkpoint compatibility."""

    def __init__(self, name):
        super().__init__()
        self.scale_reg = self.create_parameter([1], attr=ParamAttr(name=f"{name}.scale_reg", trainable=False,
                                                                   initializer=Constant(1.0)))


class Integral(nn.Layer):
    """Expected distance of each side from its bin logits [..., 4, bins]: softmax times the bin values
    `project` (0..reg_max, a frozen tensor in PaddleDetection's checkpoints)."""

    def __init__(self, reg_max, name):
        super().__init__()
        self.project = self.create_parameter(
            [reg_max + 1], attr=ParamAttr(name=f"{name}.project", trainable=False,
                                          initializer=Assign(np.arange(reg_max + 1, dtype="float32"))))

    def forward(self, reg):
        return paddle.matmul(F.softmax(reg, axis=-1), self.project.unsqueeze(-1)).squeeze(-1)


@HEADS.register
class PicoHeadV2(nn.Layer):
    """`in_channels` lists the neck's maps shallow to deep, matching `fpn_stride` (8, 16, 32, 64).

    Without ATSS: PaddleDetection assigns with ATSS for `static_assigner_epoch` epochs first; here the
    task-aligned assigner is used from the first iteration (the only `assigner` implemented). The varifocal
    loss counts as positive the anchors the assigner labels (PaddleDetection: those of non-zero target),
    which differ only for a positive whose target score is exactly 0.
    """

    __shared__ = ["num_classes"]

    def __init__(self, in_channels, conv_feat=None, num_classes=80, fpn_stride=(8, 16, 32, 64), feat_in_chan=96,
                 prior_prob=0.01, reg_max=7, cell_offset=0.5, use_align_head=True, act="hard_swish", loss_class=None,
                 loss_dfl=None, loss_bbox=None, assigner=None, nms=None, name="head"):
        super().__init__()
        self.conv_feat = create(HEADS, {"name": "PicoFeat", **(conv_feat or {})}, name=f"{name}.conv_feat")
        levels = {"the neck's outputs": len(in_channels), "fpn_stride": len(fpn_stride),
                  "conv_feat.num_fpn_stride": self.conv_feat.num_levels}
        if len(set(levels.values())) > 1:
            raise ConfigValueError("PicoHeadV2: the level counts differ (" + ", ".join(f"{k}: {v}" for k, v in levels.items())
                                   + "); give LCPAN.num_features, fpn_stride and conv_feat.num_fpn_stride alike")
        feat_in = self.conv_feat.channels
        if set(in_channels) != {feat_in} or feat_in_chan != feat_in:
            raise ConfigValueError(f"PicoHeadV2: the neck gives {sorted(set(in_channels))} channels, conv_feat.feat_in is "
                                   f"{feat_in} and feat_in_chan {feat_in_chan}; set all three equal")
        self.num_classes, self.reg_max, self.strides, self.offset = num_classes, reg_max, list(fpn_stride), cell_offset
        self.use_align_head = use_align_head
        loss_class = _options(loss_class, LOSS_CLASS, "PicoHeadV2.loss_class")
        if loss_class.pop("use_sigmoid") or not loss_class.pop("iou_weighted"):
            raise ConfigValueError("PicoHeadV2.loss_class: only use_sigmoid: false, iou_weighted: true is implemented "
                                   "(the aligned scores are already probabilities)")
        self.vfl = loss_class
        self.loss_weight = {"class": self.vfl.pop("loss_weight"),
                            "dfl": _options(loss_dfl, LOSS_DFL, "PicoHeadV2.loss_dfl")["loss_weight"],
                            "iou": _options(loss_bbox, LOSS_BBOX, "PicoHeadV2.loss_bbox")["loss_weight"]}
        self.assigner = TaskAlignedAssigner(**_options(assigner, ASSIGNER, "PicoHeadV2.assigner"))
        self.nms_cfg = _options(nms, NMS, "PicoHeadV2.nms")
        for stride in fpn_stride:  # PaddleDetection's level names: p3 for stride 8
            level = f"p{int(math.log2(stride))}_feat"
            self.add_sublayer(level, ScaleReg(f"{name}.{level}"))
        self.distribution_project = Integral(reg_max, f"{name}.distribution_project")
        prior = float(-np.log((1 - prior_prob) / prior_prob))
        self.head_cls_list, self.head_reg_list, self.cls_align = nn.LayerList(), nn.LayerList(), nn.LayerList()
        for i in range(len(fpn_stride)):
            cls = conv2d(feat_in_chan, num_classes, 1, f"{name}.head_cls_list.{i}.weight",
                         bias_name=f"{name}.head_cls_list.{i}.bias", initializer=Normal(0.0, 0.01),
                         bias_init=Constant(prior))
            reg = conv2d(feat_in_chan, 4 * (reg_max + 1), 1, f"{name}.head_reg_list.{i}.weight",
                         bias_name=f"{name}.head_reg_list.{i}.bias", initializer=Normal(0.0, 0.01),
                         bias_init=Constant(0.0))
            # one layer under both of PaddleDetection's keys (its checkpoints hold the same values twice)
            self.head_cls_list.append(self.add_sublayer(f"head_cls{i}", cls))
            self.head_reg_list.append(self.add_sublayer(f"head_reg{i}", reg))
            if use_align_head:
                self.cls_align.append(DPModule(feat_in_chan, 1, 5, f"{name}.cls_align.{i}", act=act, use_act_in_out=False))

    def forward(self, feats):
        """-> (class scores [B, L, C] in (0, 1], box bin logits [B, L, 4, reg_max + 1], points [L, 2], strides [L, 1])."""
        scores, regs = [], []
        for i, feat in enumerate(feats):
            cls_feat, se_feat = self.conv_feat(feat, i)
            score = F.sigmoid(self.head_cls_list[i](se_feat))
            if self.use_align_head:
                score = paddle.sqrt(score * F.sigmoid(self.cls_align[i](cls_feat)) + EPS)
            scores.append(score.flatten(2).transpose([0, 2, 1]))
            regs.append(self.head_reg_list[i](se_feat).flatten(2).transpose([0, 2, 1]))
        reg = paddle.concat(regs, axis=1).reshape([0, 0, 4, self.reg_max + 1])
        points, strides = anchor_points(feats, self.strides, self.offset)
        return paddle.concat(scores, axis=1), reg, points, strides

    def loss(self, outs, gt_bbox, gt_class, gt_mask):
        """gt_bbox [B, n, 4] x1y1x2y2 in input pixels, gt_class [B, n], gt_mask [B, n] (0 for padding rows)."""
        scores, reg, points, strides = outs
        grid = points / strides
        boxes = distance2bbox(grid, self.distribution_project(reg))  # in strides
        labels, target_boxes, target_scores = self.assigner(
            scores.detach(), (boxes * strides).detach(), points, gt_class, gt_bbox, gt_mask, self.num_classes)
        target_boxes = target_boxes / strides
        onehot = F.one_hot(labels, self.num_classes + 1)[..., :self.num_classes]
        total = target_scores.sum().clip(min=1.0)
        weight = target_scores.max(axis=-1)  # zero off the positives: their box losses drop out
        loss_cls = varifocal_loss(scores, target_scores, onehot, from_logits=False, **self.vfl) / total
        loss_iou = (giou_loss(boxes, target_boxes) * weight).sum() / total
        loss_dfl = (dfl_loss(reg, bbox2distance(grid, target_boxes, self.reg_max)) * weight).sum() / total
        w = self.loss_weight
        return w["class"] * loss_cls + w["iou"] * loss_iou + w["dfl"] * loss_dfl

    def decode(self, outs):
        """-> (boxes [B, L, 4] in input pixels, scores [B, C, L]): the network's output before NMS."""
        scores, reg, points, strides = outs
        return distance2bbox(points, self.distribution_project(reg) * strides), scores.transpose([0, 2, 1])

    def predict(self, boxes, scores, scale_factor):
        """Boxes back to original pixels (scale_factor [B, 2] = resized / original (h, w)), then NMS."""
        sy, sx = scale_factor[:, 0:1], scale_factor[:, 1:2]
        boxes = boxes / paddle.concat([sx, sy, sx, sy], axis=-1).unsqueeze(1)
        return multiclass_nms(boxes, scores, normalized=True, **self.nms_cfg)
