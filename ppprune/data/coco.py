"""COCO-format detection dataset (plain json; pycocotools is only needed by the COCO metric)."""
import json
import os

import numpy as np

from ppprune.data.voc import DetDataSet
from ppprune.registry import DATASETS


@DATASETS.register
class COCODataSet(DetDataSet):
    """Images under `dataset_dir/image_dir`, annotations in `dataset_dir/anno_path` (COCO json).

    Category ids map to contiguous 0-based class ids in ascending id order (`catid2clsid`,
    `clsid2catid`). `im_id` is the COCO image id. Crowd regions and boxes without area are not
    training targets (COCOeval reads crowd regions from the json itself); `difficult` is all zero.
    """

    def __init__(self, dataset_dir, image_dir, anno_path, transforms=None):
        super().__init__(transforms)
        anno_file = os.path.join(dataset_dir, anno_path)
        if not os.path.isfile(anno_file):
            raise FileNotFoundError(f"COCO annotation file not found: {anno_file}")
        self.anno_path = anno_file
        self.image_dir = os.path.join(dataset_dir, image_dir)
        if not os.path.isdir(self.image_dir):
            raise FileNotFoundError(f"COCO image directory not found: {self.image_dir}")
        with open(anno_file, encoding="utf-8") as f:
            coco = json.load(f)
        for key in ("images", "annotations", "categories"):
            if key not in coco:
                raise ValueError(f"{anno_file} is not a COCO detection file: no '{key}' key")
        cats = sorted(coco["categories"], key=lambda c: c["id"])
        self.class_names = [c["name"] for c in cats]
        self.catid2clsid = {c["id"]: i for i, c in enumerate(cats)}
        self.clsid2catid = {i: c["id"] for i, c in enumerate(cats)}
        self.records = self._load(coco, anno_file)

    def _load(self, coco, anno_file):
        per_image = {img["id"]: [] for img in coco["images"]}
        for ann in coco["annotations"]:
            if ann["image_id"] not in per_image:
                raise ValueError(f"{anno_file}: annotation {ann.get('id')} refers to unknown image {ann['image_id']}")
            if ann["category_id"] not in self.catid2clsid:
                raise ValueError(f"{anno_file}: annotation {ann.get('id')} has unknown category {ann['category_id']}")
            x, y, w, h = ann["bbox"]
            if ann.get("iscrowd", 0) or w <= 0 or h <= 0:
                continue
            per_image[ann["image_id"]].append(([x, y, x + w, y + h], self.catid2clsid[ann["category_id"]]))
        records = []
        for img in coco["images"]:
            objs = per_image[img["id"]]
            records.append({
                "im_file": os.path.join(self.image_dir, img["file_name"]),
                "im_id": int(img["id"]), "h": int(img["height"]), "w": int(img["width"]),
                "gt_bbox": np.array([o[0] for o in objs], np.float32).reshape(-1, 4),
                "gt_class": np.array([o[1] for o in objs], np.int32),
                "difficult": np.zeros(len(objs), np.int32),
            })
        if not records:
            raise ValueError(f"{anno_file} lists no images")
        return records
