"""Random draws and train-time randomness: rand, randn, randint, rand_binomial,
rand_beta, rand_gamma, dropout, the random flips, shifts, crops, choices and erasures,
image_augmentation. Each is seeded as nnabla's (`seed`, else nn.seed's sequence).
"""

from __future__ import annotations

import math
import numbers

import numpy

from symcompile.frontend.functions._base import _int_argument, _layout, _record
from symcompile.frontend.variable import Variable, normalize_shape
from symcompile.ops.registry import normalize_axes, number

__all__ = [
    "dropout", "rand", "randn", "randint", "random_flip", "random_shift", "random_crop",
    "random_choice", "random_erase", "image_augmentation", "rand_binomial", "rand_beta",
    "rand_gamma",
]

def rand(low=0, high=1, shape=[], seed=-1, n_outputs=-1, outputs=None):  # noqa: B006
    """Uniform random numbers in [low, high) of `shape`, drawn anew by every forward pass
    (from the generated functions' `rng`; see `dropout` for seeding)."""
    return _random("rand", shape, low, high, seed, ("low", "high"))


def randn(mu=0, sigma=1, shape=[], seed=-1, n_outputs=-1, outputs=None):  # noqa: B006
    """Normal random numbers (mean mu, standard deviation sigma) of `shape`, drawn anew by
    every forward pass."""
    return _random("randn", shape, mu, sigma, seed, ("mu", "sigma"))


def randint(low=0, high=1, shape=[], seed=-1, n_outputs=-1, outputs=None):  # noqa: B006
    """Random integers in [low, high) of `shape`, drawn anew by every forward pass; held
    as float32 (symcompile's Variables), where nnabla's are int32."""
    return _random("randint", shape, low, high, seed, ("low", "high"))


def _random(op: str, shape, a, b, seed, names) -> Variable:
    shape = normalize_shape(shape, f"F.{op}")
    first, second = number(a, op, names[0]), number(b, op, names[1])
    if op == "randint" and not (float(first).is_integer() and float(second).is_integer()):
        raise ValueError(f"F.randint: low={a!r} and high={b!r} must be integers")
    if op != "randn" and not float(first) < float(second):
        raise ValueError(f"F.{op}: {names[0]}={a!r} must be less than {names[1]}={b!r}")
    if op == "randn" and not float(second) > 0:
        raise ValueError(f"F.randn: sigma={b!r} must be positive")
    return _record(op, (), shape=shape, a=first, b=second, seed=_seed_argument(op, seed))


def _seed_argument(op: str, seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"F.{op}: seed must be an int (-1: the runtime's generator), got "
                        f"{seed!r}")
    return int(seed)


def dropout(x, p=0.5, seed=-1, n_outputs=-1, outputs=None):
    """Dropout: y = x * mask / (1 - p), each element of the mask 1 with probability 1 - p
    and 0 otherwise, drawn anew by every forward pass (and the same in its backward).

    Generated modules draw the masks from their functions' `rng` argument (a Generator,
    an int seed, or None); the runtime passes its own generator, seeded with `seed` when
    one is given (not -1), else from `nn.seed`'s sequence, so runs are reproducible. The
    draws are NumPy's, so masks differ from nnabla's for the same seed.
    """
    if not isinstance(x, Variable):
        return _record("dropout", (x,))  # raises the TypeError
    rate = number(p, "dropout", "p")
    if not 0 <= float(rate) < 1:
        raise ValueError(f"F.dropout: p={p!r} must be in [0, 1) (the probability of dropping "
                         f"an element of the input of shape {x.shape})")
    return _record("dropout", (x,), p=rate, seed=_seed_argument("dropout", seed))
_BORDER_MODES = ("nearest", "reflect", "constant")  # ops.resampling.BORDER_MODES


def _random_arguments(op: str, x, base_axis, seed) -> int:
    _seed_argument(op, seed)
    base = _int_argument(op, "base_axis", base_axis)
    if not 0 <= base < len(x.shape):
        raise ValueError(f"F.{op}: base_axis {base} is out of range for an input of shape "
                         f"{x.shape} (valid: 0..{len(x.shape) - 1}; the axes before it are "
                         f"the samples, each drawn on its own)")
    return base


