"""The GAN example (examples/gan.py): it trains, writes nnabla's monitor files, its
generator learns the digits' pixel statistics, and its checkpoint reloads and resumes.

One training run (150 iterations, seed 0) is shared by the tests through a module-scoped
fixture, in its own compile cache, with one BLAS thread (small matrices: two threads on a
busy two-core machine make the steps many times slower)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys

import numpy as np
import pytest
from conftest import ROOT
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.solvers as S

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("sklearn", "PIL", "h5py")),
    reason="the GAN example needs scikit-learn, Pillow (image tiles) and h5py (.h5 files)")

ITERATIONS = 150
RESUMED = 160  # the resumed run carries on to this iteration
SERIES_INTERVAL = 10
IMAGE_INTERVAL = 50
SAMPLES = 512  # generated digits whose pixel statistics are compared with the data's


def _gan():
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import gan
    finally:
        sys.path.remove(str(ROOT / "examples"))
    return gan


def _snapshot():
    return {name: np.array(var.d) for name, var in nn.get_parameters(grad_only=False).items()}


def _adam_states(gan, path):
    """A solver given the example's generator parameters, its states loaded from `path`."""
    nn.clear_parameters()
    gan.generator(nn.Variable([4, gan.LATENT]))
    solver = S.Adam()
    with nn.parameter_scope("gen"):
        solver.set_parameters(nn.get_parameters())
    solver.load_states(str(path))
    return solver.get_states()


