"""nnabla's "NNabla by Examples" tutorial (docs/python/tutorial/by_examples), with the
imports swapped for symcompile's and its plots left out; everything else as published:
logistic regression, auto_forward, an MLP, the CNN with batch normalization on a "cudnn"
context, save_parameters, an Elman RNN over slices of the images, and a Siamese network
trained from loaded parameters with an inference graph (batch_stat=False) under
auto_forward. tiny_digits.py is the tutorial's helper, with scikit-learn's digits.
"""
import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF
import symcompile.solvers as S
import numpy as np
from symcompile.ext_utils import get_extension_context
from symcompile.monitor import tile_images
import tiny_digits
np.random.seed(0)
digits = tiny_digits.load_digits(n_class=10)
data = tiny_digits.data_iterator_tiny_digits(digits, batch_size=64, shuffle=True)
img, label = data.next()
print("labels:\n", label.reshape(8, 8))
x = nn.Variable(img.shape)
with nn.parameter_scope("affine1"):
    y = PF.affine(x, 10)
t = nn.Variable(label.shape)
loss = F.mean(F.softmax_cross_entropy(y, t))
x.d = img
t.d = label
loss.forward()
print("Prediction score of 0-th image:", y.d[0])
print("Loss:", loss.d)
print(nn.get_parameters())
for param in nn.get_parameters().values():
    param.grad.zero()
loss.backward()
for name, param in nn.get_parameters().items():
    print(name, param.shape, param.g.flat[:20])
learning_rate = 1e-3
solver = S.Sgd(learning_rate)
solver.set_parameters(nn.get_parameters())
x.d, t.d = data.next()
loss.forward(); solver.zero_grad(); loss.backward(); solver.weight_decay(1e-5); solver.update()
print(loss.d)
for i in range(1000):
    x.d, t.d = data.next()
    loss.forward(); solver.zero_grad(); loss.backward(); solver.weight_decay(1e-5); solver.update()
    if i % 100 == 0: print(i, loss.d)
x.d, t.d = data.next()
y.forward()
print(y.d.argmax(axis=1).reshape(8, 8))
def logreg_forward(x):
    with nn.parameter_scope("affine1"):
        y = PF.affine(x, 10)
    return y
def logreg_loss(y, t):
    return F.mean(F.softmax_cross_entropy(y, t))
x = nn.Variable(img.shape); t = nn.Variable(label.shape)
x.d, t.d = data.next()
with nn.auto_forward():
    y = logreg_forward(x)
    loss = logreg_loss(y, t)
print("Loss:", loss.d)
nn.clear_parameters()
def mlp(x, hidden=[16, 32, 16]):
    hs = []
    with nn.parameter_scope("mlp"):
        h = x
        for hid, hsize in enumerate(hidden):
            with nn.parameter_scope("affine{}".format(hid + 1)):
                h = F.tanh(PF.affine(h, hsize)); hs.append(h)
        with nn.parameter_scope("classifier"):
            y = PF.affine(h, 10)
    return y, hs
y, hs = mlp(x)
loss = logreg_loss(y, t)
def training(steps, learning_rate):
    solver = S.Sgd(learning_rate)
    solver.set_parameters(nn.get_parameters())
    for i in range(steps):
        x.d, t.d = data.next()
        loss.forward(); solver.zero_grad(); loss.backward(); solver.weight_decay(1e-5); solver.update()
        if i % 100 == 0: print(i, loss.d)
training(1000, 1e-2)
nn.clear_parameters()
def cnn(x):
    with nn.parameter_scope("cnn"):
        with nn.parameter_scope("conv1"):
            c1 = F.tanh(PF.batch_normalization(PF.convolution(x, 4, (3, 3), pad=(1, 1), stride=(2, 2))))
        with nn.parameter_scope("conv2"):
            c2 = F.tanh(PF.batch_normalization(PF.convolution(c1, 8, (3, 3), pad=(1, 1))))
            c2 = F.average_pooling(c2, (2, 2))
        with nn.parameter_scope("fc3"):
            fc3 = F.tanh(PF.affine(c2, 32))
        with nn.parameter_scope("classifier"):
            y = PF.affine(fc3, 10)
    return y, [c1, c2, fc3]
