"""A small, deterministic, learnable VOC-layout detection dataset built from local data only.

Objects are Fashion-MNIST items (or scikit-learn digits when the Debian files are absent),
tight-cropped, scaled, colourised and alpha-blended onto crops of scikit-image's bundled photos
and textures. Each box is the exact extent of the pasted alpha mask. Each class gets its own hue
band (with jitter) and objects are large and saturated, so a small detector trained from scratch
on CPU learns it in minutes; tiny objects are marked `difficult`.
"""
import colorsys
import json
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET

import numpy as np
from PIL import Image
from scipy import ndimage

from ppprune.data.fashion_mnist import DEFAULT_ROOT as FMNIST_ROOT, fashion_mnist_available, load_fashion_mnist

# Bump when the output for given parameters changes, so `ensure_demo_voc` regenerates.
GENERATOR_VERSION = 1
STAMP_FILE = "demo_params.json"
DEFAULTS = {"num_train": 300, "num_val": 60, "image_size": 256, "seed": 0, "source": "auto"}

# Visually distinct classes: name -> label in the source data set.
FASHION_CLASSES = {"trouser": 1, "bag": 8, "sneaker": 7, "shirt": 6, "ankle_boot": 9}
DIGIT_CLASSES = {"zero": 0, "one": 1, "two": 2, "four": 4, "seven": 7}
TEXTURES = ("grass", "gravel", "brick", "coffee", "astronaut", "chelsea", "rocket", "immunohistochemistry")

OBJECT_SCALE = (0.12, 0.45)   # longer side, as a fraction of the image side
TINY_SCALE = (0.05, 0.08)     # the difficult objects
TINY_PROB = 0.06
MAX_OVERLAP = 0.2             # intersection / smaller box area between any two objects
ALPHA_LO, ALPHA_RAMP = 0.08, 0.15  # intensity where the mask starts, and its soft-edge width
MIN_ALPHA = 0.25


def resolve_source(source):
    if source == "auto":
        return "fashion_mnist" if fashion_mnist_available(FMNIST_ROOT) else "digits"
    if source not in ("fashion_mnist", "digits"):
        raise ValueError(f"source must be 'auto', 'fashion_mnist' or 'digits', got {source!r}")
    return source


def _object_pools(source, split):
    """([per class: uint8 [n, h, w] intensities], class names) for one split of the source."""
    if source == "fashion_mnist":
        images, labels = load_fashion_mnist("train" if split == "train" else "test", FMNIST_ROOT)
        classes = FASHION_CLASSES
    else:
        try:
            from sklearn.datasets import load_digits  # optional dependency, only for this fallback
        except ImportError:
            from ppprune.core.errors import MissingDependency

            raise MissingDependency("the demo dataset needs Fashion-MNIST or scikit-learn's digits: pip install "
                                    "'ppprune[data]' (or pip install scikit-learn)") from None

        digits = load_digits()
        half = len(digits.target) // 2  # disjoint halves keep val objects unseen in training
        part = slice(0, half) if split == "train" else slice(half, None)
        images, labels = digits.images[part] / 16.0, digits.target[part]
        classes = DIGIT_CLASSES
        # 8x8 is too blocky to scale up well: smooth to 32x32 once.
        images = np.stack([np.asarray(Image.fromarray(im.astype(np.float32), "F").resize((32, 32), Image.BICUBIC))
                           for im in images])
        images = np.rint(images.clip(0, 1) * 255).astype(np.uint8)
    return [images[labels == label] for label in classes.values()], list(classes)


def _textures():
    try:
        import skimage.data  # optional dependency, only for the demo backgrounds
    except ImportError:
        from ppprune.core.errors import MissingDependency

        raise MissingDependency("generating the demo dataset needs scikit-image: pip install 'ppprune[data]' "
                                "(or pip install scikit-image)") from None

    out = []
    for name in TEXTURES:
        img = getattr(skimage.data, name)()
        out.append(np.stack([img] * 3, -1) if img.ndim == 2 else img[..., :3])
    return out


