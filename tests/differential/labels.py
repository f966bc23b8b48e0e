"""Class labels of softmax_cross_entropy: truncated to integers as nnabla casts them,
-1 ignores a row."""

from _api import F, nn, np, report

np.random.seed(0)
x = nn.Variable((4, 5), need_grad=True)
t = nn.Variable((4, 1))
x.d = np.random.randn(4, 5)
t.d = np.array([[1.7], [0], [-1], [4.9]])
loss = F.softmax_cross_entropy(x, t)
loss.forward()
x.grad.zero()
loss.backward()
report("loss per row", loss.d)
report("x.g", x.g)
