"""Readers, transforms, loader, demo generator and Fashion-MNIST reader, on real (small) data."""
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from ppprune.data import (COCODataSet, VOCDataSet, build_dataloader, build_transforms, ensure_demo_voc,
                          load_fashion_mnist, make_demo_voc)
from ppprune.data import demo
from ppprune.data.fashion_mnist import FashionMNIST, fashion_mnist_available
from ppprune.data.transforms import (BatchRandomResize, BboxXYXY2XYWH, Compose, NormalizeBox, NormalizeImage,
                                     PadBox, Permute, RandomCrop, RandomDistort, RandomExpand, RandomFlip, Resize,
                                     seeded)
from tests.helpers import ROOT

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
HAVE_FMNIST = fashion_mnist_available()


# ---------------------------------------------------------------- VOC reader

@pytest.fixture
def voc_tiny(tmp_path):
    root = tmp_path / "voc_tiny"
    shutil.copytree(os.path.join(FIXTURES, "voc_tiny"), root)
    (root / "JPEGImages").mkdir()
    Image.new("RGB", (64, 48), (10, 20, 30)).save(root / "JPEGImages" / "img1.jpg")
    Image.new("RGB", (40, 30), (200, 100, 0)).save(root / "JPEGImages" / "img2.jpg")
    return root


def test_voc_records_keep_difficult_and_convert_to_continuous_coords(voc_tiny):
    ds = VOCDataSet(str(voc_tiny), "train.txt")
    assert ds.class_names == ["cat", "dog", "person"] and ds.num_classes == 3
    assert len(ds) == 2
    r1, r2 = ds.records
    # 1-based inclusive xmin=11..xmax=30 covers columns 10..29 -> continuous [10, 30).
    np.testing.assert_array_equal(r1["gt_bbox"], [[10, 5, 30, 25], [40, 30, 50, 40]])
    np.testing.assert_array_equal(r1["gt_class"], [0, 1])
    np.testing.assert_array_equal(r1["difficult"], [0, 1])
    assert (r1["h"], r1["w"], r1["im_id"]) == (48, 64, 0)
    assert (r2["h"], r2["w"], r2["im_id"]) == (30, 40, 1)  # size read from the image
    assert r1["gt_bbox"].dtype == np.float32 and r1["gt_class"].dtype == np.int32
    assert ds.records_for(np.array([1, 0]))[0] is r2


def test_voc_sample_and_use_difficult(voc_tiny):
    s = VOCDataSet(str(voc_tiny), "train.txt", use_difficult=True)[0]
    assert s["image"].dtype == np.uint8 and s["image"].shape == (48, 64, 3)
    np.testing.assert_array_equal(s["im_shape"], [48, 64])
    assert s["im_shape"].dtype == np.int32 and s["im_id"] == 0
    assert len(s["gt_bbox"]) == 2
    ds = VOCDataSet(str(voc_tiny), "train.txt", use_difficult=False)
    s = ds[0]
    np.testing.assert_array_equal(s["gt_bbox"], [[10, 5, 30, 25]])
    np.testing.assert_array_equal(s["difficult"], [0])
    assert len(ds.records[0]["gt_bbox"]) == 2  # the metric still sees the difficult box
    s["gt_bbox"][0, 0] = -1  # samples are copies: records must not change
    assert ds.records[0]["gt_bbox"][0, 0] == 10


def test_voc_transforms_from_config(voc_tiny):
    transforms = [{"Decode": {}}, {"Resize": {"target_size": 32, "interp": 0}}]
    ds = VOCDataSet(str(voc_tiny), "train.txt", transforms=transforms)
    s = ds[0]
    assert s["image"].shape == (32, 32, 3)
    np.testing.assert_allclose(s["gt_bbox"][0], [10 * 0.5, 5 * 32 / 48, 30 * 0.5, 25 * 32 / 48], rtol=1e-6)
    np.testing.assert_array_equal(s["im_shape"], [48, 64])  # original size survives resizing


