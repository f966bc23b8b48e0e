"""nnabla's `nnabla.monitor`: training-loop logs written to the files nnabla writes.

A script that swaps `import nnabla` for `import symcompile` keeps its monitor output:

- `MonitorSeries` appends ``"<index> <mean:g>"`` lines to ``<name>.series.txt``,
  averaging the values added since the last line;
- `MonitorTimeElapsed` appends ``"<index> <lap seconds> <iterations> <total seconds>"``
  to ``<name>.timer.txt``;
- `MonitorImage` writes ``<name>/<index:06d>-<j:03d>.png`` per image and
  `MonitorImageTile` one ``<name>/<index:06d>.png`` grid, with nnabla's pixel values
  (float images in [0, 1] become ``uint8(float32(x) * 255)``, truncated, via Pillow).

Spaces in a name become ``-`` in file names. With ``verbose=True`` each write is also
logged at INFO level (logger ``symcompile.monitor``) with nnabla's message text, e.g.
``iter=9 {loss}=0.5``. Pillow and matplotlib are imported only when an image is
written or a plot drawn.
"""

from __future__ import annotations

import io
import logging
import math
import os
import time

import numpy as np

from symcompile.common.files import atomic_write_bytes
from symcompile.frontend.variable import NdArray, Variable

__all__ = [
    "Monitor", "MonitorSeries", "MonitorTimeElapsed", "MonitorImage", "MonitorImageTile",
    "tile_images", "plot_series", "plot_time_elapsed",
]

logger = logging.getLogger("symcompile.monitor")

# nnabla's console format (nnabla.conf's log_console_format).
_NNABLA_FORMAT = "%(asctime)s [%(name)s][%(levelname)s]: %(message)s"


def _log(message: str) -> None:
    """Log at INFO, visibly even in a script that configured no logging.

    nnabla calls `logging.basicConfig(level=INFO)` on import, so its monitors print. A
    library should not configure the root logger, so this logger gets its own handler
    instead, and only while nothing in the hierarchy has one (an application's or
    pytest's logging setup takes over as soon as it exists).
    """
    if not logger.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(_NNABLA_FORMAT))
        logger.addHandler(handler)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)
    logger.info(message)


def _file_stem(monitor: Monitor, name: str) -> str:
    return os.path.join(monitor.save_path, name.replace(" ", "-"))


def _start_file(path: str) -> None:
    """Empty the file, as nnabla does: a new run's monitor starts a new log."""
    with open(path, "w"):
        pass


def _append_line(path: str, line: str) -> None:
    """Append one line and close the file, so a reader (or a crash) sees whole lines."""
    with open(path, "a") as file:
        file.write(line + "\n")


def _as_array(value, what: str) -> np.ndarray:
    """A private NumPy copy of a Variable's `.d`, an NdArray's `.data` or an array.

    A copy, because `.d` is the variable's live memory: buffering it for an average
    would average the last value `interval` times.
    """
    if isinstance(value, Variable):
        value = value.d
    elif isinstance(value, NdArray):
        value = value.data
    elif not isinstance(value, np.ndarray):
        raise TypeError(f"{what} takes a Variable, an NdArray or a numpy.ndarray, "
                        f"not {type(value).__name__}")
    return np.array(value)  # copies, and drops the ndarray subclass


class Monitor:
    """The directory monitors write into (created, parents included, if missing)."""

    def __init__(self, save_path):
        self._save_path = save_path
        os.makedirs(save_path, exist_ok=True)

    @property
    def save_path(self):
        return self._save_path


class MonitorSeries:
    """Logs the mean of the values added over each `interval` indices.

    A line is written when ``index - <index of the last line>`` reaches `interval`
    (the count starts at -1, so with ``interval=10`` indices 0..9 give the first line, at
    9); it holds the mean of every value added since the previous line. Without a
    `monitor` nothing is written to disk, only logged.
    """

    def __init__(self, name, monitor=None, interval=1, verbose=True):
        self.name = name
        self.interval = interval
        self.verbose = verbose
        self.sp = None
        if monitor is not None:
            self.sp = _file_stem(monitor, name) + ".series.txt"
            _start_file(self.sp)
        self.flush_at = -1
        self.buf = []

    def add(self, index, value):
        """Buffer `value` (a number, array, Variable or NdArray); write the mean when due."""
        if isinstance(value, Variable | NdArray | np.ndarray):
            value = _as_array(value, f"MonitorSeries {self.name!r}")
        self.buf.append(value)
        if index - self.flush_at < self.interval:
            return
        try:  # over every element of every buffered value, as nnabla
            mean = np.mean(self.buf)
        except ValueError as error:  # NumPy's "inhomogeneous shape" names no monitor
            shapes = sorted({np.shape(v) for v in self.buf})
            self.buf = []
            raise ValueError(f"MonitorSeries {self.name!r} averages the values added over "
                             f"an interval, which must share one shape; got {shapes}") from error
        if self.verbose:
            _log(f"iter={index} {{{self.name}}}={mean}")
        if self.sp is not None:
            _append_line(self.sp, f"{index} {mean:g}")
        self.flush_at = index
        self.buf = []


