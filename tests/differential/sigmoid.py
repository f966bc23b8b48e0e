"""F.sigmoid in float32 across its tails (nnabla computes 1 / (1 + exp(-x)))."""

from _api import F, nn, np, report

z = nn.Variable((9,), need_grad=True)
z.d = np.array([-87, -50, -20, -17, -5, 0, 5, 17, 50], np.float32)
s = F.sigmoid(z)
s.forward()
report("sigmoid", s.d)
z.grad.zero()
s.backward()
report("sigmoid'", z.g)
