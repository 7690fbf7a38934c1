"""Dygraph models and checks shared by the dygraph tests: random-BN models, snapshots and a deploy round trip."""
import os

import numpy as np
import paddle
from paddle.static import InputSpec
from paddle.vision.models import mobilenet_v1, mobilenet_v2, resnet18, squeezenet1_0

from ppprune import deploy
from ppprune.dygraph import FPGMFilterPruner, L1NormFilterPruner, L2NormFilterPruner

SHAPE = [1, 3, 32, 32]


def make(ctor, seed=0):
    """A model in eval mode whose BN statistics and affine terms are random, so zeroed channels matter."""
    paddle.seed(seed)
    model = ctor()
    rng = np.random.RandomState(seed)
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.BatchNorm2D):
            for t in (layer.weight, layer.bias, layer._mean):
                t.set_value(rng.uniform(-1, 1, t.shape).astype("float32"))
            layer._variance.set_value(rng.uniform(0.5, 1.5, layer._variance.shape).astype("float32"))
    model.eval()
    return model


def snapshot(model):
    keep = ("_in_channels", "_out_channels", "_groups", "_num_features")
    tensors = {n: t.numpy().copy() for n, t in model.state_dict().items()}
    attrs = {n: {k: getattr(layer, k) for k in keep if hasattr(layer, k)} for n, layer in model.named_sublayers()}
    return tensors, attrs


def assert_same(a, b):
    assert a[1] == b[1]
    assert a[0].keys() == b[0].keys()
    for n in a[0]:
        assert a[0][n].shape == b[0][n].shape, n
        np.testing.assert_array_equal(a[0][n], b[0][n], err_msg=n)


def assert_attrs_true(model):
    """Layer attributes describe the parameters they hold."""
    for name, layer in model.named_sublayers():
        if isinstance(layer, paddle.nn.Conv2D):
            w = layer.weight.shape
            assert (layer._out_channels, layer._in_channels) == (w[0], w[1] * layer._groups), name
        if isinstance(layer, paddle.nn.BatchNorm2D):
            assert layer._num_features == layer.weight.shape[0] == layer._mean.shape[0], name


def run_inference(model, x, folder):
    prefix = os.path.join(folder, "model")
    paddle.jit.save(model, prefix, input_spec=[InputSpec([None] + SHAPE[1:], "float32")])
    predictor = deploy.create_predictor(prefix)
    return deploy.run(predictor, {predictor.input_names[0]: x})[0]


MODELS = {
    "mobilenet_v1": (lambda: mobilenet_v1(scale=0.25), L1NormFilterPruner),
    "mobilenet_v2": (lambda: mobilenet_v2(scale=0.25), FPGMFilterPruner),
    "resnet18": (lambda: resnet18(num_classes=10), L2NormFilterPruner),
    "squeezenet": (lambda: squeezenet1_0(num_classes=10), L1NormFilterPruner),
}
