# nnabla's linear-regression tutorial, written for nnabla itself.
# tests/test_tutorial.py runs it with `nnabla` replaced by `symcompile` in the imports only.
import numpy as np
import nnabla as nn
import nnabla.functions as F
import nnabla.initializer as I
import nnabla.solvers as S

np.random.seed(0)
batch_size = 32

x = nn.Variable((batch_size, 1))
y_true = nn.Variable((batch_size, 1))
a = nn.parameter.get_parameter_or_create("a", (1, 1), initializer=I.UniformInitializer((0.5, 1.5)))
b = nn.parameter.get_parameter_or_create("b", (1, 1), initializer=I.UniformInitializer((0.5, 1.5)))
y = F.add2(F.mul2(a, x), b)
loss = F.mean(F.pow_scalar(F.sub2(y_true, y), 2))

params = nn.get_parameters()
print(params)


def data():
    xs = np.random.randn(batch_size, 1)
    return xs, 0.3 * xs + 1.5 + 0.01 * np.random.randn(batch_size, 1)


solver = S.Sgd(lr=0.01)
solver.set_parameters(nn.get_parameters())

x.d, y_true.d = data()
loss.forward()
solver.zero_grad()
loss.backward()
first_a, first_b = a.d.copy(), b.d.copy()
first_ga, first_gb = a.g.copy(), b.g.copy()
solver.update()
after_a, after_b = a.d.copy(), b.d.copy()

# Gradients accumulate.
loss.forward()
solver.zero_grad()
loss.backward()
once = a.g.copy()
loss.backward()
twice = a.g.copy()

# Gradients edited by hand are used as they are.
a.g = 15
b.g = -10
manual_a, manual_b = a.d.copy(), b.d.copy()
solver.update()
manual_after_a, manual_after_b = a.d.copy(), b.d.copy()

for i in range(200):
    x.d, y_true.d = data()
    loss.forward()
    solver.zero_grad()
    loss.backward()
    solver.update()
    if i % 50 == 0:
        print(i, loss.d)
print("a =", a.d, "b =", b.d)


def show_result():
    # nnabla's tutorial reads size-1 arrays as Python numbers (NumPy 2.4 refuses float()
    # of an array with axes; .d and .g must still allow it, as nnabla users expect).
    print("a = {:.4f}, b = {:.4f}, loss = {:.6f}".format(float(a.d), float(b.d), float(loss.d)))
    print(f"d loss / d a = {float(a.g):.6f}, d loss / d b = {float(b.g):.6f}")


show_result()
