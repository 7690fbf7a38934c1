"""Run an exported (pruned) model on images with Paddle Inference and write each image, under its own name
and format, with the boxes drawn.

    python tools/infer.py --model_dir output/<config>_export --infer_img dataset/demo_voc/JPEGImages/000001.jpg
    python tools/infer.py --model_dir output/<config>_export --infer_dir some/folder --output_dir out/
"""
import argparse
import os

import numpy as np

from . import flags, paths, runner


def parse_args(argv=None):
    p = flags.OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_dir", required=True, help="folder written by tools/export_model.py")
    p.add_argument("--infer_img", default=None, help="one image")
    p.add_argument("--infer_dir", default=None, help="a folder of images")
    p.add_argument("--output_dir", default="output/infer")
    p.add_argument("--draw_threshold", type=float, default=None, help="default: infer_cfg.yml's draw_threshold")
    p.add_argument("--threads", type=int, default=1)
    flags.add_overwrite_flag(p)
    return p.parse_args(argv)


IMAGE_TYPES = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP"}  # any case: IMG.JPG too


def images(args):
    if args.infer_dir and not os.path.isdir(args.infer_dir):
        raise runner.UsageError(f"--infer_dir '{args.infer_dir}' is not a folder")
    if args.infer_img:
        if not os.path.isfile(args.infer_img):
            raise runner.UsageError(f"--infer_img '{args.infer_img}' does not exist")
        return [args.infer_img]
    if args.infer_dir:
        found = sorted(os.path.join(args.infer_dir, n) for n in os.listdir(args.infer_dir)
                       if os.path.splitext(n)[1].lower() in IMAGE_TYPES and os.path.isfile(os.path.join(args.infer_dir, n)))
        if not found:
            raise runner.UsageError(f"no .jpg/.png images in --infer_dir '{args.infer_dir}'")
        return found
    raise runner.UsageError("give --infer_img or --infer_dir")


def read_all(files):
    """Decode every image before anything is written: a corrupt or truncated one is one line naming it."""
    from PIL import Image

    decoded = []
    for path in files:
        try:
            with Image.open(path) as im:
                decoded.append(np.asarray(im.convert("RGB")))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise runner.UsageError(f"cannot read image '{path}' ({e}): replace or remove it") from None
    return decoded


def preprocess(image, steps):
    """The eval transforms recorded in infer_cfg.yml, applied to one decoded image."""
    from ..data import build_transforms
    from ..models.base import Detector

    sample = {"image": image, "im_shape": np.array(image.shape[:2], dtype=np.int32), "gt_bbox": np.zeros((0, 4), np.float32),
              "gt_class": np.zeros(0, np.int32)}
    sample = build_transforms(steps)(sample)
    return Detector.eval_inputs(sample["image"], image.shape[:2])


def draw(image, boxes, labels, threshold, path):
    from PIL import Image, ImageDraw

    from ..fsutil import atomic_write

    canvas = Image.fromarray(image)
    pen = ImageDraw.Draw(canvas)
    for cls, score, x1, y1, x2, y2 in boxes:
        if score < threshold:
            continue
        pen.rectangle([x1, y1, x2, y2], outline=(255, 40, 40), width=2)
        name = labels[int(cls)] if int(cls) < len(labels) else str(int(cls))
        pen.text((x1 + 2, max(0, y1 - 11)), f"{name} {score:.2f}", fill=(255, 255, 0))
    with atomic_write(path, "wb") as f:
        canvas.save(f, format=IMAGE_TYPES[os.path.splitext(path)[1].lower()])


def run(argv=None):
    """Draw the detections of each image into the output folder."""
    args = parse_args(argv)
    from .. import deploy
    from ..deploy import infer_cfg

    try:
        info, steps = infer_cfg.read(args.model_dir)
    except infer_cfg.InferCfgError as e:
        raise runner.UsageError(str(e)) from None
    threshold = info.get("draw_threshold", 0.5) if args.draw_threshold is None else args.draw_threshold
    files = images(args)
    decoded = read_all(files)
    out = paths.output_dir(args, args.output_dir, inputs=[args.model_dir, *files], flag="--output_dir <another folder>")
    predictor = deploy.create_predictor(os.path.join(args.model_dir, "model"), threads=args.threads)
    out.open()
    hidden = []  # the best score of each image left with no box
    for path, image in zip(files, decoded):
        inputs = preprocess(image, steps)
        (boxes,) = deploy.detections(predictor.run(inputs))
        # the input's own name and format (as PaddleDetection): a.jpg and a.png of one folder never collide
        drawn = os.path.join(out.path, os.path.basename(path))
        draw(image, boxes, info.get("label_list", []), threshold, drawn)
        kept = int((boxes[:, 1] >= threshold).sum())
        if kept == 0:
            hidden.append(float(boxes[:, 1].max()) if len(boxes) else 0.0)
        print(f"{path}: {kept} boxes -> {drawn}")
    if hidden:  # say what the threshold hid, so an empty picture is not taken for an empty detector
        print(f"{len(hidden)} of {len(files)} images have no box at draw_threshold {threshold:g}; their best "
              f"detections scored {min(hidden):.2f} to {max(hidden):.2f} (median {np.median(hidden):.2f}). "
              "Lower --draw_threshold to draw them.")


main = runner.exit_zero(run)
