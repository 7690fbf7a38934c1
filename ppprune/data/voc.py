"""Pascal-VOC-layout detection dataset, plus `DetDataSet`, the record -> sample logic shared with COCO.

VOC XML boxes are 1-based inclusive pixel indices; records hold them as continuous coordinates
(x1 = xmin - 1, x2 = xmax), so box width is x2 - x1 and IoU needs no "+1" anywhere downstream.
"""
import os
import warnings
import xml.etree.ElementTree as ET

import numpy as np
from PIL import Image

from ppprune.data.transforms import Compose, Decode
from ppprune.registry import DATASETS


class DetDataSet:
    """Indexable detection dataset over `self.records` (one dict per image).

    `__getitem__` returns the decoded sample (image, gt_bbox, gt_class, difficult, im_id, im_shape)
    passed through `transforms`. Subclasses fill `records`, `class_names` and `use_difficult`.
    """

    records = ()
    class_names = ()
    use_difficult = True

    def __init__(self, transforms=None):
        self.transforms = transforms if transforms is None or callable(transforms) else Compose(transforms)
        self._by_id = None

    @property
    def num_classes(self):
        return len(self.class_names)

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        rec = self.records[i]
        sample = {"im_file": rec["im_file"], "im_id": rec["im_id"]}
        keep = slice(None) if self.use_difficult else rec["difficult"] == 0
        for key in ("gt_bbox", "gt_class", "difficult"):
            sample[key] = rec[key][keep].copy()
        sample = Decode()(sample)
        return self.transforms(sample) if self.transforms is not None else sample

    def records_for(self, im_ids):
        """The records of the given image ids (e.g. a batch's `im_id`), in order — metrics take these."""
        if self._by_id is None:
            self._by_id = {rec["im_id"]: rec for rec in self.records}
        return [self._by_id[int(i)] for i in np.asarray(im_ids).reshape(-1)]


def read_label_list(path):
    """Class names, one per non-blank line."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"label list not found: {path} (write one class name per line)")
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if not names:
        raise ValueError(f"label list {path} is empty (write one class name per line)")
    if len(set(names)) != len(names):
        raise ValueError(f"label list {path} repeats a class name: {names}")
    return names


def parse_voc_xml(xml_path, cname2cid):
    """(h, w, gt_bbox float32 [N,4], gt_class int32 [N], difficult int32 [N], n_degenerate)."""
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError) as e:
        raise ValueError(f"cannot read VOC annotation {xml_path}: {e}") from None
    size = root.find("size")
    h = int(float(size.findtext("height", "0"))) if size is not None else 0
    w = int(float(size.findtext("width", "0"))) if size is not None else 0
    boxes, classes, difficult, degenerate = [], [], [], 0
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in cname2cid:
            raise ValueError(
                f"{xml_path}: class '{name}' is not in the label list {sorted(cname2cid)}; "
                "add it to label_list.txt or fix the annotation"
            )
        bnd = obj.find("bndbox")
        if bnd is None:
            raise ValueError(f"{xml_path}: object '{name}' has no <bndbox>")
        try:
            xmin, ymin, xmax, ymax = (float(bnd.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, ValueError):
            raise ValueError(f"{xml_path}: object '{name}' has a missing or non-numeric bndbox coordinate") from None
        box = [xmin - 1, ymin - 1, xmax, ymax]
        if box[2] <= box[0] or box[3] <= box[1]:
            degenerate += 1
            continue
        boxes.append(box)
        classes.append(cname2cid[name])
        difficult.append(int(float(obj.findtext("difficult", "0") or 0)))
    return (h, w, np.array(boxes, np.float32).reshape(-1, 4), np.array(classes, np.int32),
            np.array(difficult, np.int32), degenerate)


@DATASETS.register
class VOCDataSet(DetDataSet):
    """VOC directory: `anno_path` lists `JPEGImages/x.jpg Annotations/x.xml` pairs relative to
    `dataset_dir`; `label_list` names one class per line (0-based ids in file order).

    `records` keep every box including difficult ones (the metric needs them);
    `use_difficult=False` only drops difficult boxes from the samples `__getitem__` returns.
    `im_id` is the record's index.
    """

    def __init__(self, dataset_dir, anno_path, label_list="label_list.txt", use_difficult=True, transforms=None):
        super().__init__(transforms)
        if not os.path.isdir(dataset_dir):
            raise FileNotFoundError(
                f"VOC dataset directory not found: {dataset_dir} "
                "(for the demo data run `python tools/make_demo_data.py --out <dir>`)"
            )
        self.dataset_dir, self.use_difficult = dataset_dir, use_difficult
        self.class_names = read_label_list(os.path.join(dataset_dir, label_list))
        self.records = self._load(os.path.join(dataset_dir, anno_path))

    def _load(self, list_path):
        if not os.path.isfile(list_path):
            raise FileNotFoundError(
                f"VOC image list not found: {list_path} (lines: 'JPEGImages/x.jpg Annotations/x.xml')"
            )
        cname2cid = {name: i for i, name in enumerate(self.class_names)}
        records, degenerate = [], 0
        with open(list_path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 2:
                    raise ValueError(f"{list_path}:{lineno}: expected 'image_path xml_path', got {line.strip()!r}")
                im_file, xml_file = (os.path.join(self.dataset_dir, p) for p in parts)
                for path in (im_file, xml_file):
                    if not os.path.isfile(path):
                        raise FileNotFoundError(f"{list_path}:{lineno}: file not found: {path}")
                h, w, boxes, classes, difficult, bad = parse_voc_xml(xml_file, cname2cid)
                degenerate += bad
                if h <= 0 or w <= 0:  # size missing in the XML: read the image header instead
                    with Image.open(im_file) as im:
                        w, h = im.size
                records.append({"im_file": im_file, "im_id": len(records), "h": h, "w": w,
                                "gt_bbox": boxes, "gt_class": classes, "difficult": difficult})
        if not records:
            raise ValueError(f"VOC image list {list_path} lists no images")
        if degenerate:
            warnings.warn(f"{list_path}: skipped {degenerate} boxes with non-positive width or height")
        return records
