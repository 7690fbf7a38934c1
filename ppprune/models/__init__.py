"""Models as `paddle.nn.Layer`s; importing this package registers them (ARCHITECTURES, BACKBONES, NECKS, HEADS)."""
from .backbones.cspresnet import CSPResNet
from .backbones.lcnet import LCNet
from .backbones.mobilenet_v1 import MobileNetV1
from .backbones.resnet import ResNet
from .classifier import Classifier
from .heads.pico_head import PicoFeat, PicoHeadV2
from .heads.ppyoloe_head import PPYOLOEHead
from .heads.yolo_head import YOLOv3Head
from .necks.custom_pan import CustomCSPPAN
from .necks.lc_pan import LCPAN
from .picodet import PicoDet
from .ppyoloe import PPYOLOE
from .yolov3 import YOLOv3

__all__ = ["CSPResNet", "Classifier", "CustomCSPPAN", "LCNet", "LCPAN", "MobileNetV1", "PPYOLOE", "PPYOLOEHead", "PicoDet",
           "PicoFeat", "PicoHeadV2", "ResNet", "YOLOv3", "YOLOv3Head"]