class MonitorTimeElapsed:
    """Logs wall-clock time: per `interval` indices (the lap) and since creation.

    Each line is ``index lap iterations total``: the seconds since the previous line (or
    since creation), the number of indices they cover, and the seconds since creation,
    the floats in Python's shortest round-trip form as nnabla writes them.
    """

    def __init__(self, name, monitor=None, interval=100, verbose=True):
        self.name = name
        self.interval = interval
        self.verbose = verbose
        self.sp = None
        if monitor is not None:
            self.sp = _file_stem(monitor, name) + ".timer.txt"
            _start_file(self.sp)
        self.flush_at = -1
        self.start = time.time()
        self.lap = self.start

    def add(self, index):
        """Write a line if `interval` indices have passed since the last one."""
        if index - self.flush_at < self.interval:
            return
        now = time.time()
        lap, total = now - self.lap, now - self.start
        iterations = index - self.flush_at
        self.lap = now
        if self.verbose:
            _log(f"iter={index} {{{self.name}}}={lap}[sec/{iterations}iter] {total}[sec]")
        if self.sp is not None:
            _append_line(self.sp, f"{index} {lap} {iterations} {total}")
        self.flush_at = index


def _due(index, interval) -> bool:
    """Images are written at index 0 and whenever ``index + 1`` is a multiple of interval."""
    return index == 0 or (index + 1) % interval == 0


class MonitorImage:
    """Saves up to `num_images` images of an ``(N, ..., C, H, W)`` batch per interval.

    The batch is flattened to ``(N', C, H, W)``, cut to `num_images`, passed to
    `normalize_method` (default: min-max over the whole cut batch, to [0, 1]), then made
    displayable: channels past the third are dropped, a 2-channel image gets a third
    channel of ones, a 1-channel one is saved in grayscale. Files are
    ``<monitor>/<name>/<index:06d>-<j:03d>.png``.
    """

    def __init__(self, name, monitor, interval=1000, verbose=True, num_images=16,
                 normalize_method=None):
        self.name = name
        self.interval = interval
        self.verbose = verbose
        self.normalize_method = (self.default_normalize_method if normalize_method is None
                                 else normalize_method)
        self.num_images = num_images
        self.save_dir = _file_stem(monitor, name)
        os.makedirs(self.save_dir, exist_ok=True)

    def default_normalize_method(self, x):
        """Min-max scaling of the whole batch to [0, 1]."""
        low, high = x.min(), x.max()
        return (x - low) / (high - low)

    def _displayable(self, var) -> np.ndarray:
        """The batch as ``(n, 1 or 3, H, W)`` (more channels if a custom normalizer adds
        them), normalized, n <= num_images."""
        what = f"{type(self).__name__} {self.name!r}"
        data = _as_array(var, what)
        if data.ndim < 3:
            raise ValueError(f"{what} takes images of shape (N, ..., C, H, W), at least 3 "
                             f"axes; got shape {data.shape}")
        channels = data.shape[-3]
        data = data.reshape(-1, *data.shape[-3:])[:self.num_images]
        data = self.normalize_method(data)
        if channels > 3:
            data = data[:, :3]
        elif channels == 2:
            ones = np.ones((data.shape[0], 1, *data.shape[-2:]))
            data = np.concatenate([data, ones], axis=1)
        return data

    def add(self, index, var):
        """Save the images of `var` (Variable, NdArray or numpy.ndarray) if `index` is due."""
        if not _due(index, self.interval):
            return
        data = self._displayable(var)
        pattern = os.path.join(self.save_dir, f"{index:06d}-{{}}")
        for j in range(min(self.num_images, data.shape[0])):
            image = data[j].transpose(1, 2, 0)  # CHW -> HWC
            if image.shape[-1] == 1:
                image = image[..., 0]
            _save_png(pattern.format(f"{j:03d}.png"), image)
        if self.verbose:
            _log(f"iter={index} {{{self.name}}} are written to {pattern.format('*.png')}.")


class MonitorImageTile(MonitorImage):
    """Like `MonitorImage`, but the images of an interval are tiled (`tile_images`) into
    one ``<monitor>/<name>/<index:06d>.png``."""

    def add(self, index, var):
        """Save the tiled images of `var` if `index` is due."""
        if not _due(index, self.interval):
            return
        path = os.path.join(self.save_dir, f"{index:06d}.png")
        _save_png(path, tile_images(self._displayable(var)))
        if self.verbose:
            _log(f"iter={index} {{{self.name}}} is written to {path}.")


