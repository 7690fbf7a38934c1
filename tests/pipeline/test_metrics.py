"""VOC and COCO mAP against values worked out by hand on tiny cases."""
import json

import numpy as np
import pytest

from ppprune.metrics import VOCMetric, voc_ap, voc_map


def rec(boxes, classes, difficult=None, im_id=0):
    n = len(classes)
    return {"im_id": im_id, "gt_bbox": np.array(boxes, np.float32).reshape(-1, 4),
            "gt_class": np.array(classes, np.int32),
            "difficult": np.zeros(n, np.int32) if difficult is None else np.array(difficult, np.int32)}


def det(*rows):
    """rows of (class, score, x1, y1, x2, y2)."""
    return np.array(rows, np.float64).reshape(-1, 6)


G1, G2, FAR = [0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]


# Image A: two GT, image B: one GT (all class 0).
# Ranked detections: .9 hits G1 (TP), .8 misses in B (FP), .7 hits G2 (TP), .6 duplicates G1 (FP);
# B's GT is never found. recall 1/3 1/3 2/3 2/3, precision 1 1/2 2/3 1/2.
def mixed_case():
    records = [rec([G1, G2], [0, 0], im_id=0), rec([G1], [0], im_id=1)]
    dets = [det((0, .9, *G1), (0, .7, *G2), (0, .6, *G1)), det((0, .8, *FAR))]
    return records, dets


def test_perfect_detections_score_one():
    records = [rec([G1, G2], [0, 1]), rec([FAR], [1], im_id=1)]
    dets = [det((0, .9, *G1), (1, .8, *G2)), det((1, .7, *FAR))]
    for map_type in ("11point", "integral"):
        assert voc_map(dets, records, class_num=2, map_type=map_type) == pytest.approx(1.0)


def test_mixed_tp_fp_11point_by_hand():
    # thresholds 0,.1,.2,.3 -> max precision 1; .4,.5,.6 -> 2/3; .7..1 -> 0 (recall never reaches).
    records, dets = mixed_case()
    assert voc_map(dets, records, 1, map_type="11point") == pytest.approx((4 * 1 + 3 * 2 / 3) / 11)


def test_mixed_tp_fp_integral_by_hand():
    # envelope: precision 1 up to recall 1/3, 2/3 up to recall 2/3 -> 1/3 + 2/9.
    records, dets = mixed_case()
    assert voc_map(dets, records, 1, map_type="integral") == pytest.approx(1 / 3 + 2 / 9)


def test_difficult_ground_truth_is_ignored_unless_asked():
    records, dets = mixed_case()
    hard = [30, 30, 40, 40]
    records[1] = rec([G1, hard], [0, 0], difficult=[0, 1], im_id=1)
    dets[1] = det((0, .8, *FAR), (0, .95, *hard))
    # Ignored: the hit on the difficult box is neither TP nor FP, and it is not a positive.
    assert voc_map(dets, records, 1, map_type="integral") == pytest.approx(1 / 3 + 2 / 9)
    # Evaluated: 4 positives; ranked TP TP FP TP FP -> recall .25 .5 .5 .75 .75,
    # envelope 1 up to .5 then .75 up to .75 -> .25 + .25 + .1875.
    got = voc_map(dets, records, 1, map_type="integral", evaluate_difficult=True)
    assert got == pytest.approx(0.6875)


def test_missed_difficult_box_costs_nothing():
    records = [rec([G1, G2], [0, 0], difficult=[0, 1])]
    assert voc_map([det((0, .9, *G1))], records, 1) == pytest.approx(1.0)


def test_per_class_average_skips_classes_without_ground_truth():
    # class 0 perfect (AP 1); class 1 finds 1 of 2 with precision 1 (integral AP .5);
    # class 2 has only a false positive and no GT: AP undefined, left out of the mean.
    records = [rec([G1, G2, FAR], [0, 1, 1])]
    m = VOCMetric(3, map_type="integral", class_names=["a", "b", "c"])
    m.update(records, [det((0, .9, *G1), (1, .8, *G2), (2, .7, *FAR))])
    assert m.accumulate() == pytest.approx(0.75)
    np.testing.assert_allclose(m.class_aps[:2], [1.0, 0.5])
    assert np.isnan(m.class_aps[2])
    np.testing.assert_array_equal(m.num_pos, [1, 2, 0])
    table = m.summary()
    assert "b" in table and "0.5000" in table
    m11 = VOCMetric(3, map_type="11point")
    m11.update(records, [det((0, .9, *G1), (1, .8, *G2), (2, .7, *FAR))])
    assert m11.accumulate() == pytest.approx((1 + 6 / 11) / 2)  # recall .5 covers thresholds 0...5


