"""The boxes in an exported detector's outputs: `bbox` then `bbox_num`, as `models.base.Detector` states
(its eval outputs, in that order, are what export saves)."""


def detections(outputs, num_images=1):
    """Per-image [K, 6] arrays of (class, score, x1, y1, x2, y2) in the original image's pixels, from a
    predictor's outputs; NMS's "nothing detected" rows are dropped."""
    from ..metrics.voc_map import split_detections

    bbox, bbox_num = outputs[:2]
    return split_detections(bbox, bbox_num, num_images)