def test_voc_bad_input_errors(voc_tiny, tmp_path):
    with pytest.raises(FileNotFoundError, match="make_demo_data"):
        VOCDataSet(str(tmp_path / "nope"), "train.txt")
    with pytest.raises(FileNotFoundError, match="val.txt"):
        VOCDataSet(str(voc_tiny), "val.txt")
    with pytest.raises(FileNotFoundError, match="labels.txt"):
        VOCDataSet(str(voc_tiny), "train.txt", label_list="labels.txt")
    xml = (voc_tiny / "Annotations" / "img2.xml").read_text().replace("person", "horse")
    (voc_tiny / "Annotations" / "img2.xml").write_text(xml)
    with pytest.raises(ValueError, match=r"img2\.xml.*'horse'.*label_list"):
        VOCDataSet(str(voc_tiny), "train.txt")
    (voc_tiny / "bad.txt").write_text("JPEGImages/img1.jpg Annotations/missing.xml\n")
    with pytest.raises(FileNotFoundError, match="missing.xml"):
        VOCDataSet(str(voc_tiny), "bad.txt")


# ---------------------------------------------------------------- COCO reader

def write_tiny_coco(root):
    """Two images, categories with non-contiguous ids 3 and 7, one crowd region."""
    (root / "images").mkdir(parents=True)
    for name, size in (("a.jpg", (100, 80)), ("b.jpg", (120, 90))):
        Image.new("RGB", size, (50, 60, 70)).save(root / "images" / name)
    coco = {
        "images": [{"id": 11, "file_name": "a.jpg", "width": 100, "height": 80},
                   {"id": 22, "file_name": "b.jpg", "width": 120, "height": 90}],
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
        "annotations": [
            {"id": 1, "image_id": 11, "category_id": 3, "bbox": [10, 10, 40, 30], "area": 1200, "iscrowd": 0},
            {"id": 2, "image_id": 11, "category_id": 7, "bbox": [50, 20, 30, 50], "area": 1500, "iscrowd": 0},
            {"id": 3, "image_id": 22, "category_id": 7, "bbox": [0, 0, 60, 60], "area": 3600, "iscrowd": 0},
            {"id": 4, "image_id": 22, "category_id": 3, "bbox": [70, 5, 20, 20], "area": 400, "iscrowd": 1},
        ],
    }
    (root / "anno.json").write_text(json.dumps(coco))
    return root


def test_coco_dataset_maps_categories(tmp_path):
    ds = COCODataSet(str(write_tiny_coco(tmp_path)), "images", "anno.json")
    assert ds.class_names == ["cat", "dog"]
    assert ds.catid2clsid == {3: 0, 7: 1} and ds.clsid2catid == {0: 3, 1: 7}
    a, b = ds.records
    np.testing.assert_array_equal(a["gt_bbox"], [[10, 10, 50, 40], [50, 20, 80, 70]])
    np.testing.assert_array_equal(a["gt_class"], [0, 1])
    np.testing.assert_array_equal(b["gt_class"], [1])  # crowd region is not a target
    s = ds[1]
    assert s["im_id"] == 22 and s["image"].shape == (90, 120, 3)
    assert ds.records_for([22])[0] is b
    with pytest.raises(FileNotFoundError, match="missing.json"):
        COCODataSet(str(tmp_path), "images", "missing.json")


# ---------------------------------------------------------------- transforms

COLOURS = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255)], np.uint8)
BOXES = np.array([[10, 5, 40, 30], [60, 40, 100, 75], [0, 50, 20, 80]], np.float32)


def painted_sample(h=80, w=120):
    """Black image with one filled rectangle per box, coloured by class."""
    img = np.zeros((h, w, 3), np.uint8)
    for (x1, y1, x2, y2), colour in zip(BOXES.astype(int), COLOURS):
        img[y1:y2, x1:x2] = colour
    return {"image": img, "gt_bbox": BOXES.copy(), "gt_class": np.arange(3, dtype=np.int32),
            "difficult": np.array([0, 1, 0], np.int32), "im_id": 0, "im_shape": np.array([h, w], np.int32)}


def assert_boxes_follow_pixels(sample, atol=0.0):
    """Each box must tightly cover the pixels of its class colour (the rectangle it was drawn as)."""
    img = sample["image"]
    assert len(sample["gt_bbox"]) == len(sample["gt_class"]) == len(sample["difficult"])
    for box, cls in zip(sample["gt_bbox"], sample["gt_class"]):
        ys, xs = np.nonzero(np.all(img == COLOURS[cls], axis=-1))
        assert len(xs), f"class {cls} box {box} has no pixels left"
        np.testing.assert_allclose(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], atol=atol)


def test_painted_fixture_is_aligned():
    assert_boxes_follow_pixels(painted_sample())


