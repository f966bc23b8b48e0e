"""F.image_augmentation: nnabla 1.39's train-time image augmentation. Its random numbers
are drawn by the generated functions' `rng` (nnabla's cannot be reproduced), so only its
deterministic settings are compared with nnabla's numbers (test_nnablas_numbers, with
SYMCOMPILE_NNABLA_PYTHON set); the random ones are checked by what they must give (flips
of the input, the brightness/contrast formula, draws in their ranges), on both backends.
"""

from __future__ import annotations

import os

import array_api_strict as xps
import numpy as np
import pytest
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F
from symcompile.runtime import execution

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
BACKENDS = ["numpy", "array_api"]

# Settings with no randomness left (the crop position is random unless the window is as
# large as the scaled, padded image): {name: (input shape, keyword arguments)}
DETERMINISTIC = {
    "defaults (identity)": ((2, 3, 4, 5), {}),
    "pad to shape (edge pixels)": ((2, 3, 4, 5), {"shape": (3, 6, 9), "pad": (1, 2)}),
    "2-D input, pad": ((4, 5), {"shape": (6, 7), "pad": (1, 1)}),
    "scale 2 (bilinear)": ((1, 2, 4, 5), {"shape": (8, 10), "min_scale": 2.0,
                                          "max_scale": 2.0}),
    "scale 0.5": ((2, 1, 6, 4), {"shape": (3, 2), "min_scale": 0.5, "max_scale": 0.5}),
    "5-D input, fixed brightness/contrast center": ((2, 2, 2, 3, 3), {"contrast_center": 0.3}),
}


def _input(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=shape).astype(np.float32)


def _run(backend, data, **kw):
    """F.image_augmentation's forward of `data` on `backend`, as a NumPy array."""
    previous = execution.set_backend(backend)
    try:
        nn.clear_parameters()
        x = nn.Variable.from_numpy_array(data)
        y = F.image_augmentation(x, **kw)
        y.forward()
        return np.array(y.d)
    finally:
        execution.set_backend(previous)


