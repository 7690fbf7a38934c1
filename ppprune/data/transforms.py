"""Sample transforms for detection: each is `__call__(sample) -> sample` on a dict.

Conventions (shared with the readers and metrics):
- `image` is uint8 HWC RGB until `NormalizeImage` (float32 HWC) and `Permute` (float32 CHW).
- `gt_bbox` is float32 [N, 4] x1, y1, x2, y2 in continuous pixel coordinates: pixel column i covers
  [i, i+1), so a box covering columns c0..c1 has x1 = c0, x2 = c1 + 1 and width = x2 - x1.
- Per-box fields (`PER_BOX_FIELDS`) are filtered/padded together with `gt_bbox`.

Randomness comes from `rng()`, a thread-local numpy Generator that the loader reseeds per sample
(`seeded(...)`), so augmentations are reproducible whatever the worker count and never touch the
caller's global numpy state.
"""
import contextlib
import threading

import numpy as np
from PIL import Image

from ppprune.config import ConfigValueError, create
from ppprune.registry import TRANSFORMS

PER_BOX_FIELDS = ("gt_bbox", "gt_class", "gt_score", "difficult", "is_crowd")

_local = threading.local()


def rng():
    """The Generator random transforms draw from (per thread; unseeded until `seeded` is used)."""
    if not hasattr(_local, "rng"):
        _local.rng = np.random.default_rng()
    return _local.rng


@contextlib.contextmanager
def seeded(seed):
    """Make `rng()` a Generator seeded with `seed` (int or sequence of ints) inside the block."""
    previous = getattr(_local, "rng", None)
    _local.rng = np.random.default_rng(seed)
    try:
        yield _local.rng
    finally:
        if previous is None:
            del _local.rng
        else:
            _local.rng = previous


def image_hw(sample):
    """(h, w) of the sample's current image, whichever layout `Permute` left it in."""
    shape = sample["image"].shape
    return (shape[1], shape[2]) if sample.get("_chw") else (shape[0], shape[1])


def _keep_boxes(sample, keep):
    for key in PER_BOX_FIELDS:
        if key in sample:
            sample[key] = sample[key][keep]


# PaddleDetection configs name interpolations by OpenCV code; names are accepted too.
_INTERP = {
    0: Image.NEAREST, 1: Image.BILINEAR, 2: Image.BICUBIC, 3: Image.BOX, 4: Image.LANCZOS,
    "nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "linear": Image.BILINEAR,
    "bicubic": Image.BICUBIC, "cubic": Image.BICUBIC, "area": Image.BOX, "box": Image.BOX,
    "lanczos": Image.LANCZOS,
}


def _pil_interp(interp):
    key = interp.lower() if isinstance(interp, str) else interp
    if key not in _INTERP:
        raise ValueError(f"unknown interpolation {interp!r}; use one of {sorted(map(str, _INTERP))}")
    return _INTERP[key]


def _size_hw(target_size):
    if isinstance(target_size, (int, np.integer)):
        return int(target_size), int(target_size)
    h, w = target_size
    return int(h), int(w)


def resize_sample(sample, target_size, interp=2):
    """Resize image (uint8 HWC) to `target_size` (int or (h, w)), scaling boxes exactly with it."""
    th, tw = _size_hw(target_size)
    image = sample["image"]
    h, w = image.shape[:2]
    # resized / original (h, w), compounded over resizes: what PP-YOLOE's eval maps boxes back by
    sample["scale_factor"] = sample.get("scale_factor", np.ones(2, np.float32)) * np.array([th / h, tw / w], np.float32)
    if (h, w) != (th, tw):
        sample["image"] = np.asarray(Image.fromarray(image).resize((tw, th), _pil_interp(interp)))
        if "gt_bbox" in sample:
            scale = np.array([tw / w, th / h, tw / w, th / h], np.float32)
            sample["gt_bbox"] = (sample["gt_bbox"] * scale).astype(np.float32)
    return sample


