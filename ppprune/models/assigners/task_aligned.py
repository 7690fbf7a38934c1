"""Task-aligned assigner (TOOD), as PP-YOLOE uses after its warm-up epochs, written as dense graph ops.

Every step is a matmul, comparison or reduction over fixed-shape tensors (no gather on computed indices,
no data-dependent branch), so one static program serves every batch. Two deliberate differences from
PaddleDetection's loop-style code, both only on ties: the top-k anchors of a box are those whose metric
reaches its k-th largest value (ties at that value are all kept), and anchors claimed by several boxes go
to the box of highest IoU (the same rule), applied whether or not any anchor is claimed twice.
"""
import paddle
import paddle.nn.functional as F

from ..bbox_utils import EPS, pairwise_iou, points_inside


class TaskAlignedAssigner:
    """metric = score(gt class) ** alpha * IoU ** beta; the `topk` anchors of highest metric inside each gt
    box are its positives; soft targets are the metric normalised per box to that box's best IoU."""

    def __init__(self, topk=13, alpha=1.0, beta=6.0):
        self.topk, self.alpha, self.beta = topk, alpha, beta

    def __call__(self, scores, boxes, points, gt_class, gt_bbox, gt_mask, num_classes):
        """scores [B, L, C] (probabilities) and boxes [B, L, 4] predicted (pixels, no gradient needed);
        points [L, 2]; gt_class [B, n] int, gt_bbox [B, n, 4], gt_mask [B, n] (1 real, 0 padding).
        -> (labels [B, L] (num_classes = background), target boxes [B, L, 4], target scores [B, L, C])."""
        onehot_gt = F.one_hot(gt_class.astype("int64"), num_classes)  # [B, n, C]
        ious = pairwise_iou(gt_bbox, boxes)  # [B, n, L]
        gt_scores = paddle.matmul(onehot_gt, scores, transpose_y=True)  # each anchor's score for the gt's class
        metric = gt_scores.pow(self.alpha) * ious.pow(self.beta)
        inside = points_inside(points, gt_bbox) * gt_mask.unsqueeze(-1)
        candidates = metric * inside
        kth = paddle.topk(candidates, self.topk, axis=-1)[0][..., -1:]
        positive = (candidates >= kth).astype("float32") * inside  # [B, n, L]
        # an anchor claimed by several boxes keeps the one it overlaps most
        claimed = positive.sum(axis=1, keepdim=True)
        best = (ious >= ious.max(axis=1, keepdim=True)).astype("float32")
        best = best * (paddle.cumsum(best, axis=1) == 1).astype("float32")  # the first box of equal IoU only
        positive = paddle.where(claimed > 1, best, positive)
        is_fg = positive.sum(axis=1)  # [B, L], 0 or 1
        to_anchor = positive.transpose([0, 2, 1])  # [B, L, n]: one-hot row per positive anchor
        labels = paddle.matmul(to_anchor, gt_class.astype("float32").unsqueeze(-1)).squeeze(-1)
        labels = paddle.where(is_fg > 0, labels.round().astype("int64"), paddle.full_like(labels, num_classes, "int64"))
        target_boxes = paddle.matmul(to_anchor, gt_bbox)
        metric = metric * positive
        norm = metric / (metric.max(axis=-1, keepdim=True) + EPS) * (ious * positive).max(axis=-1, keepdim=True)
        target_scores = paddle.matmul(to_anchor, onehot_gt) * norm.max(axis=1).unsqueeze(-1)
        return labels, target_boxes, target_scores
