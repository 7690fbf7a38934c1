"""Detection/classification data: readers, transforms, batching, demo data.

Importing this package registers the dataset and transform classes by name.
"""
from ppprune.data.coco import COCODataSet
from ppprune.data.demo import ensure_demo_voc, make_demo_voc
from ppprune.data.fashion_mnist import FashionMNIST, load_fashion_mnist
from ppprune.data.loader import build_dataloader
from ppprune.data.transforms import Compose, build_transforms
from ppprune.data.voc import VOCDataSet

__all__ = [
    "COCODataSet", "Compose", "FashionMNIST", "VOCDataSet", "build_dataloader", "build_transforms",
    "ensure_demo_voc", "load_fashion_mnist", "make_demo_voc",
]
