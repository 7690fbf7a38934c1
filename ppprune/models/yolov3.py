"""YOLOv3 = backbone + YOLOv3Head (a `Detector`: see models/base.py for what each program mode feeds and returns)."""
from ..config import create
from ..registry import ARCHITECTURES, BACKBONES, HEADS
from .base import Detector


@ARCHITECTURES.register
class YOLOv3(Detector):
    deploy_arch = "YOLO"

    def __init__(self, backbone, yolo_head):
        super().__init__()
        self.backbone, self.yolo_head = backbone, yolo_head

    @classmethod
    def from_config(cls, cfg, backbone="MobileNetV1", yolo_head="YOLOv3Head"):
        backbone = create(BACKBONES, backbone, cfg)
        return cls(backbone, create(HEADS, yolo_head, cfg, in_channels=backbone.out_channels))

    def train_specs(self, image_shape):
        # box count = the reader's PadBox num_max_boxes; left open so the config says it once
        return [("gt_bbox", [-1, -1, 4], "float32"), ("gt_class", [-1, -1], "int32"), ("gt_score", [-1, -1], "float32")]

    def loss(self, inputs):
        outs = self.yolo_head(self.backbone(inputs["image"]))
        return self.yolo_head.loss(outs, inputs["gt_bbox"], inputs["gt_class"], inputs["gt_score"])

    def predict(self, inputs):
        outs = self.yolo_head(self.backbone(inputs["image"]))
        bbox, bbox_num = self.yolo_head.predict(outs, inputs["im_shape"])  # im_shape: boxes in original pixels
        return bbox, bbox_num, outs
