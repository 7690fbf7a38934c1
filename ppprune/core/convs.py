"""The convolutions ppprune prunes: their op types, output-channel axes and filters."""

CONV_TYPES = {"conv2d": 0, "depthwise_conv2d": 0, "conv2d_transpose": 1}  # op type -> output-channel axis


def conv_weights(view):
    """Names of the conv filters of a view, in program order."""
    names = []
    for op in view.ops:
        if op.type in CONV_TYPES:
            name = view.persistable_name(op.ins("filter")[0])
            if name and name not in names:
                names.append(name)
    return names
