"""nnabla's linear-regression tutorial, running on code symcompile generated.

Fit y = a*x + b to noisy samples of y = 0.3*x + 1.5 with the mean squared error and
plain SGD (lr 0.01, 200 updates), exactly as the nnabla tutorial does. Only the
imports differ from nnabla: ``import symcompile as nn`` (and F, S likewise). Every
forward, backward and update runs NumPy code that symcompile generated from SymPy
derivatives; see generated/linear_regression.py for the fused version.

Run it:                 python examples/linear_regression.py
Compile it on its own:  symcompile compile examples/linear_regression.py -o generated/
Read its derivatives:   symcompile show examples/linear_regression.py

As a model file for the command line, this file follows symcompile's convention: a
function `build()` that builds the graph and returns the loss (here with the handles
the tutorial needs, as a tuple whose first item is the loss).
"""

import numpy as np

import symcompile as nn
import symcompile.functions as F
import symcompile.solvers as S

BATCH_SIZE = 32
A_TRUE, B_TRUE = 0.3, 1.5


def build(batch_size=BATCH_SIZE):
    """The tutorial's graph: a line y = a*x + b and its mean squared error."""
    x = nn.Variable((batch_size, 1))
    y_true = nn.Variable((batch_size, 1))
    a = nn.parameter.get_parameter_or_create(
        "a", (1, 1), initializer=nn.initializer.UniformInitializer((0.5, 1.5)))
    b = nn.parameter.get_parameter_or_create(
        "b", (1, 1), initializer=nn.initializer.UniformInitializer((0.5, 1.5)))
    y = F.add2(F.mul2(a, x), b)
    loss = F.mean(F.pow_scalar(F.sub2(y_true, y), 2))
    return loss, x, y_true, y


def sample(batch_size=BATCH_SIZE):
    """A batch of (x, y) with y = 0.3 x + 1.5 + noise."""
    x = np.random.randn(batch_size, 1)
    return x, A_TRUE * x + B_TRUE + 0.01 * np.random.randn(batch_size, 1)


def main():
    np.random.seed(0)
    loss, x, y_true, y = build()
    print("Parameters:", nn.get_parameters())

    solver = S.Sgd(lr=0.01)
    solver.set_parameters(nn.get_parameters())
    a, b = nn.get_parameters()["a"], nn.get_parameters()["b"]

    # One step by hand: forward, zero the gradients, backward, update.
    x.d, y_true.d = sample()
    loss.forward()
    solver.zero_grad()
    loss.backward()
    print(f"loss {float(loss.d):.6f}  d loss/d a {a.g.item():.6f}  d loss/d b {b.g.item():.6f}")
    before = a.d.copy()
    solver.update()
    print(f"a moved from {before.item():.7f} to {a.d.item():.7f} (= a - lr * d loss/d a)")

    # Gradients accumulate: a second backward() without zero_grad() doubles them.
    solver.zero_grad()
    loss.backward()
    once = a.g.copy()
    loss.backward()
    print(f"after two backward() calls a.g = {a.g.item():.6f} = 2 x {once.item():.6f}")

    # Gradients can be edited by hand before update().
    a.g = 15
    b.g = -10
    solver.update()

    losses = []
    for _ in range(200):
        x.d, y_true.d = sample()
        loss.forward()
        solver.zero_grad()
        loss.backward()
        solver.update()
        losses.append(float(loss.d))
    print(f"after 200 updates: a = {a.d.item():.4f} (true {A_TRUE}), "
          f"b = {b.d.item():.4f} (true {B_TRUE}), loss = {losses[-1]:.6f}")
    save_plots(x.d, y_true.d, y.d, losses)


def save_plots(xs, ys, fitted, losses):
    """The tutorial's two plots, as PNG files, when matplotlib is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping the plots "
              "(pip install 'symcompile[examples]' to get them)")
        return
    order = np.argsort(xs.ravel())
    fig, ax = plt.subplots()
    ax.scatter(xs.ravel(), ys.ravel(), s=10, label="data")
    ax.plot(xs.ravel()[order], fitted.ravel()[order], color="C1", label="fitted line")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend()
    fig.savefig("linear_regression_fit.png", dpi=100)
    fig, ax = plt.subplots()
    ax.plot(losses)
    ax.set_xlabel("update")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    fig.savefig("linear_regression_loss.png", dpi=100)
    print("saved linear_regression_fit.png and linear_regression_loss.png")


if __name__ == "__main__":
    main()
