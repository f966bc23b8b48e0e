"""Gradients of intermediate variables after backward() (nnabla's python_api tutorial
prints sigmoid_output.g): overwritten by each backward, never accumulated."""

from _api import F, nn, np, report

np.random.seed(0)
x = nn.Variable([2, 3], need_grad=True)
x.d = np.random.randn(2, 3)
s = F.sigmoid(x)
t = F.mul_scalar(s, 3.0)
out = F.reduce_sum(t)
out.forward()
x.grad.zero()
out.backward()
report("s.g", s.g)
report("t.g", t.g)
report("root out.g (not written)", out.g)
out.backward()
report("s.g after a second backward", s.g)
report("x.g after a second backward", x.g)
out.backward(grad=2)
report("s.g with grad=2", s.g)
s.g = 5
out.backward()
report("s.g set to 5, then backward", s.g)

y = F.tanh(x)
y.persistent = True
z = F.sum(y * y)
z.forward()
z.backward(clear_buffer=True)
report("persistent y.g", y.g)

w = F.exp(x)
v = F.sum(w * 2)
v.forward()
v.backward()
report("w.g", w.g)

r = F.tanh(x)
r.forward()
r.backward()
report("non-scalar root r.g (not written)", r.g)
