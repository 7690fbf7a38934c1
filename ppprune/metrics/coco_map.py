"""COCO box mAP through pycocotools (imported only when a COCOMetric is made)."""
import contextlib
import io

import numpy as np

from ppprune.metrics.voc_map import split_detections

STAT_NAMES = ("mAP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
              "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large")


def _pycocotools():
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise ImportError("COCO evaluation needs pycocotools: `pip install pycocotools` "
                          "(or `pip install ppprune[coco]`)") from None
    return COCO, COCOeval


class COCOMetric:
    """mAP@[.5:.95] (returned by `accumulate`) plus `stats` (AP50, AP75, ... as in COCOeval).

    `update(records, bboxes, bbox_nums=None)` takes the same inputs as `VOCMetric.update`; the
    records' `im_id` are the COCO image ids and class ids map back through `clsid2catid`.
    """

    def __init__(self, anno_path, clsid2catid):
        COCO, self._COCOeval = _pycocotools()
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress chatter
            self.coco_gt = COCO(anno_path)
        self.clsid2catid = {int(k): int(v) for k, v in clsid2catid.items()}
        self.reset()

    def reset(self):
        self.results, self.stats, self.summary_text = [], {}, ""

    def update(self, records, bboxes, bbox_nums=None):
        for rec, dets in zip(records, split_detections(bboxes, bbox_nums, len(records))):
            for cls, score, x1, y1, x2, y2 in dets:
                self.results.append({"image_id": int(rec["im_id"]), "category_id": self.clsid2catid[int(cls)],
                                     "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                                     "score": float(score)})

    def accumulate(self):
        if not self.results:  # COCO.loadRes cannot take an empty list; nothing detected scores 0
            self.stats = dict.fromkeys(STAT_NAMES, 0.0)
            return 0.0
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            coco_dt = self.coco_gt.loadRes(self.results)
            ev = self._COCOeval(self.coco_gt, coco_dt, "bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        self.summary_text = out.getvalue()
        # COCOeval reports -1 where a quantity is undefined (e.g. no large objects).
        self.stats = {name: float(v) for name, v in zip(STAT_NAMES, np.asarray(ev.stats))}
        return max(self.stats["mAP"], 0.0)