@pytest.mark.parametrize("backend", BACKENDS)
def test_deterministic_settings(backend):
    x = np.arange(20.0, dtype=np.float32).reshape(4, 5)
    np.testing.assert_array_equal(_run(backend, x), x)
    padded = _run(backend, x, shape=(6, 9), pad=(1, 2))
    np.testing.assert_array_equal(padded, np.pad(x, ((1, 1), (2, 2)), mode="edge"))
    doubled = _run(backend, x, shape=(8, 10), min_scale=2.0, max_scale=2.0)
    # output j reads (j - 1/2)/2 + 1/4 = j/2 (nnabla's centring), clamped at the end
    rows = np.minimum(np.arange(8) / 2, 3)
    cols = np.minimum(np.arange(10) / 2, 4)
    np.testing.assert_allclose(doubled, rows[:, None] * 5 + cols[None, :], atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_flips_give_flipped_samples(backend):
    data = _input((16, 2, 3, 4))
    both = {"flip_lr": True, "flip_ud": True}
    for kw, flip in (({"flip_lr": True}, lambda a: a[..., ::-1]),
                     ({"flip_ud": True}, lambda a: a[..., ::-1, :]), (both, None)):
        y = _run(backend, data, seed=3, **kw)
        seen = set()
        for s in range(16):
            if flip is None:
                choices = {(lr, ud): a for lr in (0, 1) for ud in (0, 1)
                           for a in [data[s][..., ::-1 if lr else 1, ::-1 if ud else 1]]}
            else:
                choices = {0: data[s], 1: flip(data[s])}
            match = [k for k, a in choices.items() if np.allclose(y[s], a, atol=1e-6)]
            assert match, f"sample {s} is no flip of its input ({kw})"
            seen.add(match[0])
        assert len(seen) > 1, f"every sample flipped alike ({kw})"


@pytest.mark.parametrize("backend", BACKENDS)
def test_brightness_and_contrast_follow_the_formula(backend):
    data = _input((64, 3, 2, 2))
    center = 0.25
    y = _run(backend, data, brightness=0.2, contrast=1.5, contrast_center=center)
    # per sample: y = (x + b - center) * c + center, one b and c for all its channels
    for s in range(64):
        a = data[s].ravel()
        c, intercept = np.polyfit(a, y[s].ravel(), 1)
        b = (intercept - center) / c + center
        np.testing.assert_allclose(y[s].ravel(), (a + b - center) * c + center, atol=1e-5)
        assert 1 / 1.5 - 1e-5 <= c <= 1.5 + 1e-5 and -0.2 - 1e-5 <= b <= 0.2 + 1e-5
    each = _run(backend, data, brightness=0.2, brightness_each=True, contrast=1.5,
                contrast_each=True)
    offsets = (each - data).reshape(64, 3, -1)
    # contrast per channel: the ratio of the spread of each channel to the input's
    spread = each.reshape(64, 3, -1).std(axis=2) / data.reshape(64, 3, -1).std(axis=2)
    assert np.all((spread > 1 / 1.5 - 1e-4) & (spread < 1.5 + 1e-4))
    assert np.ptp(spread, axis=1).max() > 0.05  # channels drawn on their own
    assert offsets.shape == (64, 3, 4)


def test_only_brightness_is_an_offset_on_nnablas_grid():
    data = _input((400, 1, 2, 2))
    y = _run("numpy", data, brightness=0.5)
    offset = (y - data).reshape(400, -1)
    np.testing.assert_allclose(offset, offset[:, :1] * np.ones((1, 4)), atol=1e-6)
    b = offset[:, 0]
    assert b.min() >= -0.5 - 1e-6 and b.max() <= 0.5 + 1e-6
    assert abs(b.mean()) < 0.06 and b.std() > 0.2  # uniform in [-0.5, 0.5]: std 0.29
    steps = (b + 0.5) * 1000  # nnabla's grid of 1001 values
    np.testing.assert_allclose(steps, np.round(steps), atol=2e-3)


def test_scale_stays_in_its_range():
    """A constant ramp's slope per output pixel is 1/scale: in [1/max, 1/min]."""
    ramp = np.tile(np.arange(40.0, dtype=np.float32), (300, 1, 40, 1))  # x along width
    y = _run("numpy", ramp, shape=(1, 8, 8), min_scale=0.8, max_scale=1.6)
    slope = np.diff(y[:, 0, 4, :], axis=-1).mean(axis=-1)
    scale = 1 / slope
    assert scale.min() >= 0.8 - 1e-3 and scale.max() <= 1.6 + 1e-3
    assert scale.min() < 0.85 and scale.max() > 1.5  # the range is covered
    # log-uniform: the geometric mean of the range's ends
    assert abs(np.exp(np.log(scale).mean()) - np.sqrt(0.8 * 1.6)) < 0.05


def test_angle_rotates_within_its_range():
    ramp = np.tile(np.arange(40.0, dtype=np.float32), (200, 40, 1))  # 3-D: one channel
    y = _run("numpy", ramp[:, None], shape=(1, 6, 6), angle=0.5)
    # the ramp along width, rotated by t: d/dcol = cos t, d/drow = -sin t
    dcol = np.diff(y[:, 0, 3, :], axis=-1).mean(axis=-1)
    drow = np.diff(y[:, 0, :, 3], axis=-1).mean(axis=-1)
    theta = np.arctan2(-drow, dcol)
    assert np.all(np.abs(theta) <= 0.5 + 1e-3) and theta.max() > 0.4 and theta.min() < -0.4


def test_noise_has_its_sigma():
    data = np.zeros((200, 2, 8, 8), np.float32)
    y = _run("numpy", data, noise=0.3)
    sigma = y.reshape(200, -1).std(axis=1)
    assert sigma.max() < 0.3 * 1.4 and sigma.min() < 0.05  # sigma uniform in [0, 0.3]
    assert abs(sigma.mean() - 0.15) < 0.03


@pytest.mark.parametrize("backend", BACKENDS)
def test_seeded_runs_repeat(backend, tmp_path):
    """One rng, one augmentation: the modules' rng= and the runtime's seed= (as
    dropout's); the array API module draws the NumPy module's numbers."""
    settings = {"shape": (3, 3), "pad": (1, 1), "min_scale": 0.8, "max_scale": 1.2,
                "angle": 0.3, "aspect_ratio": 1.2, "distortion": 0.2, "flip_lr": True,
                "flip_ud": True, "brightness": 0.1, "brightness_each": True,
                "contrast": 1.2, "contrast_each": True, "contrast_center": 0.5,
                "noise": 0.1}
    data = _input((3, 2, 4, 5), seed=1)

    def run(seed):
        nn.clear_parameters()
        x = nn.Variable.from_numpy_array(data)
        y = F.image_augmentation(x, seed=seed, **settings)
        out = []
        for _ in range(3):
            y.forward()
            out.append(y.d.copy())
        return out

    assert all(np.array_equal(a, b) for a, b in zip(run(5), run(5), strict=True))
    assert not np.array_equal(run(5)[0], run(6)[0])
    first = run(5)
    assert not np.array_equal(first[0], first[1])  # each forward pass draws anew
    nn.clear_parameters()
    x = nn.Variable(data.shape, need_grad=True)
    x.name = "x"
    loss = F.sum(F.image_augmentation(x, **settings) ** 2)
    numpy_module = nn.compile(loss, name="aug", output_dir=tmp_path / "n",
                              dtype="float64").module
    other = nn.compile(loss, name="aug", output_dir=tmp_path / "a", dtype="float64",
                       backend=backend).module
    data64 = data.astype(np.float64)
    arg = xps.asarray(data64) if backend == "array_api" else data64
    for seed in (1, 2):
        expected = numpy_module.forward(data64, rng=seed)
        assert float(other.forward(arg, rng=seed)) == pytest.approx(expected, rel=1e-12)
    assert numpy_module.forward(data64, rng=1) != numpy_module.forward(data64, rng=3)
    # no gradient reaches x (nnabla's backward does nothing)
    _, grad = numpy_module.gradient(data64, rng=1)
    np.testing.assert_array_equal(grad, 0)


def test_no_gradient_reaches_the_input():
    nn.clear_parameters()
    x = nn.Variable.from_numpy_array(_input((2, 3, 4, 4)), need_grad=True)
    y = F.image_augmentation(x, angle=0.2, brightness=0.1)
    loss = F.sum(y * x)
    loss.forward()
    x.grad.zero()
    loss.backward()
    # only the direct read of x: d(sum(y * x))/dx = y, nothing through y
    np.testing.assert_allclose(x.g, y.d, rtol=1e-6)
    assert not np.allclose(y.d, x.d)


def _reference(x, q, flips, normal, size, pad, kw):
    """nnabla's pixel loop, written out per pixel (its accumulated row/column steps), for
    the numbers q (on nnabla's grid) and flips a draw gave: the kernels' reference."""
    h_in, w_in = x.shape[-2:]
    h_out, w_out = size
    channels = x.shape[-3]
    images = x.reshape(-1, channels, h_in, w_in)
    y = np.zeros((images.shape[0], channels, h_out, w_out))
    for n, (image, p, (lr, ud)) in enumerate(zip(images, q, flips, strict=True)):
        scale = kw["min_scale"] * np.exp(p[0] * np.log(kw["max_scale"] / kw["min_scale"]))
        ar = np.log(kw["aspect_ratio"])
        sx = np.exp(-ar * 0.5 + p[1] * ar)
        isx, isy = 1 / (scale * sx), 1 / (scale / sx)
        t = -kw["angle"] + p[2] * kw["angle"] * 2
        cx, cy = (w_out - 1) * 0.5, (h_out - 1) * 0.5
        cxs = p[3] * ((w_in + 2 * pad[1]) * scale * sx - w_out) + cx
        cys = p[4] * ((h_in + 2 * pad[0]) * scale / sx - h_out) + cy
        b = (p[9:9 + channels] if kw["brightness_each"] else np.full(channels, p[7])) \
            * kw["brightness"] * 2 - kw["brightness"] - kw["contrast_center"]
        lc = np.log(kw["contrast"]) * 2
        c = np.exp((p[9 + channels:9 + 2 * channels] if kw["contrast_each"]
                    else np.full(channels, p[8])) * lc) / kw["contrast"]
        d = np.exp(p[9 + 2 * channels] * 2 * kw["distortion"] - kw["distortion"]) - 1
        sigma = p[10 + 2 * channels] * kw["noise"]
        cos, sin = np.cos(t), np.sin(t)
        x_ax, y_ax = (-cos if lr else cos) * isx, (sin if lr else -sin) * isy
        x_ay, y_ay = (-sin if ud else sin) * isx, (-cos if ud else cos) * isy
        x0 = cxs * isx - (x_ax * cx + y_ax * cy) - pad[1]
        y0 = cys * isy - (x_ay * cx + y_ay * cy) - pad[0]
        for i in range(h_out):
            xl, yl = x0, y0
            for j in range(w_out):
                xi, yi = xl, yl
                if d != 0:
                    fx, fy = (j - w_out / 2) / (w_out / 2), (i - h_out / 2) / (h_out / 2)
                    r2 = fx * fx + fy * fy
                    fx = (fx + fx * d * r2) * (w_out / 2) / (1 + d) + w_out / 2
                    fy = (fy + fy * d * r2) * (h_out / 2) / (1 + d) + h_out / 2
                    xi, yi = x0 + fx * x_ax + fy * y_ax, y0 + fx * x_ay + fy * y_ay
                xi, yi = min(max(xi, 0), w_in - 1), min(max(yi, 0), h_in - 1)
                ix, iy = int(xi), int(yi)
                gx, gy = xi - ix, yi - iy
                ix1, iy1 = min(ix + 1, w_in - 1), min(iy + 1, h_in - 1)
                v = (image[:, iy, ix] * (1 - gx) * (1 - gy) + image[:, iy, ix1] * gx * (1 - gy)
                     + image[:, iy1, ix] * (1 - gx) * gy + image[:, iy1, ix1] * gx * gy)
                y[n, :, i, j] = (v + b) * c + kw["contrast_center"] \
                    + normal[n, :, i, j] * sigma
                xl, yl = xl + x_ax, yl + x_ay
            if d == 0:
                x0, y0 = x0 + y_ax, y0 + y_ay
    return y


@pytest.mark.parametrize("kw", [
    {"min_scale": 0.7, "max_scale": 1.4, "angle": 0.6, "aspect_ratio": 1.3,
     "distortion": 0.0, "brightness": 0.2, "brightness_each": True, "contrast": 1.3,
     "contrast_center": 0.4, "contrast_each": False, "noise": 0.2},
    {"min_scale": 1.2, "max_scale": 0.9, "angle": 0.2, "aspect_ratio": 0.8,
     "distortion": 0.4, "brightness": 0.1, "brightness_each": False, "contrast": 0.7,
     "contrast_center": -0.2, "contrast_each": True, "noise": 0.0},
], ids=["no distortion", "distortion"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_kernels_follow_nnablas_pixel_loop(kw, backend):
    from symcompile.backends.kernels import array_api_kernels, numpy_kernels

    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, size=(2, 3, 2, 5, 6))
    size, pad = (4, 7), (1, 2)
    draws = rng.random((6, 11 + 2 * 2))  # 6 images of 2 channels
    draws[:, 5:7] = [[0.2, 0.2], [0.7, 0.2], [0.2, 0.7], [0.7, 0.7], [0.1, 0.9], [0.9, 0.1]]
    normal = rng.normal(size=(2, 3, 2, 4, 7))
    options = dict(kw, size=size, pad=pad, flip_lr=1, flip_ud=1)
    if backend == "numpy":
        got = numpy_kernels.image_augment(x, draws, normal, **options)
    else:
        got = np.from_dlpack(array_api_kernels.image_augment(
            xps, xps.asarray(x), xps.asarray(draws), xps.asarray(normal), **options))
    q = np.minimum(np.floor(draws * 1001), 1000) * 0.001
    flips = draws[:, 5:7] < 0.5
    expected = _reference(x, q, flips, normal.reshape(6, 2, 4, 7), size, pad, kw)
    np.testing.assert_allclose(got.reshape(expected.shape), expected, atol=1e-9)


@pytest.mark.parametrize("call,error,message", [
    (lambda x: F.image_augmentation(x, shape=(5,)), ValueError,
     r"F.image_augmentation: input of shape \(2, 3, 4, 5\): shape=\(5,\) must give at least 2"),
    (lambda x: F.image_augmentation(x, pad=(1,)), ValueError,
     r"pad=\(1,\) must give 2 sizes"),
    (lambda x: F.image_augmentation(x, pad=(-1, 0)), ValueError, r"must be non-negative"),
    (lambda x: F.image_augmentation(x, shape=(4, 4, 5)), ValueError,
     r"shape=\(4, 4, 5\) changes the channel \(or sample\) axes \(3,\) to \(4,\).*give "
     r"shape=\(3, 4, 5\)"),
    (lambda x: F.image_augmentation(x, shape=(1, 2, 3, 4, 5)), ValueError,
     r"has more axes than the input"),
    (lambda x: F.image_augmentation(x, shape=(0, 5)), ValueError, r"at least 1"),
    (lambda x: F.image_augmentation(x, contrast=0.0), ValueError,
     r"contrast=0 must be a positive finite number"),
    (lambda x: F.image_augmentation(x, min_scale=-1.0), ValueError, r"min_scale=-1 must be"),
    (lambda x: F.image_augmentation(x, aspect_ratio=0.0), ValueError, r"aspect_ratio=0 must be"),
    (lambda x: F.image_augmentation(x, noise=-0.1), ValueError, r"noise=-0.1 must be "),
    (lambda x: F.image_augmentation(x, angle=float("nan")), ValueError, r"angle=nan"),
    (lambda x: F.image_augmentation(x, seed=0.5), TypeError, r"seed must be an int"),
    (lambda x: F.image_augmentation(x, pad=1), TypeError, r"pad must be a tuple"),
    (lambda x: F.image_augmentation(x, flip_lr="yes"), TypeError, r"flip_lr must be a bool"),
    (lambda x: F.image_augmentation(x, brightness="a"), TypeError,
     r"brightness must be a real number"),
    (lambda x: F.image_augmentation(F.sum(x)), ValueError, r"at least 2 axes"),
    (lambda x: F.image_augmentation(np.zeros((3, 3))), TypeError, r"must be a Variable"),
])
def test_bad_arguments_are_refused(call, error, message):
    with pytest.raises(error, match=message):
        call(nn.Variable((2, 3, 4, 5)))


_NNABLA_SCRIPT = """
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F
for name, (shape, kw) in json.loads(sys.argv[1]).items():
    data = np.random.default_rng(0).uniform(-1, 1, size=shape).astype(np.float32)
    x = nn.Variable.from_numpy_array(data)
    y = F.image_augmentation(x, **{k: tuple(v) if isinstance(v, list) else v
                                   for k, v in kw.items()})
    y.forward()
    print(json.dumps({"name": name, "y": y.d.tolist()}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set")
def test_nnablas_numbers(tmp_path):
    rows = nnabla_rows(NNABLA, _NNABLA_SCRIPT, DETERMINISTIC, tmp_path)
    assert [r["name"] for r in rows] == list(DETERMINISTIC)
    for row in rows:
        shape, kw = DETERMINISTIC[row["name"]]
        for backend in BACKENDS:
            got = _run(backend, _input(shape), **kw)
            np.testing.assert_allclose(got, np.array(row["y"], np.float32), atol=1e-5,
                                       err_msg=f"{row['name']} on {backend}")