def test_random_flip_moves_boxes_with_pixels():
    with seeded(0):
        s = RandomFlip(prob=1.0)(painted_sample())
    np.testing.assert_array_equal(s["gt_bbox"][0], [80, 5, 110, 30])
    assert_boxes_follow_pixels(s)


def test_random_expand_moves_boxes_with_pixels():
    with seeded(1):
        s = RandomExpand(ratio=3, prob=1.0)(painted_sample())
    assert s["image"].shape[0] > 80
    assert not np.array_equal(s["gt_bbox"], BOXES)
    assert tuple(s["image"][0, 0]) in {(124, 116, 104), tuple(COLOURS[2])}
    assert_boxes_follow_pixels(s)


def test_random_crop_keeps_centred_boxes_clipped():
    cropped = 0
    for seed in range(20):
        with seeded(seed):
            s = RandomCrop(allow_no_crop=False, thresholds=[0.1, 0.3], scaling=[0.4, 0.8])(painted_sample())
        cropped += s["image"].shape[:2] != (80, 120)
        assert 1 <= len(s["gt_bbox"]) <= 3
        h, w = s["image"].shape[:2]
        assert s["gt_bbox"].min() >= 0 and s["gt_bbox"][:, [0, 2]].max() <= w and s["gt_bbox"][:, [1, 3]].max() <= h
        assert_boxes_follow_pixels(s)
    assert cropped >= 15


def test_resize_scales_boxes_with_pixels():
    s = Resize(target_size=[40, 60], interp="nearest")(painted_sample())
    assert s["image"].shape == (40, 60, 3)
    np.testing.assert_allclose(s["gt_bbox"][0], [5, 2.5, 20, 15])
    assert_boxes_follow_pixels(s, atol=1.0)


def test_batch_random_resize_gives_one_size_per_batch():
    t = BatchRandomResize(target_sizes=[64, 96, 128], interp=0)
    assert t.is_batch
    sizes = set()
    for seed in range(8):
        with seeded(seed):
            batch = t([painted_sample(), painted_sample(100, 130)])
        assert batch[0]["image"].shape == batch[1]["image"].shape
        sizes.add(batch[0]["image"].shape[0])
        for s in batch:
            assert_boxes_follow_pixels(s, atol=1.0)
    assert sizes <= {64, 96, 128} and len(sizes) > 1


def test_geometric_chain_stays_aligned_over_many_draws():
    chain = Compose([RandomExpand(ratio=2, prob=0.5), RandomCrop(), RandomFlip(), Resize(96, interp=0)])
    changed = 0
    for seed in range(30):
        with seeded(seed):
            s = chain(painted_sample())
        assert s["image"].shape == (96, 96, 3)
        assert_boxes_follow_pixels(s, atol=1.0)
        changed += len(s["gt_bbox"]) < 3
    assert changed > 0  # the crop really dropped boxes sometimes


def test_random_distort_changes_colours_only():
    with seeded(0):
        s = RandomDistort(prob=1.0)(painted_sample())
    assert s["image"].dtype == np.uint8 and s["image"].shape == (80, 120, 3)
    assert not np.array_equal(s["image"], painted_sample()["image"])
    np.testing.assert_array_equal(s["gt_bbox"], BOXES)


def test_seeded_transforms_are_reproducible():
    chain = Compose([RandomDistort(), RandomExpand(), RandomCrop(), RandomFlip()])
    with seeded(5):
        a = chain(painted_sample())
    with seeded(5):
        b = chain(painted_sample())
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["gt_bbox"], b["gt_bbox"])


