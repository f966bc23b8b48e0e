"""nnabla's trigonometric and hyperbolic functions and their inverses in float32: values
and gradients inside each domain, and atan2 in all four quadrants with broadcasting."""

from _api import F, nn, np, report

DOMAINS = {
    "tan": (-1.2, 1.2), "sinh": (-5.0, 5.0), "cosh": (-5.0, 5.0),
    "asin": (-0.9, 0.9), "acos": (-0.9, 0.9), "atan": (-10.0, 10.0),
    "asinh": (-10.0, 10.0), "acosh": (1.1, 10.0), "atanh": (-0.9, 0.9),
}

for name, (low, high) in DOMAINS.items():
    x = nn.Variable((7,), need_grad=True)
    x.d = np.linspace(low, high, 7, dtype=np.float32)
    y = getattr(F, name)(x)
    loss = F.sum(y * y)  # a seed that differs per element
    loss.forward()
    x.grad.zero()
    loss.backward()
    report(f"{name}(x)", y.d)
    report(f"d sum({name}(x)**2) / dx", x.g)

x0 = nn.Variable((2, 3), need_grad=True)
x1 = nn.Variable((1, 3), need_grad=True)
x0.d = np.array([[1.0, -0.5, 2.0], [-1.0, 0.25, -3.0]], np.float32)
x1.d = np.array([[0.5, -2.0, -1.0]], np.float32)
angle = F.atan2(x0, x1)
loss = F.sum(angle * angle)
loss.forward()
x0.grad.zero()
x1.grad.zero()
loss.backward()
report("atan2(x0, x1)", angle.d)
report("d sum(atan2**2) / dx0", x0.g)
report("d sum(atan2**2) / dx1", x1.g)
