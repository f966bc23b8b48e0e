"""A small DCGAN on scikit-learn's 8x8 digits, written as an nnabla training script.

The generator maps a latent vector to an 8x8 image: affine to 32 maps of 4x4 + batch
normalization + relu, deconvolution to 16 maps of 8x8 (stride 2) + batch normalization +
relu, convolution 3x3 to one map + tanh. The discriminator is two strided convolutions with
leaky relu and an affine layer giving one logit. They live under ``nn.parameter_scope("gen")``
and ``nn.parameter_scope("dis")``, and each has its own Adam solver, given the parameters
``nn.get_parameters()`` lists in its scope. The losses and the two updates are those of
nnabla's DCGAN example (nnabla-examples, ``mnist-collection/dcgan.py``):

- generator: ``sigmoid_cross_entropy(D(G(z)), 1)``;
- discriminator: ``sigmoid_cross_entropy(D(x), 1) + sigmoid_cross_entropy(D(fake), 0)``, where
  ``fake = G(z).get_unlinked_variable(need_grad=True)`` shares G(z)'s data but not its
  graph (``G(z).persistent = True`` keeps it), so the discriminator's backward stops there;
- with ``--gradient-penalty LAMBDA``, also WGAN-GP's penalty
  ``LAMBDA * mean((|dD/dx_mix| - 1)**2)`` at random mixes of real and fake images, its
  gradient taken with ``nn.grad`` (a double backward), as in nnabla-examples'
  ``GANs/wgan-gp/train.py``.

It uses nnabla's surroundings: ``get_extension_context("cpu")``, a
``data_iterator_simple`` over the digits, monitors (``MonitorSeries`` for both losses,
``MonitorTimeElapsed``, ``MonitorImageTile`` of generated digits from a fixed latent batch
through the inference graph, ``batch_stat=False``), and ``nn.save_parameters`` plus
``solver.save_states`` at the end, which ``--resume`` loads to carry on training. It runs
unchanged on nnabla 1.39 with ``symcompile`` replaced by ``nnabla`` in the imports: the
losses of the first iterations agree to 5-6 digits (then float32 rounding lets the two runs
drift apart, as any two GAN runs do), and the .h5 checkpoints load either way.

With the defaults (Adam 2e-3, beta1 0.5, batch 64) the losses settle near the equilibrium
values log 2 (generator) and 2 log 2 (discriminator) within a few hundred iterations, and
the tiles show recognisable digits by iteration 1000; an iteration takes 20-30 ms on two
cores (set OPENBLAS_NUM_THREADS=1 on a busy machine: the matrices are small).

Run it:   python examples/gan.py --iterations 2000     (needs scikit-learn and Pillow:
                                                      pip install ".[examples,images]")
Carry on: python examples/gan.py --iterations 4000 --resume
Files in --monitor-path (default tmp.monitor.gan): Generator-loss.series.txt,
Discriminator-loss.series.txt, Training-time.timer.txt, Fake-images/NNNNNN.png, params.h5,
solver_gen.h5, solver_dis.h5, checkpoint.json (the iteration to resume from) and gan.nnp
(both networks in nnabla's model format, with the parameters).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF
import symcompile.solvers as S
from symcompile.ext_utils import get_extension_context
from symcompile.monitor import Monitor, MonitorImageTile, MonitorSeries, MonitorTimeElapsed
from symcompile.utils.data_iterator import data_iterator_simple
from symcompile.utils.save import save

LATENT = 16
MAPS = 32


def generator(z, maps=MAPS, test=False):
    """(B, LATENT) -> (B, 1, 8, 8) in [-1, 1]: affine to (maps, 4, 4), deconvolution to
    (maps / 2, 8, 8), convolution to one map; batch normalization and relu between."""
    with nn.parameter_scope("gen"):
        with nn.parameter_scope("fc1"):
            h = PF.affine(z, (maps, 4, 4))
            h = F.relu(PF.batch_normalization(h, batch_stat=not test))
        with nn.parameter_scope("deconv2"):  # (maps, 4, 4) -> (maps / 2, 8, 8)
            h = PF.deconvolution(h, maps // 2, (4, 4), pad=(1, 1), stride=(2, 2),
                                 with_bias=False)
            h = F.relu(PF.batch_normalization(h, batch_stat=not test))
        with nn.parameter_scope("conv3"):
            x = F.tanh(PF.convolution(h, 1, (3, 3), pad=(1, 1)))
    return x


def discriminator(x, maps=MAPS):
    """(B, 1, 8, 8) -> (B, 1) logits: two 3x3 convolutions of stride 2 (8x8 -> 4x4 -> 2x2)
    with leaky relu, then affine. No batch normalization, so that the gradient penalty
    sees each image on its own."""
    with nn.parameter_scope("dis"):
        with nn.parameter_scope("conv1"):
            h = F.leaky_relu(PF.convolution(x, maps // 2, (3, 3), pad=(1, 1), stride=(2, 2)),
                             0.2)
        with nn.parameter_scope("conv2"):
            h = F.leaky_relu(PF.convolution(h, maps, (3, 3), pad=(1, 1), stride=(2, 2)), 0.2)
        with nn.parameter_scope("fc3"):
            f = PF.affine(h, 1)
    return f


def load_digits():
    """The 1797 digits as float32 (N, 1, 8, 8) images scaled from 0..16 to [-1, 1]."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        sys.exit("this example needs scikit-learn: pip install scikit-learn")
    images = sklearn_digits().images.astype(np.float32)
    return (images / 8.0 - 1.0)[:, None]


