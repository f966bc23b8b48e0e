"""F.random_erase: rectangles of each image replaced by uniform noise.

nnabla's draws (std::mt19937) cannot be reproduced, so:
- the kernel that turns five uniform numbers per rectangle into the erased pixels,
  against a loop over pixels that follows nnabla's random_erase.cpp step by step (its
  size_t truncations, inclusive ends, `eprob <= prob`), for both backends;
- through the runtime and the generated module: pixels outside the rectangles keep x,
  erased ones hold values in `replacements`; `share` gives every channel one rectangle,
  per-channel rectangles otherwise; the erased fraction against a Monte Carlo estimate
  from the loop reference; `prob` the fraction of images erased;
- the gradient: dy outside the rectangles, 0 inside (ste_fine_grained), dy everywhere
  otherwise; channel_last, the NHWC layout of the same draws;
- one seed repeats the erasing, and the two backends erase alike;
- bad arguments are refused when the graph is built, naming nnabla's rule; with
  SYMCOMPILE_NNABLA_PYTHON set, nnabla accepts and refuses the same arguments.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.functions as F
from symcompile.backends.kernels import array_api_kernels, numpy_kernels

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
AREA, ASPECT = (0.02, 0.4), (0.3, 3.3333)


def reference_mask(draws, prob, area_ratios, aspect_ratios, shape):
    """nnabla's loops: one rectangle per (round, sample, channel or all channels)."""
    n, samples, per_channel, _ = draws.shape
    _, channels, height, width = shape
    mask = np.zeros(shape)
    for r, b, c in np.ndindex(n, samples, per_channel):
        u = draws[r, b, c]
        area = (area_ratios[0] + (area_ratios[1] - area_ratios[0]) * u[0]) * height * width
        ratio = aspect_ratios[0] + (aspect_ratios[1] - aspect_ratios[0]) * u[1]
        tall = min(int(math.sqrt(area * ratio)), height)  # size_t truncation, then min
        wide = min(int(math.sqrt(area / ratio)), width)
        top = int(u[3] * (height - tall + 1))  # uniform_int_distribution(0, H - He)
        left = int(u[4] * (width - wide + 1))
        if u[2] > prob:
            continue
        for h in range(height):
            for w in range(width):
                if top <= h <= top + tall and left <= w <= left + wide:
                    for channel in (range(channels) if per_channel == 1 else [c]):
                        mask[b, channel, h, w] = 1
    return mask


@pytest.mark.parametrize("shape,per_channel,rounds,prob", [
    ((3, 2, 6, 8), 1, 1, 0.7), ((2, 3, 5, 5), 3, 2, 0.5), ((4, 1, 9, 4), 1, 3, 1.0),
    ((2, 2, 1, 7), 2, 1, 0.9)])
def test_the_kernel_erases_the_pixels_nnablas_loops_erase(shape, per_channel, rounds, prob):
    xps = pytest.importorskip("array_api_strict")
    rng = np.random.default_rng(0)
    for _ in range(5):
        draws = rng.random((rounds, shape[0], per_channel, 5))
        expected = reference_mask(draws, prob, AREA, ASPECT, shape)
        got = numpy_kernels.erase_mask(draws, prob, AREA, ASPECT, shape)
        np.testing.assert_array_equal(got, expected)
        other = array_api_kernels.erase_mask(xps, xps.asarray(draws), prob, AREA, ASPECT, shape)
        np.testing.assert_array_equal(np.from_dlpack(other), expected)


def _erase(x_array, **kwargs):
    x = nn.Variable.from_numpy_array(np.asarray(x_array, np.float32), need_grad=True)
    return x, F.random_erase(x, **kwargs)


def test_erased_pixels_hold_noise_and_the_rest_keeps_x():
    nn.seed(1)
    x_array = np.random.default_rng(0).uniform(-3, -2, size=(8, 3, 10, 12))
    x, y = _erase(x_array, prob=1.0, replacements=(4.0, 5.0))
    y.forward()
    erased = y.d != x.d
    assert erased.any(axis=(1, 2, 3)).all()  # prob 1: every image
    assert np.all((y.d[erased] >= 4.0) & (y.d[erased] <= 5.0))
    assert np.array_equal(erased, np.broadcast_to(erased[:, :1], erased.shape))  # shared
    for image in erased[:, 0]:  # one rectangle
        rows, columns = np.nonzero(image.any(axis=1))[0], np.nonzero(image.any(axis=0))[0]
        assert image[rows.min():rows.max() + 1, columns.min():columns.max() + 1].all()
        assert image.sum() == len(rows) * len(columns)


def test_without_share_each_channel_has_its_own_rectangle():
    nn.seed(2)
    x, y = _erase(np.zeros((6, 4, 12, 12)) - 1, prob=1.0, share=False, area_ratios=(0.1, 0.3))
    y.forward()
    erased = y.d != -1
    assert erased.any(axis=(2, 3)).all()
    assert not np.array_equal(erased, np.broadcast_to(erased[:, :1], erased.shape))


