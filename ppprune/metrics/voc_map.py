"""Pascal VOC mean average precision.

Boxes are continuous coordinates (see `ppprune.data.voc`), so IoU uses plain widths (no "+1").
A detection is a true positive if its best-overlapping ground truth of the same class has
IoU > `overlap_thresh` and was not matched before (by a higher-scoring detection). Difficult
ground truth is neither a positive to find nor a false positive when hit: detections matching it
are dropped (standard VOC), unless `evaluate_difficult`. Classes without positive ground truth
have AP NaN and are left out of the mean.
"""
import numpy as np

from ppprune.data.transforms import box_iou


def voc_ap(recall, precision, map_type="11point"):
    """AP from a precision/recall curve (detections in descending score order)."""
    recall, precision = np.asarray(recall, np.float64), np.asarray(precision, np.float64)
    if map_type == "11point":
        return float(np.mean([precision[recall >= t].max(initial=0.0) for t in np.linspace(0, 1, 11)]))
    if map_type == "integral":
        # Area under the precision envelope (precision made non-increasing from the right).
        mrec = np.concatenate([[0.0], recall, [1.0]])
        mpre = np.maximum.accumulate(np.concatenate([[0.0], precision, [0.0]])[::-1])[::-1]
        steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
        return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))
    raise ValueError(f"map_type must be '11point' or 'integral', got {map_type!r}")


def split_detections(bboxes, bbox_nums, num_images):
    """Per-image [K, 6] arrays from a flat [sum K, 6] array plus counts, or from a list of arrays."""
    if bbox_nums is None:
        per_image = [np.asarray(b, np.float64).reshape(-1, 6) for b in bboxes]
    else:
        bboxes = np.asarray(bboxes, np.float64).reshape(-1, 6)
        bbox_nums = np.asarray(bbox_nums, np.int64).reshape(-1)
        if bbox_nums.sum() > len(bboxes):
            raise ValueError(f"bbox_nums add up to {bbox_nums.sum()} but there are only {len(bboxes)} boxes")
        per_image = np.split(bboxes[:bbox_nums.sum()], np.cumsum(bbox_nums)[:-1])
    if len(per_image) != num_images:
        raise ValueError(f"got detections for {len(per_image)} images but {num_images} records")
    # multiclass_nms marks "nothing detected" with a class id of -1.
    return [d[d[:, 0] >= 0] for d in per_image]


class VOCMetric:
    """Accumulates detections batch by batch; `accumulate()` returns mAP, `class_aps` per class.

    `update(records, bboxes, bbox_nums=None)`: `records` are the dataset records of the batch's
    images (`dataset.records_for(batch['im_id'])`), `bboxes` rows are
    (class_id, score, x1, y1, x2, y2) in original-image pixels — `multiclass_nms3` output with
    its `bbox_num` counts — or a list of per-image [K, 6] arrays with `bbox_nums=None`.
    """

    def __init__(self, class_num, overlap_thresh=0.5, map_type="11point", evaluate_difficult=False, class_names=None):
        voc_ap([], [], map_type)  # reject a bad map_type now, not after a whole evaluation
        self.class_num, self.overlap_thresh, self.map_type = class_num, overlap_thresh, map_type
        self.evaluate_difficult = evaluate_difficult
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(class_num)]
        self.reset()

    def reset(self):
        self.num_pos = np.zeros(self.class_num, np.int64)
        self._scores = [[] for _ in range(self.class_num)]
        self._tp = [[] for _ in range(self.class_num)]
        self.class_aps = np.full(self.class_num, np.nan)

    def update(self, records, bboxes, bbox_nums=None):
        for rec, dets in zip(records, split_detections(bboxes, bbox_nums, len(records))):
            self._update_image(rec, dets)

    def _update_image(self, rec, dets):
        gt_boxes, gt_class = rec["gt_bbox"], rec["gt_class"]
        ignore = np.zeros(len(gt_class), bool) if self.evaluate_difficult else rec["difficult"].astype(bool)
        self.num_pos += np.bincount(gt_class[~ignore], minlength=self.class_num)[:self.class_num]
        labels = dets[:, 0].astype(np.int64)
        if len(labels) and labels.max() >= self.class_num:
            raise ValueError(f"detection class id {labels.max()} is out of range for class_num={self.class_num}")
        for c in np.unique(labels):
            d = dets[labels == c]
            d = d[np.argsort(-d[:, 1], kind="stable")]
            in_class = gt_class == c
            iou = box_iou(d[:, 2:6], gt_boxes[in_class])
            c_ignore = ignore[in_class]
            taken = np.zeros(len(c_ignore), bool)
            for k in range(len(d)):
                j = int(np.argmax(iou[k])) if iou.shape[1] else -1
                if j >= 0 and iou[k, j] > self.overlap_thresh:
                    if c_ignore[j]:
                        continue  # hit on difficult ground truth: neither TP nor FP
                    tp = not taken[j]
                    taken[j] = True
                else:
                    tp = False
                self._scores[c].append(d[k, 1])
                self._tp[c].append(tp)

    def accumulate(self):
        """mAP over classes with positive ground truth (0.0 if there are none)."""
        for c in range(self.class_num):
            if self.num_pos[c] == 0:
                self.class_aps[c] = np.nan
                continue
            order = np.argsort(-np.asarray(self._scores[c], np.float64), kind="stable")
            tp = np.asarray(self._tp[c], np.float64)[order]
            tp_cum, fp_cum = np.cumsum(tp), np.cumsum(1 - tp)
            recall = tp_cum / self.num_pos[c]
            precision = tp_cum / np.maximum(tp_cum + fp_cum, np.finfo(np.float64).eps)
            self.class_aps[c] = voc_ap(recall, precision, self.map_type)
        valid = ~np.isnan(self.class_aps)
        return float(self.class_aps[valid].mean()) if valid.any() else 0.0

    def summary(self):
        """Per-class AP table (after `accumulate`)."""
        lines = [f"{'class':<16}{'gt':>6}{'AP':>8}"]
        for name, n, ap in zip(self.class_names, self.num_pos, self.class_aps):
            lines.append(f"{name:<16}{n:>6}{'-' if np.isnan(ap) else f'{ap:.4f}':>8}")
        return "\n".join(lines)


def voc_map(detections, records, class_num, overlap_thresh=0.5, map_type="11point", evaluate_difficult=False):
    """mAP of per-image detections ([K, 6] arrays aligned with `records`), in one call."""
    metric = VOCMetric(class_num, overlap_thresh, map_type, evaluate_difficult)
    metric.update(records, detections)
    return metric.accumulate()