def data_iterator_digits(batch_size, rng):
    """nnabla's data_iterator_simple over the digits, shuffled each epoch: batches of
    (images, dummy labels)."""
    images = load_digits()

    def load_func(i):
        return images[i], np.zeros((1,), np.float32)  # (image, a dummy label)

    return data_iterator_simple(load_func, len(images), batch_size, shuffle=True, rng=rng)


def get_args(argv=None):
    parser = argparse.ArgumentParser(description="Train a small DCGAN on the 8x8 digits.")
    parser.add_argument("--iterations", "-i", type=int, default=2000,
                        help="train until this iteration (counted across --resume)")
    parser.add_argument("--batch-size", "-b", type=int, default=64)
    parser.add_argument("--learning-rate", "-l", type=float, default=2e-3)
    parser.add_argument("--beta1", type=float, default=0.5)
    parser.add_argument("--gradient-penalty", type=float, default=0.0, metavar="LAMBDA",
                        help="weight of WGAN-GP's gradient penalty (0: none; about 1 "
                             "suits this loss, WGAN-GP's 10 is for a Wasserstein critic)")
    parser.add_argument("--monitor-path", "-m", default="tmp.monitor.gan")
    parser.add_argument("--monitor-interval", type=int, default=10,
                        help="iterations averaged in each line of the loss series")
    parser.add_argument("--image-interval", type=int, default=500,
                        help="write a tile of generated digits every this many iterations")
    parser.add_argument("--resume", action="store_true",
                        help="load params.h5, the solver states and checkpoint.json from "
                             "--monitor-path and carry on from their iteration")
    parser.add_argument("--seed", "-s", type=int, default=0)
    parser.add_argument("--context", "-c", default="cpu")
    return parser.parse_args(argv)


