"""Models as `paddle.nn.Layer`s; importing this package registers them (ARCHITECTURES, BACKBONES, HEADS)."""
from .backbones.mobilenet_v1 import MobileNetV1
from .backbones.resnet import ResNet
from .classifier import Classifier
from .heads.yolo_head import YOLOv3Head
from .yolov3 import YOLOv3

__all__ = ["Classifier", "MobileNetV1", "ResNet", "YOLOv3", "YOLOv3Head"]