def _background(r, textures, size):
    tex = textures[int(r.integers(len(textures)))]
    h, w = tex.shape[:2]
    side = int(min(h, w) * r.uniform(0.4, 1.0))
    y, x = int(r.integers(0, h - side + 1)), int(r.integers(0, w - side + 1))
    crop = Image.fromarray(tex[y:y + side, x:x + side]).resize((size, size), Image.BILINEAR)
    bg = np.asarray(crop, np.float32)
    if r.random() < 0.5:
        bg = bg[:, ::-1]
    # Subdued background so the objects stand out.
    mean = bg.mean()
    return mean + (bg - mean) * r.uniform(0.4, 0.7)


def _object_sprite(r, item, longer_side):
    """(alpha float32 [h, w], shade float32 [h, w]) of one uint8 item scaled to `longer_side` pixels."""
    item = item.astype(np.float32) / 255.0
    ys, xs = np.nonzero(item > ALPHA_LO)
    item = item[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = item.shape
    scale = longer_side / max(h, w)
    aspect = np.exp(r.uniform(-0.15, 0.15))
    size = (max(2, round(w * scale * aspect)), max(2, round(h * scale / aspect)))
    scaled = np.asarray(Image.fromarray(item, "F").resize(size, Image.BILINEAR))
    if r.random() < 0.5:
        scaled = scaled[:, ::-1]
    mask = ndimage.binary_fill_holes(scaled > ALPHA_LO)
    # Soft edges, but never so faint that a mask pixel (hence the box edge) is invisible.
    alpha = np.where(mask, np.clip((scaled - ALPHA_LO) / ALPHA_RAMP, MIN_ALPHA, 1), 0).astype(np.float32)
    alpha[mask & (scaled <= ALPHA_LO)] = 1.0  # filled holes are opaque
    return alpha, np.clip(scaled, 0, 1)


def _class_colour(r, cls, num_classes):
    hue = (cls / num_classes + r.uniform(-0.04, 0.04)) % 1.0
    return np.array(colorsys.hsv_to_rgb(hue, r.uniform(0.65, 1.0), r.uniform(0.8, 1.0)), np.float32) * 255


def _place(r, boxes, w, h, size, attempts=30):
    for _ in range(attempts):
        x, y = int(r.integers(0, size - w + 1)), int(r.integers(0, size - h + 1))
        ok = True
        for bx1, by1, bx2, by2 in boxes:
            inter = max(0, min(x + w, bx2) - max(x, bx1)) * max(0, min(y + h, by2) - max(y, by1))
            if inter > MAX_OVERLAP * min(w * h, (bx2 - bx1) * (by2 - by1)):
                ok = False
                break
        if ok:
            return x, y
    return None


def render_image(r, pools, textures, size):
    """(uint8 image [size, size, 3], objects [(class, difficult, (x1, y1, x2, y2))]) in continuous coords."""
    img = _background(r, textures, size)
    objects = []
    for _ in range(int(r.integers(1, 5))):
        cls = int(r.integers(len(pools)))
        item = pools[cls][int(r.integers(len(pools[cls])))]
        tiny = r.random() < TINY_PROB
        longer = r.uniform(*(TINY_SCALE if tiny else OBJECT_SCALE)) * size
        alpha, shade = _object_sprite(r, item, longer)
        h, w = alpha.shape
        pos = _place(r, [o[2] for o in objects], w, h, size)
        if pos is None or not alpha.any():  # no free spot, or scaled below visibility
            continue
        x, y = pos
        colour = _class_colour(r, cls, len(pools))
        sprite = colour * (0.35 + 0.65 * shade)[..., None]
        a = alpha[..., None]
        img[y:y + h, x:x + w] = img[y:y + h, x:x + w] * (1 - a) + sprite * a
        ys, xs = np.nonzero(alpha)
        objects.append((cls, int(tiny), (x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1)))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), objects


