"""Detection metrics: VOC mAP (numpy) and COCO mAP (pycocotools, imported lazily)."""
from ppprune.metrics.coco_map import COCOMetric
from ppprune.metrics.voc_map import VOCMetric, voc_ap, voc_map

__all__ = ["COCOMetric", "VOCMetric", "voc_ap", "voc_map"]