def _moment_distance(gan, params_file, real):
    """Mean squared difference between the per-pixel means and standard deviations of
    SAMPLES generated digits (the inference graph, parameters from `params_file`) and
    those of the data. About 0.65 for the initial generator."""
    nn.clear_parameters()
    nn.load_parameters(str(params_file))
    z = nn.Variable([64, gan.LATENT])
    fake = gan.generator(z, test=True)
    rng = np.random.RandomState(1234)
    samples = []
    for _ in range(SAMPLES // 64):
        z.d = rng.randn(*z.shape)
        fake.forward()
        samples.append(np.array(fake.d))
    samples = np.concatenate(samples)
    return (float(np.mean((samples.mean(axis=0) - real.mean(axis=0)) ** 2))
            + float(np.mean((samples.std(axis=0) - real.std(axis=0)) ** 2)))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run the example: 0 iterations (the initial parameters), ITERATIONS, a resume with
    nothing left to do, a resume to RESUMED, and 2 iterations with a gradient penalty."""
    from threadpoolctl import threadpool_limits

    gan = _gan()
    root = tmp_path_factory.mktemp("gan")
    out = {"gan": gan, "root": root}
    with pytest.MonkeyPatch.context() as patch, threadpool_limits(limits=1, user_api="blas"):
        patch.setenv("SYMCOMPILE_CACHE_DIR", str(root / "cache"))
        common = ["--seed", "0", "--batch-size", "64",
                  "--monitor-interval", str(SERIES_INTERVAL),
                  "--image-interval", str(IMAGE_INTERVAL)]
        gan.main(["--iterations", "0", "--monitor-path", str(root / "initial"), *common])

        gan.main(["--iterations", str(ITERATIONS), "--monitor-path", str(root / "trained"),
                  *common])
        out["trained_params"] = _snapshot()  # the registry as training left it
        nn.clear_parameters()
        nn.load_parameters(str(root / "trained" / "params.h5"))
        out["reloaded_params"] = _snapshot()

        # --resume with --iterations at the checkpoint's: loads, trains nothing, saves.
        shutil.copytree(root / "trained", root / "resume0")
        gan.main(["--iterations", str(ITERATIONS), "--resume",
                  "--monitor-path", str(root / "resume0"), *common])
        out["resume0_params"] = _snapshot()

        shutil.copytree(root / "trained", root / "resumed")
        gan.main(["--iterations", str(RESUMED), "--resume",
                  "--monitor-path", str(root / "resumed"), *common])

        # The first iteration with and without the gradient penalty, series not averaged.
        for name, extra in (("plain", []), ("penalty", ["--gradient-penalty", "1"])):
            gan.main(["--iterations", "2", "--monitor-path", str(root / name), *common,
                      "--monitor-interval", "1", *extra])
        out["real"] = gan.load_digits()
        out["initial_distance"] = _moment_distance(gan, root / "initial" / "params.h5",
                                                   out["real"])
        out["trained_distance"] = _moment_distance(gan, root / "trained" / "params.h5",
                                                   out["real"])
        out["states_trained"] = _adam_states(gan, root / "trained" / "solver_gen.h5")
        out["states_resumed"] = _adam_states(gan, root / "resumed" / "solver_gen.h5")
    nn.clear_parameters()
    return out


def _series(path):
    rows = [line.split() for line in path.read_text().splitlines()]
    assert all(len(row) == 2 for row in rows), rows
    return [int(row[0]) for row in rows], np.array([float(row[1]) for row in rows])


def test_monitors_write_nnabla_files(runs):
    """Both loss series have one line per SERIES_INTERVAL iterations (their means, finite
    and positive), the timer one per 100, the image tile one at 0 and every
    IMAGE_INTERVAL: an 8x8 grid of the 64 generated 8x8 digits."""
    from PIL import Image

    trained = runs["root"] / "trained"
    expected = list(range(SERIES_INTERVAL - 1, ITERATIONS, SERIES_INTERVAL))
    for name in ("Generator-loss", "Discriminator-loss"):
        indices, values = _series(trained / f"{name}.series.txt")
        assert indices == expected, name
        assert np.all(np.isfinite(values)) and np.all(values > 0), (name, values)
    # sigmoid cross-entropies: the discriminator's two terms start near 2 log 2, the
    # generator's near log 2
    _, dis = _series(trained / "Discriminator-loss.series.txt")
    _, gen = _series(trained / "Generator-loss.series.txt")
    assert 1.0 < dis[0] < 1.8 and 0.3 < gen[0] < 1.0, (dis, gen)
    timer = (trained / "Training-time.timer.txt").read_text().splitlines()
    assert len(timer) == ITERATIONS // 100
    index, lap, iterations, total = timer[0].split()
    assert (index, iterations) == ("99", "100") and 0 < float(lap) <= float(total)
    tiles = sorted(p.name for p in (trained / "Fake-images").iterdir())
    assert tiles == [f"{i:06d}.png" for i in (0, 49, 99, 149)]
    with Image.open(trained / "Fake-images" / "000149.png") as image:
        assert image.size == (8 * 9, 8 * 9) and image.mode == "L"  # 8x8 tiles + padding
        pixels = np.asarray(image)
    assert pixels.std() > 10  # digits, not a blank image
    checkpoint = json.loads((trained / "checkpoint.json").read_text())
    assert checkpoint == {"iteration": ITERATIONS}


def test_generator_learns_the_digits_pixel_statistics(runs):
    """The generator only learns through the discriminator: after ITERATIONS its digits'
    per-pixel means and standard deviations are much closer to the data's than the
    initial generator's (seeds 0-15 give 0.26-0.63 of the initial distance; with the
    discriminator's update left out, the distance grows instead, to 2.5-2.8 times)."""
    initial, trained = runs["initial_distance"], runs["trained_distance"]
    assert initial > 0.5, initial  # mid-grey noise against mostly black digits
    assert trained < 0.75 * initial, (initial, trained)


def test_saved_parameters_reload_exactly(runs):
    """params.h5 holds every parameter of both networks (batch normalization's running
    statistics too) and reloads to exactly the values training ended with."""
    trained, reloaded = runs["trained_params"], runs["reloaded_params"]
    assert list(reloaded) == list(trained)
    assert {name.split("/")[0] for name in trained} == {"gen", "dis"}
    assert "gen/fc1/bn/mean" in trained and "gen/deconv2/deconv/W" in trained
    for name in trained:
        np.testing.assert_array_equal(reloaded[name], trained[name], err_msg=name)
    assert np.any(trained["gen/fc1/bn/mean"] != 0)


def test_resume_starts_from_the_checkpoint(runs):
    """--resume with nothing left to train saves exactly the loaded parameters; resuming
    to RESUMED trains iterations ITERATIONS..RESUMED-1 only, and the solver's update count
    carries on from the saved one."""
    for name, value in runs["trained_params"].items():
        np.testing.assert_array_equal(runs["resume0_params"][name], value, err_msg=name)
    root = runs["root"]
    assert json.loads((root / "resume0" / "checkpoint.json").read_text()) == {
        "iteration": ITERATIONS}
    assert json.loads((root / "resumed" / "checkpoint.json").read_text()) == {
        "iteration": RESUMED}
    indices, values = _series(root / "resumed" / "Generator-loss.series.txt")
    assert indices and ITERATIONS <= indices[0] and indices[-1] < RESUMED, indices
    assert np.all(np.isfinite(values))
    for key, state in runs["states_trained"].items():
        assert state.t == ITERATIONS, key
        assert runs["states_resumed"][key].t == RESUMED, key


def test_gradient_penalty_adds_to_the_discriminator_loss(runs):
    """With --gradient-penalty 1 the first generator step is the same and the
    discriminator's loss gains mean((|dD/dx_mix| - 1)**2), a number in (0, 1) here (the
    initial discriminator's input gradients are small); training stays finite."""
    root = runs["root"]
    _, gen_plain = _series(root / "plain" / "Generator-loss.series.txt")
    _, gen_penalty = _series(root / "penalty" / "Generator-loss.series.txt")
    _, dis_plain = _series(root / "plain" / "Discriminator-loss.series.txt")
    _, dis_penalty = _series(root / "penalty" / "Discriminator-loss.series.txt")
    assert len(dis_penalty) == 2 and np.all(np.isfinite(dis_penalty))
    assert gen_penalty[0] == gen_plain[0]
    assert 0.2 < dis_penalty[0] - dis_plain[0] < 1.0, (dis_plain, dis_penalty)


def _from_parameters(gan, params_file, z, x):
    """The trained generator's images of z and discriminator's logits of x, built from the
    example's own functions and the saved parameters."""
    nn.clear_parameters()
    nn.load_parameters(str(params_file))
    z_var, x_var = nn.Variable.from_numpy_array(z), nn.Variable.from_numpy_array(x)
    image, logit = gan.generator(z_var, test=True), gan.discriminator(x_var)
    image.forward()
    logit.forward()
    return np.array(image.d), np.array(logit.d)


def test_the_networks_in_the_nnp_file_are_the_trained_ones(runs, tmp_path):
    """gan.nnp holds both networks with the trained parameters: read back here (and, with
    SYMCOMPILE_NNABLA_PYTHON set, by real nnabla 1.39) they compute what the example's
    graphs compute from params.h5."""
    from symcompile.utils.nnp_graph import NnpLoader

    gan, trained = runs["gan"], runs["root"] / "trained"
    rng = np.random.default_rng(5)
    z = rng.normal(size=(64, gan.LATENT)).astype(np.float32)
    x = np.tanh(rng.normal(size=(64, 1, 8, 8))).astype(np.float32)
    image, logit = _from_parameters(gan, trained / "params.h5", z, x)
    nn.clear_parameters()
    loader = NnpLoader(str(trained / "gan.nnp"))
    assert loader.get_network_names() == ["generator", "discriminator"]
    got = {}
    for network, name, value, output in (("generator", "z", z, "image"),
                                          ("discriminator", "x", x, "logit")):
        net = loader.get_network(network, batch_size=64)
        net.inputs[name].d = value
        net.outputs[output].forward()
        got[output] = np.array(net.outputs[output].d)
    np.testing.assert_allclose(got["image"], image, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["logit"], logit, rtol=1e-5, atol=1e-5)
    nn.clear_parameters()

    python = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
    if not python:
        return  # (the rest needs nnabla)
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "x.npy", x)
    script = (
        "import json, sys, numpy as np\n"
        "from nnabla.utils.nnp_graph import NnpLoader\n"
        "path, folder = json.loads(sys.argv[1])\n"
        "loader = NnpLoader(path)\n"
        "for network, name, output in (('generator', 'z', 'image'),\n"
        "                              ('discriminator', 'x', 'logit')):\n"
        "    net = loader.get_network(network, batch_size=64)\n"
        "    net.inputs[name].d = np.load(f'{folder}/{name}.npy')\n"
        "    net.outputs[output].forward()\n"
        "    print(json.dumps({output: net.outputs[output].d.tolist()}))\n")
    rows = nnabla_rows(python, script, [str(trained / "gan.nnp"), str(tmp_path)], tmp_path)
    theirs = {key: np.array(value) for row in rows for key, value in row.items()}
    np.testing.assert_allclose(theirs["image"], image, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(theirs["logit"], logit, rtol=1e-4, atol=1e-4)