@TRANSFORMS.register
class Decode:
    """Read `im_file` into `image` (uint8 HWC RGB) unless the sample already has one; set `im_shape`."""

    def __call__(self, sample):
        if "image" not in sample:
            try:
                with Image.open(sample["im_file"]) as im:
                    sample["image"] = np.asarray(im.convert("RGB"))
            except FileNotFoundError:
                raise FileNotFoundError(f"image file not found: {sample['im_file']}") from None
        if "im_shape" not in sample:
            sample["im_shape"] = np.array(sample["image"].shape[:2], np.int32)
        return sample


@TRANSFORMS.register
class RandomDistort:
    """Photometric jitter: brightness/contrast/saturation factors and a hue rotation (degrees),
    each applied with probability `prob`, in random order."""

    def __init__(self, brightness=(0.5, 1.5), contrast=(0.5, 1.5), saturation=(0.5, 1.5),
                 hue=(-18, 18), prob=0.5):
        self.ranges = {"brightness": brightness, "contrast": contrast, "saturation": saturation, "hue": hue}
        self.prob = prob

    @staticmethod
    def _apply(kind, img, value):
        if kind == "brightness":
            return img * value
        gray = img @ np.array([0.299, 0.587, 0.114], np.float32)
        if kind == "contrast":
            return gray.mean() + (img - gray.mean()) * value
        if kind == "saturation":
            return gray[..., None] + (img - gray[..., None]) * value
        # Hue: rotate the chroma plane of YIQ, a linear colour space (no HSV round trip needed).
        theta = np.deg2rad(value)
        to_yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float32)
        rot = np.array([[1, 0, 0], [0, np.cos(theta), -np.sin(theta)], [0, np.sin(theta), np.cos(theta)]],
                       np.float32)
        m = np.linalg.inv(to_yiq) @ rot @ to_yiq
        return img @ m.T.astype(np.float32)

    def __call__(self, sample):
        r = rng()
        img = sample["image"].astype(np.float32)
        kinds = list(self.ranges)
        for i in r.permutation(len(kinds)):
            kind = kinds[i]
            if r.random() < self.prob:
                lo, hi = self.ranges[kind]
                img = self._apply(kind, img, r.uniform(lo, hi))
        sample["image"] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        return sample


@TRANSFORMS.register
class RandomExpand:
    """Zoom out: with probability `prob` place the image at a random spot on a canvas up to
    `ratio` times larger filled with `fill_value` (RGB, 0-255)."""

    def __init__(self, ratio=4, prob=0.5, fill_value=(123.675, 116.28, 103.53)):
        if ratio < 1:
            raise ValueError(f"RandomExpand ratio must be >= 1, got {ratio}")
        self.ratio, self.prob = ratio, prob
        self.fill_value = np.clip(np.rint(fill_value), 0, 255).astype(np.uint8)

    def __call__(self, sample):
        r = rng()
        if r.random() >= self.prob or self.ratio == 1:
            return sample
        image = sample["image"]
        h, w = image.shape[:2]
        scale = r.uniform(1, self.ratio)
        eh, ew = int(h * scale), int(w * scale)
        y, x = int(r.integers(0, eh - h + 1)), int(r.integers(0, ew - w + 1))
        canvas = np.empty((eh, ew, 3), np.uint8)
        canvas[:] = self.fill_value
        canvas[y:y + h, x:x + w] = image
        sample["image"] = canvas
        if "gt_bbox" in sample:
            sample["gt_bbox"] = sample["gt_bbox"] + np.array([x, y, x, y], np.float32)
        return sample


