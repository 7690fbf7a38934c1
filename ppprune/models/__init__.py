"""Models as `paddle.nn.Layer`s; importing this package registers them (ARCHITECTURES, BACKBONES, NECKS, HEADS)."""
from .backbones.cspresnet import CSPResNet
from .backbones.mobilenet_v1 import MobileNetV1
from .backbones.resnet import ResNet
from .classifier import Classifier
from .heads.ppyoloe_head import PPYOLOEHead
from .heads.yolo_head import YOLOv3Head
from .necks.custom_pan import CustomCSPPAN
from .ppyoloe import PPYOLOE
from .yolov3 import YOLOv3

__all__ = ["CSPResNet", "Classifier", "CustomCSPPAN", "MobileNetV1", "PPYOLOE", "PPYOLOEHead", "ResNet", "YOLOv3",
           "YOLOv3Head"]