ctx = get_extension_context("cudnn", device_id=0)
print("Context:", ctx)
nn.set_default_context(ctx)
y, hs = cnn(x)
loss = logreg_loss(y, t)
training(1000, 1e-1)
print(tile_images(hs[0].d[0][:, None]).shape)
path_cnn_params = "tmp.params.cnn.h5"  # the tutorial: cache_file(...)
nn.save_parameters(path_cnn_params)
nn.clear_parameters()
def rnn(xs, h0, hidden=32):
    hs = []
    with nn.parameter_scope("rnn"):
        h = h0
        for x in xs:
            with nn.parameter_scope("x2h"):
                x2h = PF.affine(x, hidden, with_bias=False)
            with nn.parameter_scope("h2h"):
                h2h = PF.affine(h, hidden)
            h = F.tanh(x2h + h2h); hs.append(h)
        with nn.parameter_scope("classifier"):
            y = PF.affine(h, 10)
    return y, hs
def split_grid4(x):
    return x[..., :4, :4], x[..., :4, 4:], x[..., 4:, :4], x[..., 4:, 4:]
hidden = 32
seq_img = split_grid4(img)
seq_x = [nn.Variable(subimg.shape) for subimg in seq_img]
h0 = nn.Variable((img.shape[0], hidden))
y, hs = rnn(seq_x, h0, hidden)
loss = logreg_loss(y, t)
def training_rnn(steps, learning_rate):
    solver = S.Sgd(learning_rate)
    solver.set_parameters(nn.get_parameters())
    for i in range(steps):
        minibatch = data.next()
        img, t.d = minibatch
        seq_img = split_grid4(img)
        h0.d = 0
        for x, subimg in zip(seq_x, seq_img):
            x.d = subimg
        loss.forward(); solver.zero_grad(); loss.backward(); solver.weight_decay(1e-5); solver.update()
        if i % 100 == 0: print(i, loss.d)
training_rnn(1000, 1e-1)
nn.clear_parameters()
_ = nn.load_parameters(path_cnn_params)
def cnn_embed(x, test=False):
    with nn.parameter_scope("cnn"):
        with nn.parameter_scope("conv1"):
            c1 = F.tanh(PF.batch_normalization(PF.convolution(x, 4, (3, 3), pad=(1, 1), stride=(2, 2)), batch_stat=not test))
        with nn.parameter_scope("conv2"):
            c2 = F.tanh(PF.batch_normalization(PF.convolution(c1, 8, (3, 3), pad=(1, 1)), batch_stat=not test))
            c2 = F.average_pooling(c2, (2, 2))
        with nn.parameter_scope("fc3"):
            fc3 = PF.affine(c2, 32)
    with nn.parameter_scope("embed2d"):
        embed = PF.affine(c2, 2)
    return embed, [c1, c2, fc3]
def siamese_loss(e0, e1, t, margin=1.0, eps=1e-4):
    dist = F.sum(F.squared_error(e0, e1), axis=1)
    sim_cost = t * dist
    dissim_cost = (1 - t) * (F.maximum_scalar(margin - (dist + eps) ** (0.5), 0) ** 2)
    return F.mean(sim_cost + dissim_cost)
x0 = nn.Variable(img.shape); x1 = nn.Variable(img.shape)
t = nn.Variable((img.shape[0],))
e0, hs0 = cnn_embed(x0); e1, hs1 = cnn_embed(x1)
loss = siamese_loss(e0, e1, t)
def training_siamese(steps):
    for i in range(steps):
        minibatchs = []
        for _ in range(2):
            minibatch = data.next()
            minibatchs.append((minibatch[0].copy(), minibatch[1].copy()))
        x0.d, label0 = minibatchs[0]
        x1.d, label1 = minibatchs[1]
        t.d = (label0 == label1).astype(int).flat
        loss.forward(); solver.zero_grad(); loss.backward(); solver.weight_decay(1e-5); solver.update()
        if i % 100 == 0: print(i, loss.d)
learning_rate = 1e-2
solver = S.Sgd(learning_rate)
with nn.parameter_scope("embed2d"):
    solver.set_parameters(nn.get_parameters())
training_siamese(2000)
solver.set_learning_rate(solver.learning_rate() * 0.1)
training_siamese(2000)
all_image = digits.images[:512, None]
all_label = digits.target[:512]
x_all = nn.Variable(all_image.shape)
x_all.d = all_image
with nn.auto_forward():
    embed, _ = cnn_embed(x_all, test=True)
print("embedding:", embed.d.shape)
