"""Box arithmetic on (x1, y1, x2, y2) tensors, shared by the assigner and the losses (graph ops only)."""
import paddle

EPS = 1e-9


def _area(box):
    return (box[..., 2] - box[..., 0]).clip(min=0) * (box[..., 3] - box[..., 1]).clip(min=0)


def _wh_area(wh):
    # w * h by hand: prod's gradient divides by each factor, NaN where a side is 0
    return wh[..., 0] * wh[..., 1]


def pairwise_iou(a, b):
    """IoU of every box of `a` [B, n, 4] with every box of `b` [B, L, 4] -> [B, n, L]."""
    a, b = a.unsqueeze(2), b.unsqueeze(1)
    lt = paddle.maximum(a[..., :2], b[..., :2])
    rb = paddle.minimum(a[..., 2:], b[..., 2:])
    overlap = _wh_area((rb - lt).clip(min=0))
    return overlap / (_area(a) + _area(b) - overlap + EPS)


def giou_loss(pred, target):
    """1 - GIoU of matching boxes [..., 4] -> [...]; finite for empty targets (their weight is 0)."""
    lt = paddle.maximum(pred[..., :2], target[..., :2])
    rb = paddle.minimum(pred[..., 2:], target[..., 2:])
    overlap = _wh_area((rb - lt).clip(min=0))
    union = _area(pred) + _area(target) - overlap + EPS
    enclose = (paddle.maximum(pred[..., 2:], target[..., 2:]) - paddle.minimum(pred[..., :2], target[..., :2]))
    enclose = _wh_area(enclose.clip(min=0)) + EPS
    return 1.0 - (overlap / union - (enclose - union) / enclose)


def distance2bbox(points, distance):
    """Anchor points [..., L, 2] and (left, top, right, bottom) distances [B, L, 4] -> boxes [B, L, 4]."""
    lt, rb = paddle.split(distance, 2, axis=-1)
    return paddle.concat([points - lt, points + rb], axis=-1)


def bbox2distance(points, bbox, max_dist):
    """Boxes [B, L, 4] as distances from their anchor points, clipped below `max_dist` (DFL's last bin)."""
    x1y1, x2y2 = paddle.split(bbox, 2, axis=-1)
    return paddle.concat([points - x1y1, x2y2 - points], axis=-1).clip(0, max_dist - 0.01)


def points_inside(points, boxes):
    """[B, n, L] float mask: anchor point l [L, 2] lies strictly inside gt box n [B, n, 4]."""
    x, y = points[:, 0].reshape([1, 1, -1]), points[:, 1].reshape([1, 1, -1])
    x1, y1, x2, y2 = (boxes[..., i:i + 1] for i in range(4))
    ltrb = paddle.stack([x - x1, y - y1, x2 - x, y2 - y], axis=-1)
    return (ltrb.min(axis=-1) > EPS).astype("float32")
