"""Image classifier = backbone + global average pool + fc (`fc_weights`, `fc_offset`)."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr

from ..config import create
from ..config.checks import need
from ..registry import ARCHITECTURES, BACKBONES


@ARCHITECTURES.register
class Classifier(nn.Layer):
    __shared__ = ["num_classes"]

    def __init__(self, backbone, in_channels, num_classes=10):
        super().__init__()
        need("num_classes", num_classes, int, low=1)
        self.backbone = backbone
        self.fc = nn.Linear(in_channels, num_classes, weight_attr=ParamAttr(name="fc_weights"),
                            bias_attr=ParamAttr(name="fc_offset"))

    @classmethod
    def from_config(cls, cfg, backbone="ResNet", num_classes=10):
        backbone = create(BACKBONES, backbone, cfg)
        return cls(backbone, backbone.out_channels[-1], num_classes)

    def input_specs(self, mode, image_shape):
        specs = [("image", [-1, *image_shape], "float32")]
        return specs if mode == "infer" else specs + [("label", [-1, 1], "int64")]

    def forward(self, inputs, mode="train"):
        feat = F.adaptive_avg_pool2d(self.backbone(inputs["image"])[-1], 1)
        logits = self.fc(paddle.flatten(feat, 1))
        if mode == "infer":
            return {"logits": logits}
        label = inputs["label"]
        out = {"acc": paddle.metric.accuracy(F.softmax(logits), label, k=1)}
        if mode == "train":
            out["loss"] = F.cross_entropy(logits, label)
        return out