def _last_axes(op: str, what: str, values, x, base: int) -> tuple[int, ...]:
    """`values`, one per last axis of x, as a full tuple for the axes from base_axis on
    (0 before them); refused where they would act on a sample axis."""
    values = tuple(_int_argument(op, what, v) for v in values)
    if len(values) > len(x.shape):
        raise ValueError(f"F.{op}: {what}={values} has more entries than the input of shape "
                         f"{x.shape} has axes")
    full = (0,) * (len(x.shape) - len(values)) + values
    if any(full[:base]):
        raise ValueError(f"F.{op}: {what}={values} acts on the sample axes of the input of "
                         f"shape {x.shape} (before base_axis {base}); give entries for the "
                         f"axes from base_axis on only")
    return full[base:]


def random_flip(x, axes=None, base_axis=1, seed=-1, n_outputs=-1, outputs=None):
    """Each sample (the axes before base_axis) reversed along each of `axes` (None: the
    last) with probability 1/2, drawn anew by every forward pass from the generated
    functions' `rng` (seeded as for `dropout`); the gradient goes back through the same
    flips."""
    if not isinstance(x, Variable):
        return _record("random_flip", (x,))  # raises the TypeError
    base = _random_arguments("random_flip", x, base_axis, seed)
    chosen = normalize_axes("random_flip", [x.ndim - 1] if axes is None else axes, x.shape)
    if any(a < base for a in chosen):
        raise ValueError(f"F.random_flip: axes {tuple(chosen)} include sample axes of the "
                         f"input of shape {x.shape} (before base_axis {base}); flip axes "
                         f"from base_axis on")
    mask = tuple(int(a in chosen) for a in range(base, x.ndim))
    return _record("random_flip", (x,), base_axis=base, sizes=x.shape[base:], shifts=mask,
                   seed=int(seed))


def random_shift(x, shifts=None, border_mode="nearest", constant_value=0, base_axis=1,
                 seed=-1, n_outputs=-1, outputs=None):
    """Each sample shifted along its last len(shifts) axes by a number drawn uniformly from
    -shifts[i]..shifts[i], y[j] = x[j - t], anew by every forward pass (see
    `random_flip`); outside the input, `border_mode` "nearest" (the edge), "reflect" (F.shift's
    mirror) or "constant" (`constant_value`). The gradient adds dy back where it was read."""
    if not isinstance(x, Variable):
        return _record("random_shift", (x,))  # raises the TypeError
    if border_mode not in _BORDER_MODES:
        raise ValueError(f"F.random_shift: border_mode={border_mode!r} is not one of "
                         f"nnabla's 'nearest', 'reflect' and 'constant' (input of shape "
                         f"{x.shape})")
    base = _random_arguments("random_shift", x, base_axis, seed)
    shifts = () if shifts is None else (
        (shifts,) if isinstance(shifts, numbers.Integral) else tuple(shifts))
    full = _last_axes("random_shift", "shifts", shifts, x, base)
    if any(s < 0 for s in full):
        raise ValueError(f"F.random_shift: shifts={shifts} must be non-negative (the largest "
                         f"shift each way)")
    return _record("random_shift", (x,), base_axis=base, sizes=x.shape[base:], shifts=full,
                   border_mode=border_mode,
                   constant_value=number(constant_value, "random_shift", "constant_value"),
                   seed=int(seed))


def random_crop(x, shape=None, base_axis=1, seed=-1, n_outputs=-1, outputs=None):
    """Each sample cropped to `shape` (its last len(shape) axes; None: x's shape, no crop)
    at offsets drawn uniformly anew by every forward pass (see `random_flip`); the gradient
    places dy back where the crop was taken, zeros elsewhere."""
    if not isinstance(x, Variable):
        return _record("random_crop", (x,))  # raises the TypeError
    base = _random_arguments("random_crop", x, base_axis, seed)
    shape = x.shape if shape is None else normalize_shape(shape, "F.random_crop")
    if len(shape) > len(x.shape) or any(
            not 1 <= s <= n for s, n in zip(shape, x.shape[len(x.shape) - len(shape):],
                                            strict=True)):
        raise ValueError(f"F.random_crop: shape {tuple(shape)} does not fit the input of "
                         f"shape {x.shape}: give at most one size per axis, for the last "
                         f"axes, each from 1 to the input's size")
    full = x.shape[:len(x.shape) - len(shape)] + tuple(shape)
    if full[:base] != x.shape[:base]:
        raise ValueError(f"F.random_crop: shape {tuple(shape)} crops sample axes of the input "
                         f"of shape {x.shape} (before base_axis {base}); crop axes from "
                         f"base_axis on only")
    return _record("random_crop", (x,), base_axis=base, sizes=full[base:],
                   shifts=(0,) * (len(x.shape) - base), seed=int(seed))


