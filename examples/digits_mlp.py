"""An MLP on scikit-learn's 8x8 handwritten digits, trained through generated code.

The network is the one of nnabla's "by examples" tutorial, built with the same API
(``PF.affine`` layers in parameter scopes, tanh, ``F.softmax_cross_entropy``), then
compiled once: every training step is a call of the generated, fused ``sgd_step``
(see generated/digits_mlp.py), and accuracy on a held-out 20 % split is measured with
the generated ``forward`` of the same network built for the evaluation batch.

Run it:                 python examples/digits_mlp.py          (needs scikit-learn:
                                                                pip install ".[examples]")
Compile it on its own:  symcompile compile examples/digits_mlp.py -o generated/
Read its derivatives:   symcompile show examples/digits_mlp.py

As a model file it follows symcompile's convention: `build()` returns the loss (here
with the handles training needs, as a tuple whose first item is the loss).
"""

import argparse
import sys
import time

import numpy as np

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF
from symcompile.runtime.cache import cache_dir

BATCH_SIZE = 64
HIDDEN = (64, 32)
CLASSES = 10


def mlp(x, hidden=HIDDEN):
    """tanh layers in scopes mlp/affine1, mlp/affine2, ...; a linear classifier on top."""
    h = x
    with nn.parameter_scope("mlp"):
        for i, size in enumerate(hidden):
            with nn.parameter_scope(f"affine{i + 1}"):
                h = F.tanh(PF.affine(h, size))
        with nn.parameter_scope("classifier"):
            y = PF.affine(h, CLASSES)
    return y


def build(batch_size=BATCH_SIZE):
    """The training graph: logits of a batch of 64-pixel images and their mean loss."""
    x = nn.Variable((batch_size, 64))
    t = nn.Variable((batch_size, 1))
    y = mlp(x)
    loss = F.mean(F.softmax_cross_entropy(y, t))
    return loss, x, t, y


def load_digits(seed=0):
    """Pixels scaled to [0, 1] and labels, split 80 % / 20 % at random (seeded)."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        sys.exit("this example needs scikit-learn: pip install 'symcompile[examples]'")
    digits = sklearn_digits()
    images = (digits.data / 16.0).astype(np.float32)
    labels = digits.target.astype(np.float32).reshape(-1, 1)
    order = np.random.RandomState(seed).permutation(len(images))
    split = int(0.8 * len(images))
    train, test = order[:split], order[split:]
    return images[train], labels[train], images[test], labels[test]


def progress(epoch, epochs, loss, train_acc, test_acc, seconds):
    width = 20
    done = int(width * epoch / epochs)
    bar = "#" * done + "." * (width - done)
    print(f"epoch {epoch:3d}/{epochs} [{bar}] loss {loss:.4f}  train {train_acc:6.2%}  "
          f"test {test_acc:6.2%}  {seconds:5.1f} s", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train an MLP on the 8x8 digits.")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    train_x, train_t, test_x, test_t = load_digits(args.seed)
    nn.seed(args.seed)
    nn.clear_parameters()
    loss, *_ = build()
    out = cache_dir() / "examples"
    trainer = nn.compile(loss, name="digits_mlp", output_dir=out).module

    def predictor(count):
        """The generated forward() of the same network for `count` images at once."""
        logits = mlp(nn.Variable((count, 64)))
        return nn.compile(logits, name=f"digits_mlp_logits_{count}", output_dir=out,
                          solver=None).module.forward

    predict = {len(train_x): predictor(len(train_x)), len(test_x): predictor(len(test_x))}
    params = {spec["argument"]: nn.get_parameters()[name].d
              for name, spec in trainer.PARAMETERS.items()}
    print(f"compiled in {time.perf_counter() - started:.2f} s: {len(params)} parameter arrays, "
          f"{sum(p.size for p in params.values())} weights; training with {trainer.__file__}")

    def accuracy(images, labels):
        logits = predict[len(images)](images, **params)
        return float(np.mean(logits.argmax(axis=1) == labels.ravel()))

    rng = np.random.RandomState(args.seed)
    steps = len(train_x) // BATCH_SIZE
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(train_x))
        total = 0.0
        for step in range(steps):
            batch = order[step * BATCH_SIZE:(step + 1) * BATCH_SIZE]
            total += float(trainer.sgd_step(train_x[batch], train_t[batch], **params,
                                            lr=args.lr))
        if epoch % 5 == 0 or epoch in (1, args.epochs):
            progress(epoch, args.epochs, total / steps, accuracy(train_x, train_t),
                     accuracy(test_x, test_t), time.perf_counter() - started)
    final = accuracy(test_x, test_t)
    print(f"held-out accuracy: {final:.2%} on {len(test_x)} images "
          f"({time.perf_counter() - started:.1f} s)")
    return final


if __name__ == "__main__":
    main()
