"""Conv + BatchNorm with explicit, stable parameter names (users type them into `--pruned_params`)."""
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import KaimingNormal, Normal
from paddle.regularizer import L2Decay


# activations by the names PaddleDetection's configs give them
ACTIVATIONS = {"swish": F.swish, "hard_swish": F.hardswish, "hardswish": F.hardswish, "hardsigmoid": F.hardsigmoid,
               "relu": F.relu, "relu6": F.relu6, "leaky_relu": F.leaky_relu}


def activate(x, act):
    """`x` through the activation a config names (None: unchanged)."""
    if act is None:
        return x
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{act}'; use one of {', '.join(ACTIVATIONS)} or none")
    return ACTIVATIONS[act](x)


def conv2d(in_channels, out_channels, kernel_size, weight_name, stride=1, groups=1, bias_name=None,
           initializer=None, bias_init=None):
    """A 'same'-padded conv whose filter is `weight_name` (and bias `bias_name`, undecayed; no bias if None)."""
    bias = False if bias_name is None else ParamAttr(name=bias_name, initializer=bias_init, regularizer=L2Decay(0.0))
    return nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2,
                     groups=groups, weight_attr=ParamAttr(name=weight_name, initializer=initializer or KaimingNormal()),
                     bias_attr=bias)


def batch_norm(channels, names):
    """BatchNorm whose (scale, offset, mean, variance) are `names`. Scale and offset get no weight decay
    (decaying them only shrinks the normalisation, never regularises)."""
    scale, offset, mean, var = names
    return nn.BatchNorm(channels, param_attr=ParamAttr(name=scale, regularizer=L2Decay(0.0)),
                        bias_attr=ParamAttr(name=offset, regularizer=L2Decay(0.0)),
                        moving_mean_name=mean, moving_variance_name=var)


class ConvBN(nn.Layer):
    """conv (no bias) -> batch norm -> activation.

    `weight_name` names the conv filter; `bn_names` = (scale, offset, mean, variance) names the BN tensors.
    """

    def __init__(self, in_channels, out_channels, kernel_size, weight_name, bn_names, stride=1, groups=1,
                 act="relu", init="kaiming"):
        super().__init__()
        initializer = KaimingNormal() if init == "kaiming" else Normal(0.0, 0.01)
        self.conv = conv2d(in_channels, out_channels, kernel_size, weight_name, stride, groups, initializer=initializer)
        self.bn = batch_norm(out_channels, bn_names)
        self.act = act

    def forward(self, x):
        x = self.bn(self.conv(x))
        if self.act == "relu":
            return F.relu(x)
        if self.act == "leaky":
            return F.leaky_relu(x, 0.1)
        return x