def test_iou_threshold_and_class_must_match():
    records = [rec([[0, 0, 10, 10]], [0])]
    shifted = det((0, .9, 0, 0, 10, 6))  # IoU .6
    assert voc_map([shifted], records, 2) == pytest.approx(1.0)
    assert voc_map([shifted], records, 2, overlap_thresh=0.7) == pytest.approx(0.0)
    assert voc_map([det((1, .9, 0, 0, 10, 10))], records, 2) == pytest.approx(0.0)


def test_flat_nms_output_with_counts_and_empty_marker():
    records, dets = mixed_case()
    flat = np.concatenate(dets + [det((-1, 0, 0, 0, 0, 0))])  # trailing "no detection" row of image 3
    records.append(rec([], [], im_id=2))
    m = VOCMetric(1, map_type="integral")
    m.update(records[:2], flat[:4], np.array([3, 1]))
    m.update(records[2:], flat[4:], np.array([1]))
    assert m.accumulate() == pytest.approx(1 / 3 + 2 / 9)
    with pytest.raises(ValueError, match="2 records"):
        m.update(records[:2], flat[:4], np.array([4]))
    with pytest.raises(ValueError, match="out of range"):
        m.update(records[:1], [det((3, .5, *G1))])
    m.reset()
    assert m.accumulate() == 0.0


def test_voc_ap_rejects_unknown_type():
    with pytest.raises(ValueError, match="integral"):
        VOCMetric(2, map_type="area")
    assert voc_ap([0.5, 1.0], [1.0, 0.5], "integral") == pytest.approx(0.5 + 0.25)


def test_voc_metric_on_dataset_records(tmp_path):
    from ppprune.data import VOCDataSet, make_demo_voc

    make_demo_voc(str(tmp_path / "voc"), num_train=0, num_val=6, image_size=96)
    ds = VOCDataSet(str(tmp_path / "voc"), "val.txt")
    m = VOCMetric(ds.num_classes, class_names=ds.class_names)
    for ids in ([0, 1, 2], [3, 4, 5]):
        recs = ds.records_for(np.array(ids))
        # Oracle detections from the non-difficult ground truth.
        m.update(recs, [np.concatenate([r["gt_class"][:, None], np.ones((len(r["gt_class"]), 1)), r["gt_bbox"]],
                                       1)[r["difficult"] == 0] for r in recs])
    assert m.accumulate() == pytest.approx(1.0)


# ---------------------------------------------------------------- COCO