def random_choice(x, w, shape=[], replace=True, seed=-1,  # noqa: B006 (nnabla's default)
                  n_outputs=-1, outputs=None):
    """prod(shape) samples of each population x[..., :] (its last axis), drawn anew by
    every forward pass (seeded as for `dropout`) with the probabilities its weights
    w[..., :] give (non-negative, not all 0), with or without `replace`ment; y has shape
    x.shape[:-1] + shape (shape [] : one sample, (..., 1)). As in nnabla, the gradient adds
    dy into x where each sample was read, and into w at the same places. The weights are
    checked when the module runs (nnabla checks them on its CPU)."""
    if not (isinstance(x, Variable) and isinstance(w, Variable)):
        return _record("random_choice", (x, w))  # raises the TypeError
    where = f"F.random_choice: x of shape {x.shape}, w of shape {w.shape}"
    if x.shape != w.shape or not x.shape:
        raise ValueError(f"{where}: x and w must have one shape (each weight belongs to the "
                         f"element of x at its place; nnabla's rule), of at least one axis")
    seed = _seed_argument("random_choice", seed)
    samples = tuple(normalize_shape(shape, "F.random_choice")) or (1,)
    count = math.prod(samples)
    if count < 1:
        raise ValueError(f"{where}: shape={tuple(shape)} draws no sample; give positive sizes")
    if not replace and count > x.shape[-1]:
        raise ValueError(f"{where}: shape={tuple(shape)} asks {count} samples without "
                         f"replacement of populations of {x.shape[-1]}; draw at most "
                         f"{x.shape[-1]}, or replace=True")
    return _record("random_choice", (x, w), shape=samples, replace=bool(replace),
                   seed=int(seed))


def random_erase(x, prob=0.5, area_ratios=(0.02, 0.4), aspect_ratios=(0.3, 3.3333),
                 replacements=(0.0, 255.0), n=None, share=True, inplace=False, base_axis=1,
                 seed=-1, channel_last=False, ste_fine_grained=True, n_outputs=-1,
                 outputs=None):
    """Each image x[s] (C, H, W; the axes before base_axis are the samples) with up to `n`
    (None: 1) rectangles replaced by uniform noise in `replacements`: each drawn with
    probability `prob`, of area U(area_ratios) * H * W and aspect ratio U(aspect_ratios),
    as nnabla's; one rectangle for every channel (`share`) or one per channel. Drawn anew
    by every forward pass, seeded as for `dropout`. The gradient is dy outside the
    rectangles and 0 inside (``ste_fine_grained=True``), or dy everywhere. NHWC with
    ``channel_last=True``, which nnabla runs on CUDA only. `inplace` is ignored, as by
    nnabla."""
    if not isinstance(x, Variable):
        return _record("random_erase", (x,))  # raises the TypeError
    where = f"F.random_erase: input of shape {x.shape}"
    base = _random_arguments("random_erase", x, base_axis, seed)
    if len(x.shape) - base != 3:
        raise ValueError(f"{where}: base_axis {base} must leave 3 axes (channels, height, "
                         f"width: nnabla erases 2-D images only)")
    prob = float(number(prob, "random_erase", "prob"))
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"{where}: prob={prob} must be in [0, 1]")
    ranges = {}
    for name, values in (("area_ratios", area_ratios), ("aspect_ratios", aspect_ratios),
                         ("replacements", replacements)):
        values = tuple(values) if hasattr(values, "__iter__") else (values,)
        if len(values) != 2:
            raise ValueError(f"{where}: {name}={values} must hold 2 numbers (low, high)")
        ranges[name] = tuple(float(number(v, "random_erase", name)) for v in values)
    rounds = 1 if n is None else _int_argument("random_erase", "n", n)
    if rounds < 1:
        raise ValueError(f"{where}: n={rounds} must be positive (the rectangles per image)")
    return _record("random_erase", (x,), prob=prob, **ranges, n=rounds, share=bool(share),
                   base_axis=base, seed=int(seed), ste_fine_grained=bool(ste_fine_grained),
                   **_layout(channel_last))


