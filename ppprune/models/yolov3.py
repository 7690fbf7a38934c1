"""YOLOv3 = backbone + YOLOv3Head, with the feeds and outputs of each program mode."""
import paddle.nn as nn

from ..config import create
from ..registry import ARCHITECTURES, BACKBONES, HEADS


@ARCHITECTURES.register
class YOLOv3(nn.Layer):
    network_feeds = ("image",)  # the head's raw maps need only the image; post-processing reads im_shape

    def __init__(self, backbone, yolo_head):
        super().__init__()
        self.backbone, self.yolo_head = backbone, yolo_head

    @classmethod
    def from_config(cls, cfg, backbone="MobileNetV1", yolo_head="YOLOv3Head"):
        backbone = create(BACKBONES, backbone, cfg)
        return cls(backbone, create(HEADS, yolo_head, cfg, in_channels=backbone.out_channels))

    def input_specs(self, mode, image_shape):
        """(name, shape, dtype) of each feed; -1 marks a dimension that varies per batch."""
        specs = [("image", [-1, *image_shape], "float32")]
        if mode == "train":
            # box count = the reader's PadBox num_max_boxes; left open so the config says it once
            specs += [("gt_bbox", [-1, -1, 4], "float32"), ("gt_class", [-1, -1], "int32"),
                      ("gt_score", [-1, -1], "float32")]
        else:
            specs += [("im_shape", [-1, 2], "int32")]
        return specs

    def forward(self, inputs, mode="train"):
        outs = self.yolo_head(self.backbone(inputs["image"]))
        if mode == "train":
            return {"loss": self.yolo_head.loss(outs, inputs["gt_bbox"], inputs["gt_class"], inputs["gt_score"])}
        bbox, bbox_num = self.yolo_head.predict(outs, inputs["im_shape"])
        return {"bbox": bbox, "bbox_num": bbox_num, "network": outs}
