"""Double backward through batch normalization and leaky_relu (nn.grad, then backward()):
the gradient of a gradient penalty, as nnabla 1.39 computes it."""

from _api import PF, F, nn, np, report

rng = np.random.default_rng(0)
x = nn.Variable.from_numpy_array(rng.standard_normal((4, 3, 2)), need_grad=True)
gamma = nn.Variable.from_numpy_array(rng.uniform(0.5, 1.5, (1, 3, 1)), need_grad=True)
beta = nn.Variable.from_numpy_array(np.zeros((1, 3, 1)), need_grad=True)
weights = nn.Variable.from_numpy_array(rng.standard_normal((4, 3, 2)))
y = F.batch_normalization(x, beta, gamma, None, None, batch_stat=True)
s = F.sum(y * weights)
gx, = nn.grad([s], [x])
loss = F.sum(gx ** 2)
loss.forward()
x.grad.zero()
gamma.grad.zero()
loss.backward()
report("batch normalization: penalty", loss.d)
report("batch normalization: d penalty / d x", x.g)
report("batch normalization: d penalty / d gamma", gamma.g)

# A critic of leaky_relu layers and its gradient penalty, WGAN-GP style.
h = nn.Variable.from_numpy_array(rng.standard_normal((5, 4)), need_grad=True)
score = F.sum(PF.affine(F.leaky_relu(PF.affine(h, 6, name="c1"), 0.2), 1, name="c2"))
gh, = nn.grad([score], [h])
penalty = F.mean((F.sum(gh ** 2, axis=1) ** 0.5 - 1) ** 2)
penalty.forward()
for p in nn.get_parameters().values():
    p.grad.zero()
penalty.backward()
report("leaky_relu critic: penalty", penalty.d)
report("leaky_relu critic: d penalty / d c1/affine/W", nn.get_parameters()["c1/affine/W"].g)