def test_normalize_box_xywh_padbox_exact():
    s = painted_sample()  # 80 x 120
    s = NormalizeBox()(s)
    np.testing.assert_allclose(s["gt_bbox"][0], [10 / 120, 5 / 80, 40 / 120, 30 / 80], rtol=1e-6)
    s = BboxXYXY2XYWH()(s)
    np.testing.assert_allclose(s["gt_bbox"][0], [25 / 120, 17.5 / 80, 30 / 120, 25 / 80], rtol=1e-6)
    s = PadBox(num_max_boxes=5)(s)
    assert s["gt_bbox"].shape == (5, 4) and s["gt_bbox"].dtype == np.float32
    np.testing.assert_array_equal(s["gt_bbox"][3:], 0)
    np.testing.assert_array_equal(s["gt_class"], [0, 1, 2, 0, 0])
    np.testing.assert_array_equal(s["gt_score"], [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(s["difficult"], [0, 1, 0, 0, 0])
    s = PadBox(num_max_boxes=2)(painted_sample())
    np.testing.assert_array_equal(s["gt_class"], [0, 1])


def test_normalize_box_after_permute_uses_chw_size():
    s = Permute()(painted_sample())
    assert s["image"].shape == (3, 80, 120) and s["image"].dtype == np.float32
    s = NormalizeBox()(s)
    np.testing.assert_allclose(s["gt_bbox"][1], [60 / 120, 40 / 80, 100 / 120, 75 / 80], rtol=1e-6)


def test_normalize_image_and_permute_values():
    s = painted_sample()
    s = Permute()(NormalizeImage(mean=[0.5, 0.5, 0.5], std=[0.5, 0.25, 0.5])(s))
    assert s["image"].dtype == np.float32
    assert s["image"][0, 5, 10] == pytest.approx(1.0)   # red = 255 -> (1 - .5) / .5
    assert s["image"][1, 5, 10] == pytest.approx(-2.0)  # green = 0 -> (0 - .5) / .25
    assert s["image"][1, 40, 60] == pytest.approx(2.0)


def test_build_transforms_from_config_and_errors():
    t = build_transforms([{"RandomFlip": {"prob": 0.0}}, {"Resize": {"target_size": 20}}, "Permute", {"PadBox": None}])
    assert [type(x).__name__ for x in t] == ["RandomFlip", "Resize", "Permute", "PadBox"]
    assert t(painted_sample())["image"].shape == (3, 20, 20)
    with pytest.raises(KeyError, match="Did you mean 'Resize'"):
        build_transforms([{"Resise": {"target_size": 20}}])
    with pytest.raises(KeyError, match="unknown key 'size' in the config of Resize. Did you mean 'target_size'"):
        build_transforms([{"Resize": {"size": 20}}])
    with pytest.raises(ValueError, match="one-key dict"):
        build_transforms([{"Resize": {}, "Permute": {}}])
    with pytest.raises(ValueError, match="interpolation"):
        Resize(20, interp="fancy")


# ---------------------------------------------------------------- demo data

@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "voc"
    make_demo_voc(str(root), num_train=8, num_val=4, image_size=128, seed=0)
    return root


def _tree_bytes(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = open(path, "rb").read()
    return out


def test_demo_is_deterministic(demo_root, tmp_path):
    make_demo_voc(str(tmp_path / "again"), num_train=8, num_val=4, image_size=128, seed=0)
    make_demo_voc(str(tmp_path / "other"), num_train=8, num_val=4, image_size=128, seed=1)
    a, b, c = _tree_bytes(demo_root), _tree_bytes(tmp_path / "again"), _tree_bytes(tmp_path / "other")
    assert len(a) == 8 + 4 + 8 + 4 + 4
    assert a == b
    assert a["JPEGImages/train_00000.jpg"] != c["JPEGImages/train_00000.jpg"]


def test_demo_is_a_valid_voc_dataset(demo_root):
    expected = ["trouser", "bag", "sneaker", "shirt", "ankle_boot"] if HAVE_FMNIST else list(demo.DIGIT_CLASSES)
    for split, n in (("train.txt", 8), ("val.txt", 4)):
        ds = VOCDataSet(str(demo_root), split)
        assert ds.class_names == expected and len(ds) == n
        for rec in ds.records:
            assert (rec["h"], rec["w"]) == (128, 128)
            assert 1 <= len(rec["gt_bbox"]) <= 4
            b = rec["gt_bbox"]
            assert b.min() >= 0 and b.max() <= 128 and np.all(b[:, 2:] > b[:, :2])
            assert rec["gt_class"].max() < 5
        assert ds[0]["image"].shape == (128, 128, 3)


def test_demo_boxes_are_the_pasted_mask_extents():
    pools, _ = demo._object_pools(demo.resolve_source("auto"), "val")
    black = [np.zeros((300, 300, 3), np.uint8)]
    difficult = 0
    for seed in range(60):
        img, objects = demo.render_image(np.random.default_rng(seed), pools, black, 128)
        painted = img.max(-1) > 0
        covered = np.zeros_like(painted)
        for cls, diff, (x1, y1, x2, y2) in objects:
            covered[y1:y2, x1:x2] = True
            box = painted[y1:y2, x1:x2]
            # Tight: every edge row/column of the box has painted pixels.
            assert box[0].any() and box[-1].any() and box[:, 0].any() and box[:, -1].any()
            longer = max(x2 - x1, y2 - y1)
            assert longer <= (0.08 * 128 + 2 if diff else 0.45 * 128 + 8)
            difficult += diff
        assert not (painted & ~covered).any()  # nothing painted outside the boxes
    assert difficult > 0


def test_ensure_demo_voc_reuses_and_regenerates(tmp_path):
    root = tmp_path / "demo"
    params = dict(num_train=3, num_val=2, image_size=64, seed=0)
    first = ensure_demo_voc(str(root), **params)
    assert not first["reused"] and first["train"]["images"] == 3
    mtime = os.path.getmtime(root / "train.txt")
    second = ensure_demo_voc(str(root), **params)
    assert second["reused"] and os.path.getmtime(root / "train.txt") == mtime
    third = ensure_demo_voc(str(root), **{**params, "num_val": 1})
    assert not third["reused"]
    assert len((root / "val.txt").read_text().splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == ["demo"]  # no temp directories left behind
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="not a generated demo dataset"):
        ensure_demo_voc(str(tmp_path / "mine"), **params)
    with pytest.raises(TypeError, match="num_images"):
        ensure_demo_voc(str(root), num_images=3)


def test_demo_digits_fallback(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "FMNIST_ROOT", str(tmp_path / "absent"))
    assert demo.resolve_source("auto") == "digits"
    s = ensure_demo_voc(str(tmp_path / "digits"), num_train=4, num_val=2, image_size=96)
    assert s["params"]["source"] == "digits"
    ds = VOCDataSet(str(tmp_path / "digits"), "train.txt")
    assert ds.class_names == list(demo.DIGIT_CLASSES)
    assert sum(len(r["gt_bbox"]) for r in ds.records) >= 4


# ---------------------------------------------------------------- loader

TRAIN_SAMPLE = [{"RandomDistort": {}}, {"RandomExpand": {"ratio": 2}}, {"RandomCrop": {}}, {"RandomFlip": {}}]
TRAIN_BATCH = [{"BatchRandomResize": {"target_sizes": [64, 96]}}, {"NormalizeBox": {}},
               {"PadBox": {"num_max_boxes": 6}},
               {"BboxXYXY2XYWH": {}}, {"NormalizeImage": {}}, {"Permute": {}}]


def _batches(loader):
    return [dict(b) for b in loader]


def test_loader_batch_shapes_and_dtypes(demo_root):
    ds = VOCDataSet(str(demo_root), "train.txt", transforms=TRAIN_SAMPLE)
    loader = build_dataloader(ds, batch_size=3, shuffle=True, batch_transforms=TRAIN_BATCH, seed=0)
    batches = _batches(loader)
    assert len(loader) == len(batches) == 3
    b = batches[0]
    size = b["image"].shape[-1]
    assert size in (64, 96)
    expected = {"image": ((3, 3, size, size), np.float32), "gt_bbox": ((3, 6, 4), np.float32),
                "gt_class": ((3, 6), np.int32), "gt_score": ((3, 6), np.float32), "difficult": ((3, 6), np.int32),
                "im_shape": ((3, 2), np.int32), "im_id": ((3,), np.int64),
                "scale_factor": ((3, 2), np.float32)}  # resized / original (h, w), as PP-YOLOE's eval feeds it
    assert set(b) == set(expected)
    for key, (shape, dtype) in expected.items():
        assert b[key].shape == shape and b[key].dtype == dtype, key
    np.testing.assert_array_equal(b["im_shape"], 128)
    real = b["gt_score"] > 0
    assert real.any() and b["gt_bbox"][real].min() >= 0 and b["gt_bbox"][real].max() <= 1
    assert sorted(np.concatenate([x["im_id"] for x in batches])) == list(range(8))
    assert len(build_dataloader(ds, batch_size=3, drop_last=True)) == 2


def test_loader_is_deterministic_across_workers_and_varies_by_epoch(demo_root):
    ds = VOCDataSet(str(demo_root), "train.txt", transforms=TRAIN_SAMPLE)

    def make(workers, seed=7):
        return build_dataloader(ds, batch_size=4, shuffle=True, batch_transforms=TRAIN_BATCH, seed=seed,
                                num_workers=workers)

    a, b = make(0), make(0)
    epoch_a, epoch_b = _batches(a), _batches(b)
    for x, y in zip(epoch_a, epoch_b):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    second = _batches(a)
    assert not all(np.array_equal(x["image"], y["image"]) for x, y in zip(epoch_a, second))
    other = _batches(make(0, seed=8))
    assert not all(np.array_equal(x["image"], y["image"]) for x, y in zip(epoch_a, other))


def test_loader_eval_batches_drop_ragged_boxes(demo_root):
    ds = VOCDataSet(str(demo_root), "val.txt", transforms=[{"Resize": {"target_size": 64}}, {"NormalizeImage": {}},
                                                            {"Permute": {}}])
    batches = _batches(build_dataloader(ds, batch_size=4))
    assert set(batches[0]) == {"image", "im_shape", "im_id", "scale_factor"}
    np.testing.assert_array_equal(batches[0]["im_id"], [0, 1, 2, 3])
    unsized = VOCDataSet(str(demo_root), "val.txt")
    unsized.records[1] = {**unsized.records[1], "im_file": str(demo_root / "tiny.jpg")}
    Image.new("RGB", (20, 10)).save(demo_root / "tiny.jpg")
    with pytest.raises(ValueError, match="Resize"):
        _batches(build_dataloader(unsized, batch_size=2))


def test_loader_reraises_worker_errors(demo_root):
    ds = VOCDataSet(str(demo_root), "val.txt", transforms=[{"Resize": {"target_size": 64}}])
    ds.records[2] = {**ds.records[2], "im_file": str(demo_root / "gone.jpg")}
    with pytest.raises(FileNotFoundError, match="gone.jpg"):
        _batches(build_dataloader(ds, batch_size=2, num_workers=0))


_WORKERS_SCRIPT = """
import faulthandler, sys, numpy as np
faulthandler.dump_traceback_later(200, exit=True)  # a hang prints where every thread waits, then fails
from ppprune.data import VOCDataSet, build_dataloader
root, sample, batch = sys.argv[1], eval(sys.argv[2]), eval(sys.argv[3])
ds = VOCDataSet(root, "train.txt", transforms=sample)
make = lambda w: [dict(b) for b in build_dataloader(ds, batch_size=4, shuffle=True, batch_transforms=batch, seed=7,
                                                    num_workers=w)]
for x, y in zip(make(0), make(2)):
    for key in x:
        np.testing.assert_array_equal(x[key], y[key])
print("same batches with 0 and 2 workers")
import ppprune.data.loader as loader
loader._roomy_shared_memory = lambda: False  # as in a container with a small /dev/shm
for x, y in zip(make(0), make(2)):
    for key in x:
        np.testing.assert_array_equal(x[key], y[key])
print("and without shared memory")
ds = VOCDataSet(root, "val.txt", transforms=[{"Resize": {"target_size": 64}}])
ds.records[2] = {**ds.records[2], "im_file": root + "/gone.jpg"}
try:
    [dict(b) for b in build_dataloader(ds, batch_size=2, num_workers=2)]
except FileNotFoundError as e:
    print("re-raised:", e)
"""


def test_loader_workers_in_a_fresh_process(demo_root):
    """Worker processes: same batches as in-process, and a worker's error re-raised with its type.
    Run in a fresh interpreter: paddle's DataLoader forks, and forking a test process that already runs
    paddle threads can deadlock; the timeout turns any hang into a failure."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _WORKERS_SCRIPT, str(demo_root), repr(TRAIN_SAMPLE), repr(TRAIN_BATCH)],
                         capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert "same batches with 0 and 2 workers" in out.stdout, out.stderr[-2000:]
    assert "and without shared memory" in out.stdout, out.stderr[-2000:]
    assert "re-raised:" in out.stdout and "gone.jpg" in out.stdout, out.stderr[-2000:]


# ---------------------------------------------------------------- Fashion-MNIST

@pytest.mark.skipif(not HAVE_FMNIST, reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_mnist_reader():
    images, labels = load_fashion_mnist("test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(labels), [1000] * 10)
    train_images, _ = load_fashion_mnist("train")
    assert train_images.shape == (60000, 28, 28)
    ds = FashionMNIST("test", size=32, limit=5)
    x, y = ds[0]
    assert len(ds) == 5 and x.shape == (1, 32, 32) and x.dtype == np.float32 and y == labels[0]
    assert -1 < x.min() < 0 < x.max() < 3


def test_fashion_mnist_missing_files_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train", root=str(tmp_path))
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load_fashion_mnist("val")
