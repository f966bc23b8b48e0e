"""need_grad: what a gradient reaches, and what a solver then moves (nnabla 1.39's rules).

nnabla's get_parameter_or_create returns an unlinked view of the registered parameter:
setting need_grad on the registered Variable does not change the graph's view (the
gradient still reaches the shared array and the solver moves it), while setting it on
the view the graph uses, or on an intermediate, stops the gradient there.
"""

from _api import PF, F, I, S, nn, np, report

np.random.seed(0)
x = nn.Variable((4, 3))
x.d = np.random.randn(4, 3)

# 1. need_grad=False on the registered parameter (from get_parameters): the graph's view
#    keeps need_grad=True.
h = PF.affine(x, 2)
loss = F.mean(h**2)
W = nn.get_parameters()["affine/W"]
W.need_grad = False
report("grad_only keys after freezing the registered W", len(nn.get_parameters()))
solver = S.Sgd(0.1)
solver.set_parameters(nn.get_parameters(grad_only=False))
loss.forward()
solver.zero_grad()
loss.backward()
report("registered W frozen: W.g", W.g)
before = W.d.copy()
solver.update()
report("registered W frozen: W moves by", W.d - before)

# 2. need_grad=False on the view the graph uses: no gradient, no update.
h.parent.inputs[1].need_grad = False
loss.forward()
solver.zero_grad()
loss.backward()
report("graph's view frozen: W.g", W.g)
before = W.d.copy()
solver.update()
report("graph's view frozen: W moves by", W.d - before)

# 3. A leaf Variable frozen after compiling.
w = nn.Variable((3, 2), need_grad=True)
w.d = np.random.randn(3, 2)
loss2 = F.mean(F.affine(x, w) ** 2)
loss2.forward()
loss2.backward()
report("leaf w.g", w.g)
w.need_grad = False
w.grad.zero()
loss2.forward()
loss2.backward()
report("leaf w.g after need_grad=False", w.g)

# 4. An intermediate frozen: the layers below it get no gradient.
nn.clear_parameters()
hidden = F.tanh(PF.affine(x, 2, name="g"))
out = PF.affine(hidden, 1, name="d")
loss3 = F.mean(out**2)
solver = S.Sgd(0.1)
solver.set_parameters(nn.get_parameters())
loss3.forward()
solver.zero_grad()
loss3.backward()
params = nn.get_parameters()
report("before freezing hidden: g/affine/W.g", params["g/affine/W"].g)
hidden.need_grad = False
loss3.forward()
solver.zero_grad()
loss3.backward()
report("hidden frozen: g/affine/W.g", params["g/affine/W"].g)
report("hidden frozen: d/affine/W.g", params["d/affine/W"].g)
before = params["g/affine/W"].d.copy()
solver.update()
report("hidden frozen: g/affine/W moves by", params["g/affine/W"].d - before)

# 5. fix_parameters=True: registered with need_grad, used without a gradient.
nn.clear_parameters()
hidden = F.tanh(PF.affine(x, 2, name="g", fix_parameters=True))
loss4 = F.mean(PF.affine(hidden, 1, name="d") ** 2)
solver.set_parameters(nn.get_parameters(grad_only=False))
loss4.forward()
solver.zero_grad()
loss4.backward()
params = nn.get_parameters(grad_only=False)
report("fix_parameters: registered need_grad", [p.need_grad for p in params.values()])
report("fix_parameters: g/affine/W.g", params["g/affine/W"].g)
before = params["g/affine/W"].d.copy()
solver.update()
report("fix_parameters: g/affine/W moves by", params["g/affine/W"].d - before)

# 6. The tutorial's own parameters: freezing the view `a` the graph uses.
nn.clear_parameters()
x = nn.Variable((4, 1))
y_true = nn.Variable((4, 1))
a = nn.parameter.get_parameter_or_create("a", (1, 1), initializer=I.UniformInitializer((0.5, 1.5)))
b = nn.parameter.get_parameter_or_create("b", (1, 1), initializer=I.UniformInitializer((0.5, 1.5)))
loss5 = F.mean(F.pow_scalar(F.sub2(y_true, F.add2(F.mul2(a, x), b)), 2))
x.d = np.random.randn(4, 1)
y_true.d = np.random.randn(4, 1)
solver = S.Sgd(0.1)
solver.set_parameters(nn.get_parameters(grad_only=False))
loss5.forward()
solver.zero_grad()
loss5.backward()
solver.update()
a.need_grad = False
report("view a frozen: registered need_grad", nn.get_parameters(grad_only=False)["a"].need_grad)
before = a.d.copy()
loss5.forward()
solver.zero_grad()
loss5.backward()
report("view a frozen: a.g", a.g)
solver.update()
report("view a frozen: a moves by", a.d - before)
report("view a frozen: b.g", b.g)