def test_the_erased_fraction_is_what_nnablas_geometry_gives():
    """With prob 1 and n 2, the mean fraction of erased pixels against the reference
    loops' on their own uniform draws."""
    shape, rounds = (400, 1, 8, 10), 2
    nn.seed(3)
    x, y = _erase(np.zeros(shape) - 1, prob=1.0, n=rounds)
    y.forward()
    ours = np.mean(y.d != -1)
    draws = np.random.default_rng(4).random((rounds, 400, 1, 5))
    expected = reference_mask(draws, 1.0, AREA, ASPECT, shape).mean()
    assert ours == pytest.approx(expected, abs=0.02)


def test_prob_is_the_fraction_of_images_erased():
    nn.seed(4)
    x, y = _erase(np.zeros((2000, 1, 4, 4)) - 1, prob=0.3)
    y.forward()
    assert np.mean((y.d != -1).any(axis=(1, 2, 3))) == pytest.approx(0.3, abs=0.04)
    x0, y0 = _erase(np.zeros((5, 1, 4, 4)) - 1, prob=0.0)
    y0.forward()
    np.testing.assert_array_equal(y0.d, x0.d)


@pytest.mark.parametrize("fine", [True, False])
def test_the_gradient_passes_outside_the_rectangles_or_everywhere(fine):
    nn.seed(5)
    x, y = _erase(np.zeros((4, 2, 6, 7)) - 1, prob=1.0, n=2, share=False,
                  ste_fine_grained=fine)
    dy = np.random.default_rng(0).normal(size=y.shape).astype(np.float32)
    for _ in range(2):
        y.forward()
        x.grad.zero()
        y.backward(dy)
        kept = y.d == -1
        np.testing.assert_array_equal(x.g, dy * kept if fine else dy)


def test_channel_last_erases_the_same_rectangles_in_nhwc():
    image = np.random.default_rng(0).uniform(-3, -2, size=(3, 2, 6, 8)).astype(np.float32)
    results = []
    for channel_last in (False, True):
        nn.seed(6)
        x, y = _erase(np.moveaxis(image, 1, -1) if channel_last else image, prob=1.0,
                      channel_last=channel_last)
        y.forward()
        results.append(np.moveaxis(y.d, -1, 1) if channel_last else y.d)
    np.testing.assert_array_equal(results[0] != image, results[1] != image)


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_one_seed_repeats_the_erasing_on_both_backends(backend, tmp_path):
    xps = pytest.importorskip("array_api_strict")
    x = nn.Variable((3, 2, 6, 6), need_grad=True)
    x.name = "x"
    y = F.random_erase(x, prob=0.7, n=2, replacements=(0.0, 1.0))
    reference = nn.compile(y, name="erase", output_dir=tmp_path / "n", dtype="float64").module
    module = nn.compile(y, name="erase", output_dir=tmp_path / "m", dtype="float64",
                        backend=backend).module
    data = np.random.default_rng(0).uniform(-2, -1, size=(3, 2, 6, 6))
    arg = xps.asarray(data) if backend == "array_api" else data
    for seed in range(3):
        got = module.forward(arg, rng=seed)
        got = np.from_dlpack(got) if backend == "array_api" else got
        np.testing.assert_array_equal(got, reference.forward(data, rng=seed))
    assert not np.array_equal(reference.forward(data, rng=1), reference.forward(data, rng=2))


BAD = [
    ({"base_axis": 0}, r"base_axis 0 must leave 3 axes \(channels, height, width"),
    ({"prob": 1.5}, r"prob=1\.5 must be in \[0, 1\]"),
    ({"n": 0}, r"n=0 must be positive"),
    ({"area_ratios": (0.1,)}, r"area_ratios=\(0\.1,\) must hold 2 numbers"),
    ({"replacements": (0, 1, 2)}, r"replacements=\(0, 1, 2\) must hold 2 numbers"),
]


@pytest.mark.parametrize("kwargs,message", BAD, ids=[b[1][:20] for b in BAD])
def test_bad_arguments_are_refused_when_the_graph_is_built(kwargs, message):
    with pytest.raises(ValueError, match=r"F\.random_erase: input of shape \(2, 3, 4, 5\): "
                                         + message):
        F.random_erase(nn.Variable((2, 3, 4, 5)), **kwargs)
    with pytest.raises(ValueError, match=r"base_axis 1 must leave 3 axes"):
        F.random_erase(nn.Variable((2, 3, 4)))


_NNABLA = r"""
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F
for kwargs in json.loads(sys.argv[1]):
    x = nn.Variable.from_numpy_array(np.zeros((2, 3, 4, 5)))
    try:
        y = F.random_erase(x, **kwargs)
        y.forward()
        print(json.dumps({"ok": list(y.shape)}))
    except Exception:
        print(json.dumps({"refused": True}))
"""


@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set")
def test_nnabla_accepts_and_refuses_the_same_arguments(tmp_path):
    calls = [kwargs for kwargs, _ in BAD] + [{}, {"n": 3, "share": False, "prob": 1.0},
                                            {"ste_fine_grained": False, "base_axis": 1}]
    rows = nnabla_rows(NNABLA, _NNABLA, calls, tmp_path)
    ours = []
    for kwargs in calls:
        try:
            ours.append({"ok": list(F.random_erase(nn.Variable((2, 3, 4, 5)), **kwargs).shape)})
        except ValueError:
            ours.append({"refused": True})
    assert rows == ours
