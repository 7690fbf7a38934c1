"""Adapters from eval-program outputs to metrics: `reset()`, `update(batch, outputs)`, `accumulate()`.

`accumulate()` returns a dict; `key` names the entry that decides `best_model`.
"""
import numpy as np

from ..config.loader import ConfigError
from ..registry import EVALUATORS


@EVALUATORS.register(name="VOC")
class VOCEvaluator:
    key = "mAP"

    def __init__(self, dataset, overlap_thresh=0.5, map_type="11point", evaluate_difficult=False):
        from ..metrics.voc_map import VOCMetric

        self.dataset = dataset
        self.metric = VOCMetric(dataset.num_classes, overlap_thresh, map_type, evaluate_difficult,
                                class_names=dataset.class_names)

    def reset(self):
        self.metric.reset()

    def update(self, batch, outputs):
        self.metric.update(self.dataset.records_for(batch["im_id"]), outputs["bbox"], outputs["bbox_num"])

    def accumulate(self):
        return {"mAP": self.metric.accumulate(), "per_class": self.metric.summary()}


@EVALUATORS.register(name="accuracy")
class AccuracyEvaluator:
    key = "acc"

    def __init__(self, dataset=None):
        self.reset()

    def reset(self):
        self.correct, self.total = 0.0, 0

    def update(self, batch, outputs):
        n = len(batch["image"])
        self.correct += float(np.asarray(outputs["acc"]).reshape(-1)[0]) * n
        self.total += n

    def accumulate(self):
        return {"acc": self.correct / max(self.total, 1)}


@EVALUATORS.register(name="COCO")
class COCOEvaluator:
    """COCO mAP@[.5:.95] (pycocotools) for a `COCODataSet`; AP50 and the rest under `stats`."""

    key = "mAP"

    def __init__(self, dataset):
        from ..metrics.coco_map import COCOMetric

        self.dataset = dataset
        self.metric = COCOMetric(dataset.anno_path, dataset.clsid2catid)

    def reset(self):
        self.metric.reset()

    def update(self, batch, outputs):
        self.metric.update(self.dataset.records_for(batch["im_id"]), outputs["bbox"], outputs["bbox_num"])

    def accumulate(self):
        return {"mAP": self.metric.accumulate(), "stats": self.metric.stats, "per_class": self.metric.summary_text}


def build_evaluator(cfg, dataset):
    """`metric: VOC` (kwargs from an optional `VOCMetric` section), `metric: COCO` or `metric: accuracy`."""
    kind = cfg.get("metric", "VOC")
    try:
        evaluator = EVALUATORS.get(kind)
    except ConfigError as e:
        raise ConfigError(f"config key 'metric': {e}") from None
    return evaluator(dataset, **(cfg.get("VOCMetric") or {})) if kind == "VOC" else evaluator(dataset)