def tile_images(data, padsize=1, padval=0):
    """Lay a ``(B, C, H, W)`` batch out as an n x n grid, ``n = ceil(sqrt(B))``.

    Each tile is the image with `padsize` rows below and columns to its right filled with
    `padval`; missing tiles are all `padval`. Returns ``(n*(H+p), n*(W+p), C)``, or
    ``(n*(H+p), n*(W+p))`` when C == 1.
    """
    data = np.asarray(data)
    if data.ndim != 4:
        raise ValueError(f"tile_images takes a (B, C, H, W) array; got shape {data.shape}")
    count, channels, height, width = data.shape
    n = math.isqrt(count)
    n += n * n < count
    tiles = np.pad(data.transpose(0, 2, 3, 1),  # BHWC
                   ((0, n * n - count), (0, padsize), (0, padsize), (0, 0)),
                   mode="constant", constant_values=padval)
    tall, wide = height + padsize, width + padsize
    # (row, column, y, x, C) -> (row, y, column, x, C): rows of tiles, then pixel rows
    grid = tiles.reshape(n, n, tall, wide, channels).transpose(0, 2, 1, 3, 4)
    grid = grid.reshape(n * tall, n * wide, channels)
    return grid[..., 0] if channels == 1 else grid


def _to_uint8(image: np.ndarray, path: str) -> np.ndarray:
    """nnabla's `imsave` scaling on its Pillow backend: uint8 as is; other dtypes must lie
    in [0, 1] and become ``uint8(float32(x) * 255)``, truncated (not rounded)."""
    if image.ndim not in (2, 3):
        raise ValueError(f"cannot save {path}: an image has 2 or 3 axes, "
                         f"got shape {image.shape}")
    if image.dtype == np.uint16:
        raise ValueError(f"cannot save {path}: uint16 images are not supported "
                         "(nnabla's Pillow backend refuses them too); scale to [0, 1]")
    if image.dtype != np.uint8:
        if np.any(image < 0) or np.any(image > 1):
            raise ValueError(f"cannot save {path}: pixel values must lie in [0, 1] "
                             f"(got {np.min(image)} .. {np.max(image)}); check the "
                             "monitor's normalize_method")
        image = (np.asarray(image, np.float32) * 255).astype(np.uint8)
    if image.ndim == 3:
        if image.shape[-1] not in (1, 2, 3, 4):
            raise ValueError(f"cannot save {path}: an image has 1 to 4 channels, "
                             f"got {image.shape[-1]}")
        if image.shape[-1] == 1:
            image = image[..., 0]
    return image


def _save_png(path: str, image: np.ndarray) -> None:
    """Encode with Pillow as nnabla does, then write atomically (temporary file in the
    same directory, renamed), so a viewer never opens half a PNG."""
    pixels = _to_uint8(image, path)
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError("MonitorImage and MonitorImageTile write PNG files with Pillow, "
                          "which is not installed: pip install Pillow "
                          "(or pip install 'symcompile[images]')") from error
    encoded = io.BytesIO()
    Image.fromarray(pixels).save(encoded, format="PNG")
    atomic_write_bytes(path, encoded.getvalue())


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("plot_series and plot_time_elapsed draw with matplotlib, which "
                          "is not installed: pip install matplotlib") from error
    return plt


def plot_series(filename, plot_kwargs=None):
    """Plot a `MonitorSeries` file (index against value) on the current matplotlib axes."""
    plt = _pyplot()
    data = np.genfromtxt(filename, dtype="i8,f4", names=["k", "v"])
    plt.plot(data["k"], data["v"], **(plot_kwargs or {}))


_SECONDS_PER = {"s": 1, "m": 60, "h": 3600, "d": 3600 * 24}


def plot_time_elapsed(filename, elapsed=False, unit="s", plot_kwargs=None):
    """Plot a `MonitorTimeElapsed` file: the lap times, or with ``elapsed=True`` the
    total time, in seconds, minutes, hours or days (`unit` "s", "m", "h" or "d")."""
    if unit not in _SECONDS_PER:
        raise ValueError("The argument `unit` must be chosen from {s|m|h|d}.")
    plt = _pyplot()
    data = np.genfromtxt(filename, dtype="i8,f4", usecols=(0, 3 if elapsed else 1),
                         names=["k", "v"])
    values = data["v"]
    if unit != "s":
        values = values / np.float32(_SECONDS_PER[unit])
    plt.plot(data["k"], values, **(plot_kwargs or {}))
