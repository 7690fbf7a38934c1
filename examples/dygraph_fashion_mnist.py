"""The PaddleSlim dygraph pruning tutorial, end to end on Fashion-MNIST with ppprune.

Train a small MobileNetV1-style Layer, measure each conv's sensitivity, prune 40% of the FLOPs by
sensitivity with L1NormFilterPruner, fine-tune with the optimizer built before pruning, and report the
accuracy at each stage. Needs the Debian package dataset-fashion-mnist.

    python examples/dygraph_fashion_mnist.py --train-size 10000 --epochs 3
"""
import argparse
import time

import numpy as np
import paddle
import paddle.nn as nn

from ppprune import L1NormFilterPruner
from ppprune.data.fashion_mnist import MEAN, STD, load_fashion_mnist
from ppprune.dygraph import dygraph_flops

INPUT = [1, 1, 28, 28]


def conv_bn(cin, cout, k, stride=1, groups=1):
    return nn.Sequential(nn.Conv2D(cin, cout, k, stride, k // 2, groups=groups, bias_attr=False),
                         nn.BatchNorm2D(cout), nn.ReLU())


class MobileNetV1Mini(nn.Layer):
    """MobileNetV1's shape for 28x28 gray images: a stem, depthwise-separable blocks, pool, fc."""

    def __init__(self, num_classes=10):
        super().__init__()
        blocks = [(16, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2), (128, 128, 1)]  # (in, out, dw stride)
        layers = [conv_bn(1, 16, 3)]
        for cin, cout, stride in blocks:
            layers += [conv_bn(cin, cin, 3, stride, groups=cin), conv_bn(cin, cout, 1)]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.fc(paddle.flatten(x, 1))


def load(split, size):
    images, labels = load_fashion_mnist(split)
    x = ((images[:size].astype("float32") / 255.0 - MEAN) / STD)[:, None]
    return x, labels[:size]


def train(net, opt, data, epochs, batch_size, rng):
    x, y = data
    net.train()
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            loss = nn.functional.cross_entropy(net(paddle.to_tensor(x[idx])), paddle.to_tensor(y[idx][:, None]))
            loss.backward()
            opt.step()
            opt.clear_grad()


@paddle.no_grad()
def evaluate(net, data, batch_size=500):
    x, y = data
    net.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        pred = net(paddle.to_tensor(x[i:i + batch_size])).numpy().argmax(axis=1)
        correct += int((pred == y[i:i + batch_size]).sum())
    return correct / len(x)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-size", type=int, default=10000, help="training images used (of 60000)")
    parser.add_argument("--test-size", type=int, default=2000, help="test images used (of 10000)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--pruned-flops", type=float, default=0.4, help="share of the FLOPs to remove")
    parser.add_argument("--tolerance", type=float, default=0.01, help="allowed miss of --pruned-flops")
    parser.add_argument("--ratios", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9",
                        help="pruning ratios at which sensitivities are measured")
    parser.add_argument("--sen-file", default=None,
                        help="where sensitivities are saved; a rerun with the same file resumes (same weights!)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    paddle.disable_static()
    paddle.seed(args.seed)
    rng = np.random.RandomState(args.seed)
    train_data, test_data = load("train", args.train_size), load("test", args.test_size)
    net = MobileNetV1Mini()
    opt = paddle.optimizer.Momentum(args.lr, momentum=0.9, parameters=net.parameters())

    start = time.time()
    train(net, opt, train_data, args.epochs, args.batch_size, rng)
    before = evaluate(net, test_data)
    print(f"trained {args.epochs} epochs on {len(train_data[0])} images in {time.time() - start:.1f}s")

    # The optimizer is handed over so its momentum follows the pruned parameters.
    pruner = L1NormFilterPruner(net, INPUT, opt=opt)
    start = time.time()
    sen = pruner.sensitive(eval_func=lambda: evaluate(net, test_data), sen_file=args.sen_file,
                           ratios=[float(r) for r in args.ratios.split(",")])
    print(f"sensitivities of {len(sen)} convs in {time.time() - start:.1f}s")
    for name, losses in sen.items():
        print(f"  {name}: " + ", ".join(f"{r}: {loss:.3f}" for r, loss in sorted(losses.items())))

    flops = dygraph_flops(net, INPUT)
    last_conv = pruner.conv_weights()[-1]  # as in the tutorial, the conv feeding the head is kept
    plan = pruner.sensitive_prune(args.pruned_flops, skip_vars=[last_conv], tolerance=args.tolerance)
    pruned = dygraph_flops(net, INPUT)
    after = evaluate(net, test_data)
    print(f"FLOPs before pruning: {flops}, after: {pruned}")
    print(f"pruned FLOPs: {plan.pruned_flops:.2%} (measured {1 - pruned / flops:.2%})")
    print("pruned channels: " + ", ".join(f"{e.param} -{len(e.pruned)}/{e.size}" for e in plan.entries))

    start = time.time()
    train(net, opt, train_data, args.finetune_epochs, args.batch_size, rng)
    tuned = evaluate(net, test_data)
    print(f"fine-tuned {args.finetune_epochs} epochs in {time.time() - start:.1f}s")
    print(f"accuracy before pruning: {before:.4f}")
    print(f"accuracy after pruning: {after:.4f}")
    print(f"accuracy after fine-tuning: {tuned:.4f}")


if __name__ == "__main__":
    main()