def image_augmentation(x, shape=None, pad=(0, 0), min_scale=1.0, max_scale=1.0, angle=0.0,
                       aspect_ratio=1.0, distortion=0.0, flip_lr=False, flip_ud=False,
                       brightness=0.0, brightness_each=False, contrast=1.0,
                       contrast_center=0.0, contrast_each=False, noise=0.0, seed=-1,
                       n_outputs=-1, outputs=None):
    """nnabla's image augmentation of the images of x (its last two axes; the one before
    them the channels, the axes before that the samples), each drawn anew by every forward
    pass from the generated functions' `rng` (seeded as for `dropout`; nnabla's own random
    numbers are not reproduced, their distributions are): scaled by a factor in
    [min_scale, max_scale], its aspect ratio changed by up to `aspect_ratio`, rotated by up
    to +-`angle` radians, padded by `pad` (edge pixels), its window of `shape` (the last
    axes of the output; None: x's) taken at a random place, flipped left-right / up-down
    with probability 1/2 (flip_lr, flip_ud), distorted radially by up to `distortion`,
    read bilinearly with the edge pixels outside; then brightness b in +-`brightness` and
    contrast c in [1/contrast, contrast] (per channel with brightness_each /
    contrast_each): (v + b - contrast_center) * c + contrast_center, and normal noise of a
    sigma drawn in [0, noise]. No gradient reaches x (nnabla's backward does nothing)."""
    if not isinstance(x, Variable):
        return _record("image_augmentation", (x,))  # raises the TypeError
    _seed_argument("image_augmentation", seed)
    shape = x.shape if shape is None else normalize_shape(shape, "F.image_augmentation")
    if isinstance(pad, numbers.Integral):
        raise TypeError(f"F.image_augmentation: pad must be a tuple of 2 ints (height, "
                        f"width), got {pad!r}")
    pad = tuple(_int_argument("image_augmentation", "pad", p) for p in pad)
    flags = {"flip_lr": flip_lr, "flip_ud": flip_ud, "brightness_each": brightness_each,
             "contrast_each": contrast_each}
    for name, value in flags.items():
        if not isinstance(value, (bool, numpy.bool_, int)):
            raise TypeError(f"F.image_augmentation: {name} must be a bool, got {value!r}")
    values = {"min_scale": min_scale, "max_scale": max_scale, "angle": angle,
              "aspect_ratio": aspect_ratio, "distortion": distortion,
              "brightness": brightness, "contrast": contrast,
              "contrast_center": contrast_center, "noise": noise}
    return _record("image_augmentation", (x,), shape=tuple(shape), pad=pad,
                   **{k: number(v, "image_augmentation", k) for k, v in values.items()},
                   **{k: bool(v) for k, v in flags.items()}, seed=int(seed))


def rand_binomial(n=1, p=0.5, shape=[], seed=-1, n_outputs=-1, outputs=None):  # noqa: B006
    """Binomial numbers B(n, p) (successes of n trials of probability p) of `shape`, drawn
    anew by every forward pass (see `rand`); nnabla's n > 0 and 0 < p < 1. Held as
    float32, as nnabla's; no gradient."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
        raise ValueError(f"F.rand_binomial: n={n!r} must be a positive int (the number of "
                         f"trials; nnabla refuses n <= 0)")
    q = number(p, "rand_binomial", "p")
    if not 0 < float(q) < 1:
        raise ValueError(f"F.rand_binomial: p={p!r} must be in (0, 1), both ends excluded "
                         f"(nnabla's check)")
    return _record("rand_binomial", (), n=int(n), p=q,
                   shape=normalize_shape(shape, "F.rand_binomial"),
                   seed=_seed_argument("rand_binomial", seed))


def rand_beta(alpha=0.5, beta=0.5, shape=[], seed=-1, n_outputs=-1, outputs=None):  # noqa: B006
    """Beta(alpha, beta) numbers in [0, 1] of `shape`, drawn anew by every forward pass (see
    `rand`); alpha and beta must be positive. No gradient."""
    a, b = _positive("rand_beta", "alpha", alpha), _positive("rand_beta", "beta", beta)
    return _record("rand_beta", (), alpha=a, beta=b,
                   shape=normalize_shape(shape, "F.rand_beta"),
                   seed=_seed_argument("rand_beta", seed))


def rand_gamma(k=0.5, theta=1, shape=[], seed=-1, n_outputs=-1, outputs=None):  # noqa: B006
    """Gamma numbers of shape k and scale theta (mean k*theta) of `shape`, drawn anew by
    every forward pass (see `rand`); k and theta must be positive. No gradient."""
    a, b = _positive("rand_gamma", "k", k), _positive("rand_gamma", "theta", theta)
    return _record("rand_gamma", (), k=a, theta=b,
                   shape=normalize_shape(shape, "F.rand_gamma"),
                   seed=_seed_argument("rand_gamma", seed))


def _positive(op: str, name: str, value):
    got = number(value, op, name)
    if not float(got) > 0:
        raise ValueError(f"F.{op}: {name}={value!r} must be greater than 0 (nnabla's check)")
    return got