def tiny_coco(path):
    """Two images; categories 3 and 7; GT boxes of area 10000 and 2500 (COCO xywh)."""
    boxes = [(11, 3, [0, 0, 100, 100]), (22, 7, [100, 100, 50, 50])]
    coco = {"images": [{"id": i, "file_name": f"{n}.jpg", "width": 200, "height": 200} for i, n in ((11, "a"), (22, "b"))],
            "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
            "annotations": [{"id": k + 1, "image_id": i, "category_id": c, "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
                            for k, (i, c, b) in enumerate(boxes)]}
    path.write_text(json.dumps(coco))
    return str(path)


def test_coco_metric_by_hand(tmp_path):
    pytest.importorskip("pycocotools")
    from ppprune.metrics import COCOMetric

    anno = tiny_coco(tmp_path / "anno.json")
    clsid2catid = {0: 3, 1: 7}
    records = [{"im_id": 11}, {"im_id": 22}]
    m = COCOMetric(anno, clsid2catid)
    m.update(records, [det((0, .9, 0, 0, 100, 100)), det((1, .8, 100, 100, 150, 150))])
    assert m.accumulate() == pytest.approx(1.0)
    assert m.stats["AP50"] == pytest.approx(1.0)
    # Class 0 box at IoU .62 is a TP at thresholds .50, .55, .60 only (3 of 10); class 1 stays perfect.
    m.reset()
    m.update(records, np.concatenate([det((0, .9, 0, 0, 100, 62)), det((1, .8, 100, 100, 150, 150))]), [1, 1])
    assert m.accumulate() == pytest.approx((0.3 + 1.0) / 2, abs=1e-6)
    assert m.stats["AP50"] == pytest.approx(1.0) and m.stats["AP75"] == pytest.approx(0.5)
    assert "Average Precision" in m.summary_text
    m.reset()
    assert m.accumulate() == 0.0


@pytest.fixture
def coco_set(tmp_path):
    """A two-image COCO dataset on disk (tiny_coco's annotations)."""
    pytest.importorskip("pycocotools")
    from PIL import Image

    from ppprune.data import COCODataSet

    (tmp_path / "img").mkdir()
    for name in ("a.jpg", "b.jpg"):
        Image.new("RGB", (200, 200)).save(tmp_path / "img" / name)
    tiny_coco(tmp_path / "anno.json")
    return COCODataSet(str(tmp_path), "img", "anno.json")


def test_coco_metric_with_coco_dataset(coco_set):
    from ppprune.metrics import COCOMetric

    ds = coco_set
    m = COCOMetric(ds.anno_path, ds.clsid2catid)
    recs = ds.records_for([22, 11])
    m.update(recs, [np.concatenate([r["gt_class"][:, None], np.ones((1, 1)), r["gt_bbox"]], 1) for r in recs])
    assert m.accumulate() == pytest.approx(1.0)


def devkit_ap(dets, records, cls, thresh=0.5):
    """Direct transcription of the VOC devkit loop: all detections of a class in one global score order."""
    gts = {i: (r["gt_bbox"][r["gt_class"] == cls], r["difficult"][r["gt_class"] == cls].astype(bool))
           for i, r in enumerate(records)}
    used = {i: np.zeros(len(g[0]), bool) for i, g in gts.items()}
    npos = sum(int((~d).sum()) for _, d in gts.values())
    flat = sorted(((row[1], i, row[2:]) for i, d in enumerate(dets) for row in d if row[0] == cls),
                  key=lambda t: -t[0])
    tp, fp = [], []
    for _, i, box in flat:
        g, diff = gts[i]
        ov = np.array([max(0, min(box[2], b[2]) - max(box[0], b[0])) * max(0, min(box[3], b[3]) - max(box[1], b[1]))
                       for b in g])
        if len(g):
            union = (box[2] - box[0]) * (box[3] - box[1]) + (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1]) - ov
            ov = ov / union
        j = int(np.argmax(ov)) if len(g) else -1
        if j >= 0 and ov[j] > thresh:
            if diff[j]:
                continue
            tp.append(not used[i][j]), fp.append(used[i][j])
            used[i][j] = True
        else:
            tp.append(False), fp.append(True)
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    return voc_ap(tp / npos, tp / np.maximum(tp + fp, 1e-12), "integral") if npos else np.nan


def test_matches_devkit_procedure_on_random_cases():
    rng = np.random.default_rng(0)
    for _ in range(20):
        records, dets = [], []
        for i in range(4):
            n = int(rng.integers(0, 5))
            xy = rng.uniform(0, 60, (n, 2))
            boxes = np.concatenate([xy, xy + rng.uniform(5, 30, (n, 2))], 1)
            classes = rng.integers(0, 2, n)
            records.append(rec(boxes, classes, rng.random(n) < 0.2, im_id=i))
            # Jittered copies of the GT (mostly with its class, duplicates allowed) plus random boxes.
            k = int(rng.integers(0, 7))
            pick = rng.integers(0, n + 3, k)
            src = np.concatenate([boxes, rng.uniform(0, 80, (3, 4))])[pick]
            src = np.sort(src.reshape(-1, 2, 2), axis=1).reshape(-1, 4) + rng.normal(0, 2, (k, 4))
            from_gt = (pick < n) & (rng.random(k) < 0.8)
            cls = np.where(from_gt, np.append(classes, [0, 0, 0])[pick], rng.integers(0, 2, k))
            dets.append(np.concatenate([cls[:, None], rng.random((k, 1)), src], 1))
        m = VOCMetric(2, map_type="integral")
        m.update(records, dets)
        m.accumulate()
        np.testing.assert_allclose(m.class_aps, [devkit_ap(dets, records, c) for c in range(2)])


def test_coco_evaluator_from_config(coco_set):
    """`metric: COCO` in a config gives the evaluator the trainer and tools drive with eval batches."""
    from ppprune.engine.evaluators import build_evaluator

    ds = coco_set
    evaluator = build_evaluator({"metric": "COCO"}, ds)
    evaluator.reset()
    recs = ds.records_for([22, 11])
    dets = np.concatenate([np.concatenate([r["gt_class"][:, None], np.ones((len(r["gt_class"]), 1)), r["gt_bbox"]], 1)
                           for r in recs]).astype("float32")
    evaluator.update({"im_id": np.array([22, 11])}, {"bbox": dets, "bbox_num": np.array([len(r["gt_class"]) for r in recs])})
    result = evaluator.accumulate()
    assert result[evaluator.key] == pytest.approx(1.0) and result["stats"]