def main(argv=None):
    args = get_args(argv)
    ctx = get_extension_context(args.context)
    nn.set_default_context(ctx)
    nn.clear_parameters()  # a fresh start when main() is called again in one process
    nn.seed(args.seed)  # the parameters' initial values and F.rand
    np.random.seed(args.seed)  # the latent vectors
    started = time.time()

    # Generator step: fool the discriminator.
    z = nn.Variable([args.batch_size, LATENT])
    fake = generator(z)
    fake.persistent = True  # kept for the discriminator step, which reads it unlinked
    pred_fake = discriminator(fake)
    # The targets (nnabla's DCGAN example writes F.constant(1, pred_fake.shape); Variables
    # holding ones and zeros are the same targets).
    ones = nn.Variable.from_numpy_array(np.ones(pred_fake.shape))
    zeros = nn.Variable.from_numpy_array(np.zeros(pred_fake.shape))
    loss_gen = F.mean(F.sigmoid_cross_entropy(pred_fake, ones))

    # Discriminator step: real images are 1, generated ones 0. The generated images come
    # in through an unlinked variable, so the discriminator's backward stops there.
    fake_dis = fake.get_unlinked_variable(need_grad=True)
    x = nn.Variable([args.batch_size, 1, 8, 8])
    pred_real = discriminator(x)
    pred_fake_dis = discriminator(fake_dis)
    loss_dis = (F.mean(F.sigmoid_cross_entropy(pred_real, ones))
                + F.mean(F.sigmoid_cross_entropy(pred_fake_dis, zeros)))
    if args.gradient_penalty > 0:
        eps = F.rand(shape=[args.batch_size, 1, 1, 1])
        x_mix = eps * x + (1.0 - eps) * fake_dis
        x_mix.need_grad = True  # its gradient is what the penalty measures
        pred_mix = discriminator(x_mix)
        grad_mix = nn.grad([pred_mix], [x_mix])[0]
        norm = F.sum(grad_mix ** 2.0, axis=[1, 2, 3]) ** 0.5
        loss_dis += args.gradient_penalty * F.mean((norm - 1.0) ** 2.0)

    # The inference graph (running statistics) for images of a fixed latent batch.
    z_test = nn.Variable.from_numpy_array(
        np.random.RandomState(args.seed + 1).randn(args.batch_size, LATENT))
    fake_test = generator(z_test, test=True)

    solver_gen = S.Adam(args.learning_rate, beta1=args.beta1)
    solver_dis = S.Adam(args.learning_rate, beta1=args.beta1)
    with nn.parameter_scope("gen"):
        solver_gen.set_parameters(nn.get_parameters())
    with nn.parameter_scope("dis"):
        solver_dis.set_parameters(nn.get_parameters())

    params_file = os.path.join(args.monitor_path, "params.h5")
    states_gen_file = os.path.join(args.monitor_path, "solver_gen.h5")
    states_dis_file = os.path.join(args.monitor_path, "solver_dis.h5")
    checkpoint_file = os.path.join(args.monitor_path, "checkpoint.json")
    start = 0
    if args.resume:
        nn.load_parameters(params_file)
        solver_gen.load_states(states_gen_file)
        solver_dis.load_states(states_dis_file)
        with open(checkpoint_file) as f:
            start = json.load(f)["iteration"]
        print(f"resumed from {params_file} at iteration {start}")

    monitor = Monitor(args.monitor_path)
    monitor_loss_gen = MonitorSeries("Generator loss", monitor,
                                     interval=args.monitor_interval, verbose=False)
    monitor_loss_dis = MonitorSeries("Discriminator loss", monitor,
                                     interval=args.monitor_interval, verbose=False)
    monitor_time = MonitorTimeElapsed("Training time", monitor, interval=100, verbose=False)
    monitor_fake = MonitorImageTile("Fake images", monitor, interval=args.image_interval,
                                    num_images=args.batch_size, verbose=False,
                                    normalize_method=lambda x: (x + 1) / 2.0)

    data = data_iterator_digits(args.batch_size, np.random.RandomState(args.seed))
    total_gen = total_dis = 0.0
    count = 0
    for i in range(start, args.iterations):
        x.d = data.next()[0]
        z.d = np.random.randn(*z.shape)

        # Generator update.
        solver_gen.zero_grad()
        loss_gen.forward(clear_no_need_grad=True)
        loss_gen.backward(clear_buffer=True)
        solver_gen.update()
        monitor_loss_gen.add(i, loss_gen.d.copy())

        # Discriminator update, on the images the generator made above.
        solver_dis.zero_grad()
        loss_dis.forward(clear_no_need_grad=True)
        loss_dis.backward(clear_buffer=True)
        solver_dis.update()
        monitor_loss_dis.add(i, loss_dis.d.copy())
        monitor_time.add(i)

        if i == 0 or (i + 1) % args.image_interval == 0:
            fake_test.forward(clear_buffer=True)
            monitor_fake.add(i, fake_test)
        total_gen += float(loss_gen.d)
        total_dis += float(loss_dis.d)
        count += 1
        if (i + 1) % 100 == 0 or i + 1 == args.iterations:
            print(f"iteration {i + 1:5d}/{args.iterations}  generator loss "
                  f"{total_gen / count:.4f}  discriminator loss {total_dis / count:.4f}  "
                  f"{time.time() - started:5.1f} s", flush=True)
            total_gen = total_dis = 0.0
            count = 0

    nn.save_parameters(params_file)  # both networks, batch normalization's statistics too
    solver_gen.save_states(states_gen_file)
    solver_dis.save_states(states_dis_file)
    with open(checkpoint_file, "w") as f:
        json.dump({"iteration": max(start, args.iterations)}, f)
    print(f"saved {params_file}, {states_gen_file}, {states_dis_file} "
          f"({time.time() - started:.1f} s)")

    # The trained networks in nnabla's model format: the generator at inference (latent
    # vectors to images, with the running statistics) and the discriminator (images to
    # logits). nnabla.utils.nnp_graph.NnpLoader reads the file back, nnabla's or this
    # one's, and `symcompile compile gan.nnp --network generator` makes a NumPy module.
    nnp_file = os.path.join(args.monitor_path, "gan.nnp")
    save(nnp_file, {
        "networks": [
            {"name": "generator", "batch_size": args.batch_size,
             "outputs": {"image": fake_test}, "names": {"z": z_test}},
            {"name": "discriminator", "batch_size": args.batch_size,
             "outputs": {"logit": pred_real}, "names": {"x": x}}],
        "executors": [
            {"name": "generate", "network": "generator", "data": ["z"], "output": ["image"]},
            {"name": "discriminate", "network": "discriminator", "data": ["x"],
             "output": ["logit"]}]})
    print(f"saved {nnp_file}")


if __name__ == "__main__":
    main()
