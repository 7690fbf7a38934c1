"""PicoDet = LCNet + LCPAN + PicoHeadV2 (a `Detector`: see models/base.py for each mode's feeds)."""
from ..config import create
from ..registry import ARCHITECTURES, BACKBONES, HEADS, NECKS
from .base import Detector


@ARCHITECTURES.register
class PicoDet(Detector):
    # infer_cfg.yml arch: the registered name, PicoDet, as PaddleDetection writes it
    # boxes go back to the original image by scale_factor (resized / original), as PaddleDetection feeds it
    eval_feeds = ("image", "scale_factor")

    def __init__(self, backbone, neck, head):
        super().__init__()
        self.backbone, self.neck, self.head = backbone, neck, head

    @classmethod
    def from_config(cls, cfg, backbone="LCNet", neck="LCPAN", head="PicoHeadV2"):
        backbone = create(BACKBONES, backbone, cfg, name="backbone")
        neck = create(NECKS, neck, cfg, in_channels=backbone.out_channels, name="neck")
        return cls(backbone, neck, create(HEADS, head, cfg, in_channels=neck.out_channels, name="head"))

    def train_specs(self, image_shape):
        # gt_bbox: x1y1x2y2 in input pixels (no NormalizeBox); gt_score is PadBox's 1/0 real-box mask
        return [("gt_bbox", [-1, -1, 4], "float32"), ("gt_class", [-1, -1], "int32"), ("gt_score", [-1, -1], "float32")]

    def _outs(self, image):
        return self.head(self.neck(self.backbone(image)))

    def loss(self, inputs):
        return self.head.loss(self._outs(inputs["image"]), inputs["gt_bbox"], inputs["gt_class"], inputs["gt_score"])

    def predict(self, inputs):
        boxes, scores = self.head.decode(self._outs(inputs["image"]))
        bbox, bbox_num = self.head.predict(boxes, scores, inputs["scale_factor"])
        return bbox, bbox_num, (boxes, scores)
