"""What the pipeline needs of a detection architecture, stated once.

A new family subclasses `Detector`, registers itself in ARCHITECTURES and provides:
- `from_config(cfg, ...)`: build from the config's sections (a classmethod, as `config.create` calls it);
- `train_specs(image_shape)`: the feeds of the training program besides `image`, as (name, shape, dtype);
- `loss(inputs)` -> scalar loss of the training program;
- `predict(inputs)` -> (bbox, bbox_num, network): `bbox` [N, 6] rows of (class, score, x1, y1, x2, y2) in
  the original image's pixels, `bbox_num` [batch] boxes per image, and `network` the raw outputs before
  post-processing (NMS), so export can time the network alone;
and may set the class attributes below. `engine/programs.py`, `deploy/infer_cfg.py` and `cli/export_model.py` read
them from the model class; nothing is keyed by the architecture's name.
"""
import numpy as np
import paddle.nn as nn

from .legacy_ops import legacy_ops


class Detector(nn.Layer):
    # PaddleDetection's infer_cfg.yml `arch` (names the deploy pipeline) and `min_subgraph_size` (TensorRT)
    deploy_arch = None  # None: the registered name
    min_subgraph_size = 3
    # the feeds `network` depends on (post-processing may read more, e.g. im_shape)
    network_feeds = ("image",)
    # family-specific top-level config keys, besides the sections named after registered components
    config_keys = ()

    # the feeds of the eval/infer programs, in order (a family that rescales by `scale_factor` lists it)
    eval_feeds = ("image", "im_shape")

    def input_specs(self, mode, image_shape):
        """(name, shape, dtype) of each feed; -1 marks a dimension that varies per batch."""
        if mode == "train":
            return [("image", [-1, *image_shape], "float32"), *self.train_specs(image_shape)]
        specs = {"image": ([-1, *image_shape], "float32"), "im_shape": ([-1, 2], "int32"),
                 "scale_factor": ([-1, 2], "float32")}
        return [(name, *specs[name]) for name in self.eval_feeds]

    @staticmethod
    def eval_inputs(image, original_shape):
        """Every eval/infer feed a detector may take, for one preprocessed CHW `image` of an original
        (h, w) image: callers (export, infer) keep those the program asks for."""
        h, w = original_shape
        return {"image": image[None].astype("float32"), "im_shape": np.array([[h, w]], dtype="int32"),
                "scale_factor": np.array([[image.shape[1] / h, image.shape[2] / w]], dtype="float32")}

    def forward(self, inputs, mode="train"):
        with legacy_ops():  # heads, assigners and losses call functions legacy programs cannot build directly
            if mode == "train":
                return {"loss": self.loss(inputs)}
            bbox, bbox_num, network = self.predict(inputs)
        return {"bbox": bbox, "bbox_num": bbox_num, "network": list(network)}

    def train_specs(self, image_shape):
        raise NotImplementedError(f"{type(self).__name__} must define train_specs(image_shape)")

    def loss(self, inputs):
        raise NotImplementedError(f"{type(self).__name__} must define loss(inputs)")

    def predict(self, inputs):
        raise NotImplementedError(f"{type(self).__name__} must define predict(inputs)")
