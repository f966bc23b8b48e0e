"""A LeNet-style CNN on scikit-learn's digits, upsampled to 16x16, trained with Adam.

LeCun's LeNet-5 shape, with batch normalization after the convolutions: convolution
6 5x5 (pad 2) + BN + relu + max pooling 2x2, convolution 16 5x5 (pad 2) + BN + relu +
max pooling 2x2, affine 120 + relu, affine 84 + relu, affine 10, softmax cross-entropy.
The 8x8 digits are upsampled to 16x16 (each pixel repeated 2x2, `np.kron`) so that 5x5
kernels see a digit's strokes rather than most of the digit; training batches are
shifted at random by up to a pixel (there is no dropout yet: this is the regularizer).
It trains with nnabla's loop (``x.d, t.d = ...; loss.forward(); solver.zero_grad();
loss.backward(); solver.update()`` with ``S.Adam``), which runs generated code.
Held-out accuracy (a seeded 20 % split) comes from the inference graph: the same
`lenet()` built with ``test=True`` (batch normalization with batch_stat=False), sharing
the training graph's parameters and normalizing with the running statistics training
kept. With the defaults it reaches 98.3-99.4 % held-out on seeds 0-4 (400 Adam steps,
about 10 s on two cores with OPENBLAS_NUM_THREADS=1).

Run it:                 python examples/lenet.py               (needs scikit-learn:
                                                                pip install ".[examples]")
Compile it on its own:  symcompile compile examples/lenet.py -o generated/
Read its derivatives:   symcompile show examples/lenet.py
"""

import argparse
import sys
import time

import numpy as np

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF
import symcompile.solvers as S

BATCH_SIZE = 64
SIDE = 16  # the 8x8 digits, each pixel repeated UPSAMPLE x UPSAMPLE
UPSAMPLE = SIDE // 8
CLASSES = 10
MAPS = (6, 16)  # LeNet-5's
HIDDEN = (120, 84)  # LeNet-5's
SHIFT = 1  # training images moved by up to a pixel; held-out 98.3-99.4 % on seeds 0-4


def lenet(x, test=False):
    """conv 6 5x5 + BN + relu + max pool, conv 16 5x5 + BN + relu + max pool, affine 120
    + relu, affine 84 + relu, affine 10; scopes lenet/conv1, lenet/conv2, lenet/fc3, ..."""
    with nn.parameter_scope("lenet"):
        h = x
        for i, maps in enumerate(MAPS):
            with nn.parameter_scope(f"conv{i + 1}"):
                h = PF.convolution(h, maps, (5, 5), pad=(2, 2))
                h = F.relu(PF.batch_normalization(h, batch_stat=not test))
                h = F.max_pooling(h, (2, 2))
        for i, size in enumerate(HIDDEN):
            with nn.parameter_scope(f"fc{i + 3}"):
                h = F.relu(PF.affine(h, size))
        with nn.parameter_scope("classifier"):
            y = PF.affine(h, CLASSES)
    return y


def build(batch_size=BATCH_SIZE):
    """The training graph: logits of a batch of 1x16x16 images and their mean loss."""
    x = nn.Variable((batch_size, 1, SIDE, SIDE))
    t = nn.Variable((batch_size, 1))
    y = lenet(x)
    loss = F.mean(F.softmax_cross_entropy(y, t))
    return loss, x, t, y


def load_digits(seed=0):
    """Images (N, 1, 16, 16) scaled to [0, 1] and labels, split 80 % / 20 % (seeded)."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        sys.exit("this example needs scikit-learn: pip install 'symcompile[examples]'")
    digits = sklearn_digits()
    block = np.ones((1, UPSAMPLE, UPSAMPLE), np.float32)
    images = np.kron(digits.images / 16.0, block).astype(np.float32)[:, None]
    labels = digits.target.astype(np.float32).reshape(-1, 1)
    order = np.random.RandomState(seed).permutation(len(images))
    split = int(0.8 * len(images))
    train, test = order[:split], order[split:]
    return images[train], labels[train], images[test], labels[test]


def shifted(images, rng, most):
    """Each image moved by up to `most` pixels along each axis (zeros fill in): the
    augmentation that keeps a small network from learning the digits' exact positions."""
    if most == 0:
        return images
    n, side = len(images), images.shape[-1]
    padded = np.pad(images, ((0, 0), (0, 0), (most, most), (most, most)))
    dy, dx = rng.randint(0, 2 * most + 1, (2, n, 1, 1))
    rows, cols = np.arange(side)[None, :, None] + dy, np.arange(side)[None, None, :] + dx
    return padded[np.arange(n)[:, None, None], 0, rows, cols][:, None]


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train a LeNet-style CNN on the digits.")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam's alpha")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shift", type=int, default=SHIFT,
                        help="shift training images by up to this many pixels (0: off)")
    parser.add_argument("--decay", type=float, default=0.0, help="weight decay")
    parser.add_argument("--every", type=int, default=100,
                        help="print a progress line every this many steps")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    train_x, train_t, test_x, test_t = load_digits(args.seed)
    nn.seed(args.seed)
    nn.clear_parameters()
    loss, x, t, _ = build()
    x_test = nn.Variable(test_x.shape)
    y_test = lenet(x_test, test=True)  # shares the parameters; BN uses running statistics

    def accuracy() -> float:
        x_test.d = test_x
        y_test.forward()
        return float(np.mean(y_test.d.argmax(axis=1) == test_t.ravel()))

    solver = S.Adam(args.lr)
    solver.set_parameters(nn.get_parameters())  # the trainable ones: not the running stats
    rng = np.random.RandomState(args.seed)
    order, position = rng.permutation(len(train_x)), 0
    total, count = 0.0, 0
    for i in range(args.steps):
        if i == 3 * args.steps // 4:  # the last quarter at a tenth of the rate
            solver.set_learning_rate(solver.learning_rate() * 0.1)
        if position + BATCH_SIZE > len(order):
            order, position = rng.permutation(len(train_x)), 0
        batch = order[position:position + BATCH_SIZE]
        position += BATCH_SIZE
        x.d, t.d = shifted(train_x[batch], rng, args.shift), train_t[batch]
        loss.forward()
        solver.zero_grad()
        loss.backward()
        if args.decay:
            solver.weight_decay(args.decay)
        solver.update()
        total, count = total + float(loss.d), count + 1
        if (i + 1) % args.every == 0 or i == 0:
            done = int(20 * (i + 1) / args.steps)
            print(f"step {i + 1:5d}/{args.steps} [{'#' * done}{'.' * (20 - done)}] "
                  f"loss {total / count:.4f}  held-out {accuracy():6.2%}  "
                  f"{time.perf_counter() - started:5.1f} s", flush=True)
            total, count = 0.0, 0
    final = accuracy()
    print(f"held-out accuracy: {final:.2%} on {len(test_x)} images "
          f"({time.perf_counter() - started:.1f} s)")
    return final


if __name__ == "__main__":
    main()
