"""Conv + BatchNorm with explicit, stable parameter names (users type them into `--pruned_params`)."""
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import KaimingNormal, Normal
from paddle.regularizer import L2Decay


class ConvBN(nn.Layer):
    """conv (no bias) -> batch norm -> activation.

    `weight_name` names the conv filter; `bn_names` = (scale, offset, mean, variance) names the BN tensors.
    BN scale/offset get no weight decay (decaying them only shrinks the normalisation, never regularises).
    """

    def __init__(self, in_channels, out_channels, kernel_size, weight_name, bn_names, stride=1, groups=1,
                 act="relu", init="kaiming"):
        super().__init__()
        initializer = KaimingNormal() if init == "kaiming" else Normal(0.0, 0.01)
        self.conv = nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride,
                              padding=(kernel_size - 1) // 2, groups=groups,
                              weight_attr=ParamAttr(name=weight_name, initializer=initializer), bias_attr=False)
        scale, offset, mean, var = bn_names
        self.bn = nn.BatchNorm(out_channels,
                               param_attr=ParamAttr(name=scale, regularizer=L2Decay(0.0)),
                               bias_attr=ParamAttr(name=offset, regularizer=L2Decay(0.0)),
                               moving_mean_name=mean, moving_variance_name=var)
        self.act = act

    def forward(self, x):
        x = self.bn(self.conv(x))
        if self.act == "relu":
            return F.relu(x)
        if self.act == "leaky":
            return F.leaky_relu(x, 0.1)
        return x