def _voc_xml(filename, size, objects, class_names):
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "demo_voc"
    ET.SubElement(root, "filename").text = filename
    sz = ET.SubElement(root, "size")
    for key, val in (("width", size), ("height", size), ("depth", 3)):
        ET.SubElement(sz, key).text = str(val)
    for cls, difficult, (x1, y1, x2, y2) in objects:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = class_names[cls]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = str(difficult)
        bnd = ET.SubElement(obj, "bndbox")
        # VOC stores 1-based inclusive pixel indices.
        for key, val in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):
            ET.SubElement(bnd, key).text = str(int(val))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def make_demo_voc(root, num_train=DEFAULTS["num_train"], num_val=DEFAULTS["num_val"],
                  image_size=DEFAULTS["image_size"], seed=DEFAULTS["seed"], source=DEFAULTS["source"]):
    """Write the demo VOC directory at `root` (must not exist or be empty); return a summary dict.

    Image i of a split depends only on (seed, split, i), so counts can change without reshuffling.
    """
    source = resolve_source(source)
    if os.path.isdir(root) and os.listdir(root):
        raise FileExistsError(f"{root} exists and is not empty; use ensure_demo_voc or pick an empty directory")
    if image_size < 64:
        raise ValueError(f"image_size must be >= 64, got {image_size}")
    for sub in ("JPEGImages", "Annotations"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    textures = _textures()
    params = {"num_train": num_train, "num_val": num_val, "image_size": image_size, "seed": seed, "source": source}
    summary = {"params": params}
    for split_code, (split, count) in enumerate((("train", num_train), ("val", num_val))):
        pools, class_names = _object_pools(source, split)
        counts, difficult, lines = dict.fromkeys(class_names, 0), 0, []
        for i in range(count):
            r = np.random.default_rng([seed, split_code, i])
            img, objects = render_image(r, pools, textures, image_size)
            name = f"{split}_{i:05d}"
            Image.fromarray(img).save(os.path.join(root, "JPEGImages", name + ".jpg"), quality=95)
            with open(os.path.join(root, "Annotations", name + ".xml"), "w", encoding="utf-8") as f:
                f.write(_voc_xml(name + ".jpg", image_size, objects, class_names))
            lines.append(f"JPEGImages/{name}.jpg Annotations/{name}.xml\n")
            for cls, diff, _ in objects:
                counts[class_names[cls]] += 1
                difficult += diff
        with open(os.path.join(root, f"{split}.txt"), "w", encoding="utf-8") as f:
            f.writelines(lines)
        summary[split] = {"images": count, "objects": counts, "difficult": difficult}
    with open(os.path.join(root, "label_list.txt"), "w", encoding="utf-8") as f:
        f.write("".join(n + "\n" for n in class_names))
    summary["class_names"] = class_names
    with open(os.path.join(root, STAMP_FILE), "w", encoding="utf-8") as f:
        json.dump({"version": GENERATOR_VERSION, **summary}, f, indent=1)
    return {"root": os.path.abspath(root), **summary}


def _read_stamp(root):
    try:
        with open(os.path.join(root, STAMP_FILE), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _stamp_matches(stamp, params):
    return stamp is not None and stamp.get("version") == GENERATOR_VERSION and stamp.get("params") == params


def ensure_demo_voc(root, force=False, **params):
    """Generate the demo data at `root` unless it is there already with the same parameters.

    Writes into a temporary sibling directory and renames it into place, so an interrupted or
    concurrent run never leaves a half-written dataset. Returns the summary plus `reused`.
    """
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown demo parameters {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    params = {**DEFAULTS, **params}
    params["source"] = resolve_source(params["source"])
    stamp = _read_stamp(root)
    if not force and _stamp_matches(stamp, params):
        return {**stamp, "root": os.path.abspath(root), "reused": True}
    if os.path.exists(root) and stamp is None and (not os.path.isdir(root) or os.listdir(root)):
        raise FileExistsError(f"{root} exists but is not a generated demo dataset; remove it or choose another path")
    parent = os.path.dirname(os.path.abspath(root))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".demo_voc-", dir=parent)
    try:
        summary = make_demo_voc(tmp, **params)
        if os.path.exists(root):
            shutil.rmtree(root)
        try:
            os.rename(tmp, root)
        except OSError:
            # Another process renamed its copy into place first: use it if it is what we want.
            if not _stamp_matches(_read_stamp(root), params):
                raise
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    return {**summary, "root": os.path.abspath(root), "reused": False}
