"""Fashion-MNIST from the Debian package `dataset-fashion-mnist` (gzipped idx files, read locally)."""
import functools
import gzip
import os

import numpy as np
import paddle
from PIL import Image

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
CLASS_NAMES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
# Pixel mean/std of the training images (scaled to [0, 1]).
MEAN, STD = 0.2860, 0.3530


def _read_idx(path, magic, ndim):
    with gzip.open(path, "rb") as f:
        data = f.read()
    got = int.from_bytes(data[:4], "big")
    if got != magic:
        raise ValueError(f"{path} is not an idx file of the expected kind (magic {got}, expected {magic})")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist_available(root=DEFAULT_ROOT):
    return all(os.path.isfile(os.path.join(root, name)) for files in _FILES.values() for name in files)


@functools.lru_cache(maxsize=4)
def load_fashion_mnist(split="train", root=DEFAULT_ROOT):
    """(images uint8 [N, 28, 28], labels int64 [N]) of split 'train' (60000) or 'test' (10000).

    The arrays are cached and read-only; copy before modifying.
    """
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    paths = [os.path.join(root, name) for name in _FILES[split]]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST files not found: {', '.join(missing)}. "
            "Install them with `apt-get install dataset-fashion-mnist` or pass root=<dir with the idx .gz files>"
        )
    images = _read_idx(paths[0], 2051, 3)
    labels = _read_idx(paths[1], 2049, 1).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"{paths[0]} has {len(images)} images but {paths[1]} has {len(labels)} labels")
    labels.setflags(write=False)
    return images, labels


class FashionMNIST(paddle.io.Dataset):
    """Classification samples (image float32 [1, H, W] normalised, label int64).

    `size` resizes (bilinear) from 28x28; `limit` keeps the first N samples; `transform`, if given,
    is applied to the final float32 [1, H, W] array.
    """

    def __init__(self, split="train", transform=None, size=None, limit=None, root=DEFAULT_ROOT):
        super().__init__()
        images, labels = load_fashion_mnist(split, root)
        self.images, self.labels = images[:limit], labels[:limit]
        self.transform, self.size = transform, size
        self.class_names = CLASS_NAMES

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = self.images[i]
        if self.size is not None and self.size != img.shape[0]:
            img = np.asarray(Image.fromarray(img).resize((self.size, self.size), Image.BILINEAR))
        x = ((img.astype(np.float32) / 255.0 - MEAN) / STD)[None]
        if self.transform is not None:
            x = self.transform(x)
        return x, self.labels[i]
