"""The Variable API around a graph: function_references, equality of unlinked variables,
reset_shape (values kept or cleared, graphs built on a leaf taking its new shape),
rewire_on (nnabla's docstring example) and no_grad (static and dynamic)."""

from _api import PF, F, nn, np, report

np.random.seed(0)

# function_references: the functions reading a variable, in call order.
x = nn.Variable((2, 3), need_grad=True)
x.d = np.random.randn(2, 3)
y = F.tanh(x)
z = F.sigmoid(x)
report("references of x", len(x.function_references))
report("references of x: the latest first",
       [f.info.type_name == t for f, t in zip(x.function_references, ["Sigmoid", "Tanh"],
                                                      strict=True)])
del z
report("references of x once the sigmoid's output is gone", len(x.function_references))

# Equality: a variable equals its unlinked copies (they share its arrays).
u = x.get_unlinked_variable()
report("unlinked == original, hashes equal, other != x",
       [u == x, hash(u) == hash(x), nn.Variable((2, 3)) == x, y.parent.inputs[0] == x])

# reset_shape: the same size keeps the values (C order); force=True resizes.
a = nn.Variable((2, 3), need_grad=True)
a.d = np.arange(6).reshape(2, 3)
a.reset_shape((3, 2))
report("same-size reset keeps the values", a.d)
b = F.sum(F.tanh(a) * 2.0, axis=1)
b.forward()
report("graph on the reshaped leaf", b.d)
a.reset_shape((4, 2), force=True)
a.d = np.random.randn(4, 2)
b.forward()
report("graph after resizing the leaf: shape", b.shape)
report("graph after resizing the leaf: values", b.d)
a.grad.zero()
b.backward()
report("gradient after resizing the leaf", a.g)

# rewire_on: graph A put on top of graph B (nnabla's example).
xa = nn.Variable((2, 8), need_grad=True)
ya = F.tanh(PF.affine(xa, 10, name="a"))
xb = nn.Variable((2, 16), need_grad=True)
yb = F.tanh(PF.affine(F.tanh(PF.affine(xb, 8, name="b1")), 8, name="b2"))
xa.rewire_on(yb)
report("after rewire_on: yb has no parent, xa has Tanh",
       [yb.parent is None, xa.parent.info.type_name == "Tanh"])
xb.d = np.random.randn(2, 16)
ya.forward()
report("rewired forward", ya.d)
xb.grad.zero()
for p in nn.get_parameters().values():
    p.grad.zero()
ya.backward()
report("rewired backward reaches xb", xb.g)
report("rewired backward reaches b1's weight", nn.get_parameters()["b1/affine/W"].g)

# no_grad: static graphs are built as usual; dynamic ones are cut from the graph.
with nn.no_grad():
    s = F.tanh(x)
report("static no_grad: need_grad, has parent", [s.need_grad, s.parent is not None])
with nn.auto_forward(), nn.no_grad():
    d = F.tanh(x)
report("dynamic no_grad: need_grad, has parent", [d.need_grad, d.parent is not None])
report("dynamic no_grad: values", d.d)
loss = F.sum(d * 3.0)
x.grad.zero()
loss.forward()
loss.backward()
report("dynamic no_grad: no gradient reaches x", x.g)