def box_iou(a, b):
    """IoU matrix [len(a), len(b)] of x1y1x2y2 boxes in continuous coordinates."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


@TRANSFORMS.register
class RandomCrop:
    """SSD-style crop: pick a minimum-IoU threshold (or no crop), then sample crops of relative
    side `scaling` and `aspect_ratio` until one overlaps some box by at least that IoU
    (all boxes if `cover_all_box`). Boxes whose centres fall inside are kept and clipped."""

    def __init__(self, aspect_ratio=(0.5, 2.0), thresholds=(0.0, 0.1, 0.3, 0.5, 0.7, 0.9),
                 scaling=(0.3, 1.0), num_attempts=50, allow_no_crop=True, cover_all_box=False):
        self.aspect_ratio, self.thresholds, self.scaling = aspect_ratio, list(thresholds), scaling
        self.num_attempts, self.allow_no_crop, self.cover_all_box = num_attempts, allow_no_crop, cover_all_box

    def _sample_crop(self, r, h, w):
        scale = r.uniform(*self.scaling)
        ar = r.uniform(max(self.aspect_ratio[0], scale ** 2), min(self.aspect_ratio[1], scale ** -2))
        ch, cw = int(h * scale / np.sqrt(ar)), int(w * scale * np.sqrt(ar))
        ch, cw = max(1, min(ch, h)), max(1, min(cw, w))
        y, x = int(r.integers(0, h - ch + 1)), int(r.integers(0, w - cw + 1))
        return np.array([x, y, x + cw, y + ch], np.float32)

    def __call__(self, sample):
        boxes = sample.get("gt_bbox")
        if boxes is None or len(boxes) == 0:
            return sample
        r = rng()
        h, w = sample["image"].shape[:2]
        choices = self.thresholds + (["no_crop"] if self.allow_no_crop else [])
        for i in r.permutation(len(choices)):
            choice = choices[i]
            if choice == "no_crop":
                return sample
            for _ in range(self.num_attempts):
                crop = self._sample_crop(r, h, w)
                iou = box_iou(crop, boxes)[0]
                if (iou.min() if self.cover_all_box else iou.max()) < choice:
                    continue
                centers = (boxes[:, :2] + boxes[:, 2:]) / 2
                keep = np.all((centers >= crop[:2]) & (centers < crop[2:]), axis=1)
                if not keep.any():
                    continue
                return self._crop(sample, crop, keep)
        return sample

    @staticmethod
    def _crop(sample, crop, keep):
        x1, y1, x2, y2 = crop.astype(int)
        sample["image"] = sample["image"][y1:y2, x1:x2]
        _keep_boxes(sample, keep)
        boxes = sample["gt_bbox"] - np.array([x1, y1, x1, y1], np.float32)
        sample["gt_bbox"] = np.clip(boxes, 0, [x2 - x1, y2 - y1, x2 - x1, y2 - y1]).astype(np.float32)
        return sample


@TRANSFORMS.register
class RandomFlip:
    """Horizontal flip with probability `prob`."""

    def __init__(self, prob=0.5):
        self.prob = prob

    def __call__(self, sample):
        if rng().random() >= self.prob:
            return sample
        image = sample["image"]
        w = image.shape[1]
        sample["image"] = np.ascontiguousarray(image[:, ::-1])
        if "gt_bbox" in sample:
            boxes = sample["gt_bbox"].copy()
            boxes[:, [0, 2]] = w - sample["gt_bbox"][:, [2, 0]]
            sample["gt_bbox"] = boxes
        return sample


@TRANSFORMS.register
class Resize:
    """Resize to one fixed `target_size` (int or [h, w]), aspect ratio not kept.
    `interp`: OpenCV code (0 nearest, 1 bilinear, 2 bicubic, 3 area, 4 lanczos) or its name."""

    def __init__(self, target_size, interp=2):
        self.target_size, self.interp = _size_hw(target_size), interp
        _pil_interp(interp)  # fail at config time, not mid-epoch

    def __call__(self, sample):
        return resize_sample(sample, self.target_size, self.interp)


@TRANSFORMS.register
class BatchRandomResize:
    """Multi-scale training: one size drawn from `target_sizes` per batch, applied to every sample.
    A batch transform (`is_batch`): called with the list of samples of one batch."""

    is_batch = True

    def __init__(self, target_sizes, interp=2, random_interp=False):
        if not target_sizes:
            raise ValueError("BatchRandomResize needs a non-empty target_sizes list")
        self.target_sizes = [_size_hw(s) for s in target_sizes]
        self.interps = [0, 1, 2, 3, 4] if random_interp else [interp]
        for i in self.interps:
            _pil_interp(i)

    def __call__(self, samples):
        r = rng()
        size = self.target_sizes[int(r.integers(len(self.target_sizes)))]
        interp = self.interps[int(r.integers(len(self.interps)))]
        return [resize_sample(s, size, interp) for s in samples]


@TRANSFORMS.register
class NormalizeImage:
    """image -> float32 ((image / 255 if `is_scale`) - mean) / std, per channel."""

    def __init__(self, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), is_scale=True):
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        if np.any(self.std == 0):
            raise ValueError(f"NormalizeImage std must be non-zero, got {std}")
        self.is_scale = is_scale

    def __call__(self, sample):
        img = sample["image"].astype(np.float32)
        if self.is_scale:
            img /= 255.0
        sample["image"] = (img - self.mean) / self.std
        return sample


@TRANSFORMS.register
class Permute:
    """HWC -> CHW float32."""

    def __call__(self, sample):
        sample["image"] = np.ascontiguousarray(sample["image"].transpose(2, 0, 1), dtype=np.float32)
        sample["_chw"] = True
        return sample


@TRANSFORMS.register
class NormalizeBox:
    """Boxes -> fractions of the current image width/height."""

    def __call__(self, sample):
        if "gt_bbox" in sample:
            h, w = image_hw(sample)
            sample["gt_bbox"] = (sample["gt_bbox"] / np.array([w, h, w, h], np.float32)).astype(np.float32)
        return sample


@TRANSFORMS.register
class BboxXYXY2XYWH:
    """x1, y1, x2, y2 -> centre x, centre y, width, height (the layout yolo_loss expects)."""

    def __call__(self, sample):
        if "gt_bbox" in sample:
            b = sample["gt_bbox"]
            sample["gt_bbox"] = np.concatenate([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], 1).astype(np.float32)
        return sample


@TRANSFORMS.register
class PadBox:
    """Pad (or truncate) per-box fields to `num_max_boxes` rows so samples batch together.
    Adds `gt_score` (1 for real boxes) when missing; padding rows are all zero."""

    def __init__(self, num_max_boxes=50):
        self.num_max_boxes = num_max_boxes

    def __call__(self, sample):
        n = len(sample.get("gt_bbox", ()))
        if "gt_score" not in sample:
            sample["gt_score"] = np.ones(n, np.float32)
        m = self.num_max_boxes
        for key, dtype, cols in (("gt_bbox", np.float32, (4,)), ("gt_class", np.int32, ()),
                                 ("gt_score", np.float32, ()), ("difficult", np.int32, ()),
                                 ("is_crowd", np.int32, ())):
            if key in sample:
                padded = np.zeros((m,) + cols, dtype)
                k = min(n, m)
                padded[:k] = sample[key][:k]
                sample[key] = padded
        return sample


class Compose:
    """Apply transforms in order. Items may be callables or config dicts (see `build_transforms`)."""

    def __init__(self, transforms=()):
        self.transforms = [t if callable(t) else build_transform(t) for t in transforms]

    def __call__(self, sample):
        for t in self.transforms:
            sample = t(sample)
        return sample

    def __iter__(self):
        return iter(self.transforms)

    def __len__(self):
        return len(self.transforms)

    def __repr__(self):
        return f"Compose({self.transforms!r})"


def build_transform(spec):
    """One transform from `{'Name': {kwargs}}`, `{'Name': None}` or `'Name'`."""
    if isinstance(spec, str):
        return TRANSFORMS.build(spec)
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ValueError(f"a transform spec is a one-key dict like {{'Resize': {{'target_size': 320}}}}, got {spec!r}")
    (name, kwargs), = spec.items()
    try:  # create: a misspelt argument is refused by name, with the nearest right one
        return create(TRANSFORMS, name, {name: kwargs or {}})
    except ConfigValueError:
        raise
    except (TypeError, ValueError) as e:  # a required argument missing, a value the transform refuses
        raise ConfigValueError(f"bad arguments for transform {name}: {e}; fix them in the reader's "
                               "transforms") from None


def build_transforms(specs):
    """`Compose` from a config list, e.g. `[{'Decode': {}}, {'Resize': {'target_size': 320}}]`."""
    return Compose(specs or [])
