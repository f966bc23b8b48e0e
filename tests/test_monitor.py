"""symcompile.monitor writes the files nnabla.monitor writes.

Series files are checked line for line, timer files structurally (their numbers are
wall-clock times), images by name and pixel. With nnabla 1.39 available
(the Python that SYMCOMPILE_NNABLA_PYTHON names) one script runs on both
libraries and their output directories are compared; the other tests hold without it,
against a NumPy statement of nnabla's scaling. Image tests skip without Pillow.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import symcompile as nn
import symcompile.monitor as M

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
needs_nnabla = pytest.mark.skipif(not NNABLA, reason="no nnabla: set SYMCOMPILE_NNABLA_PYTHON "
                                  "(a Python 3.10 with `pip install nnabla`)")


@pytest.fixture
def pil():
    return pytest.importorskip("PIL.Image", reason="Pillow is not installed")


def pixels(path, pil) -> np.ndarray:
    with pil.open(path) as image:
        return np.asarray(image)


def reference_uint8(x: np.ndarray) -> np.ndarray:
    """nnabla's documented scaling of a float image in [0, 1]: float32, times 255, truncated."""
    return (x.astype(np.float32) * 255).astype(np.uint8)


# --- series and timer ---------------------------------------------------------------------

def test_series_averages_each_interval_and_writes_g_format(tmp_path):
    monitor = M.Monitor(str(tmp_path / "out"))
    series = M.MonitorSeries("train loss", monitor, interval=3, verbose=False)
    for i in range(8):
        series.add(i, i * 0.5 + 1e-7)
    # lines at 2 (0..2), 5 (3..5); 6 and 7 stay buffered
    assert (tmp_path / "out" / "train-loss.series.txt").read_text() == "2 0.5\n5 2\n"
    series.add(8, 100.0)  # 6, 7, 8 -> mean(3, 3.5, 100)
    assert (tmp_path / "out" / "train-loss.series.txt").read_text().splitlines()[-1] == \
        f"8 {np.mean([3 + 1e-7, 3.5 + 1e-7, 100.0]):g}"


def test_series_restarts_its_file_and_logs_nnabla_s_text(tmp_path, caplog):
    monitor = M.Monitor(str(tmp_path))
    (tmp_path / "loss.series.txt").write_text("stale\n")
    series = M.MonitorSeries("loss", monitor)
    with caplog.at_level(logging.INFO, logger="symcompile.monitor"):
        series.add(0, 0.25)
        series.add(1, 1234567.0)
    assert (tmp_path / "loss.series.txt").read_text() == "0 0.25\n1 1.23457e+06\n"
    assert [r.getMessage() for r in caplog.records] == [
        "iter=0 {loss}=0.25", "iter=1 {loss}=1234567.0"]


def test_series_without_monitor_writes_nothing(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    series = M.MonitorSeries("x", interval=2)
    with caplog.at_level(logging.INFO, logger="symcompile.monitor"):
        for i in range(4):
            series.add(i, float(i))
    assert list(tmp_path.iterdir()) == []
    assert [r.getMessage() for r in caplog.records] == ["iter=1 {x}=0.5", "iter=3 {x}=2.5"]


def test_series_takes_variables_ndarrays_and_arrays_and_copies_them(tmp_path):
    monitor = M.Monitor(str(tmp_path))
    series = M.MonitorSeries("v", monitor, interval=3, verbose=False)
    v = nn.Variable((1, 1))
    v.d = 2.0
    live = np.array([[5.0]], dtype=np.float32)
    series.add(0, v)
    series.add(1, v.data)
    v.d = 1000.0  # buffered values were copies: later writes change nothing
    series.add(2, live)
    assert (tmp_path / "v.series.txt").read_text() == "2 3\n"  # (2 + 2 + 5) / 3, not 1000
    series.add(3, np.zeros(2))
    series.add(4, 1.0)
    with pytest.raises(ValueError, match=r"MonitorSeries 'v'.*one shape; got \[\(\), \(2,\)\]"):
        series.add(5, 1.0)


def test_timer_lines_have_index_lap_iterations_total(tmp_path):
    monitor = M.Monitor(str(tmp_path))
    timer = M.MonitorTimeElapsed("epoch time", monitor, interval=2, verbose=False)
    for i in range(7):
        timer.add(i)
    lines = (tmp_path / "epoch-time.timer.txt").read_text().splitlines()
    fields = [line.split(" ") for line in lines]
    assert all(len(f) == 4 for f in fields)
    assert [int(f[0]) for f in fields] == [1, 3, 5]
    assert [int(f[2]) for f in fields] == [2, 2, 2]
    laps, totals = np.array([[float(f[1]), float(f[3])] for f in fields]).T
    assert np.all(laps >= 0)
    np.testing.assert_allclose(np.cumsum(laps), totals, rtol=1e-9, atol=1e-9)
    for f in fields:  # Python's repr of a float, as nnabla's "{}" writes it
        assert repr(float(f[1])) == f[1] and repr(float(f[3])) == f[3]


def test_timer_log_text(caplog):
    timer = M.MonitorTimeElapsed("t", interval=1)
    with caplog.at_level(logging.INFO, logger="symcompile.monitor"):
        timer.add(0)
    assert re.fullmatch(r"iter=0 \{t\}=\S+\[sec/1iter\] \S+\[sec\]", caplog.records[0].getMessage())


# --- tile_images ----------------------------------------------------------------------------

def test_tile_images_hand_computed():
    data = np.arange(1, 4, dtype=np.float64).reshape(3, 1, 1, 1)  # three 1x1 gray images
    expected = np.array([[1, 0, 2, 0],
                         [0, 0, 0, 0],
                         [3, 0, 0, 0],
                         [0, 0, 0, 0]], dtype=np.float64)
    np.testing.assert_array_equal(M.tile_images(data), expected)
    color = np.arange(2 * 2 * 1 * 2).reshape(2, 2, 1, 2)  # B=2, C=2, H=1, W=2
    tile = M.tile_images(color, padsize=0, padval=9)
    assert tile.shape == (2, 4, 2)  # n=2: 2 rows of tiles, the second empty (padval)
    np.testing.assert_array_equal(tile[0, :, 0], [0, 1, 4, 5])
    np.testing.assert_array_equal(tile[0, :, 1], [2, 3, 6, 7])
    np.testing.assert_array_equal(tile[1], 9)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        M.tile_images(np.zeros((2, 2, 2)))


# --- images ---------------------------------------------------------------------------------

def test_image_names_and_pixels_follow_nnabla_scaling(tmp_path, pil):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 3, 4, 5))  # (N, ..., C, H, W): 6 images
    monitor = M.Monitor(str(tmp_path))
    images = M.MonitorImage("fake images", monitor, interval=5, num_images=4, verbose=False)
    for i in range(10):
        images.add(i, x)
    folder = tmp_path / "fake-images"
    assert sorted(p.name for p in folder.iterdir()) == [
        f"{i:06d}-{j:03d}.png" for i in (0, 4, 9) for j in range(4)]
    batch = x.reshape(-1, 3, 4, 5)[:4]
    normalized = (batch - batch.min()) / (batch.max() - batch.min())
    for j in range(4):
        got = pixels(folder / f"000004-{j:03d}.png", pil)
        np.testing.assert_array_equal(got, reference_uint8(normalized[j].transpose(1, 2, 0)))


@pytest.mark.parametrize("channels, mode", [(1, "L"), (2, "RGB"), (4, "RGB")])
def test_image_channels(tmp_path, pil, channels, mode):
    x = np.linspace(0, 1, 2 * channels * 3 * 3).reshape(2, channels, 3, 3)
    images = M.MonitorImage("m", M.Monitor(str(tmp_path)), interval=1, verbose=False)
    images.add(0, x)
    with pil.open(tmp_path / "m" / "000000-001.png") as image:
        assert image.mode == mode
    got = pixels(tmp_path / "m" / "000000-001.png", pil)
    want = x[1, :3]
    if channels == 2:
        want = np.concatenate([want, np.ones((1, 3, 3))])
    want = reference_uint8(want.transpose(1, 2, 0))
    np.testing.assert_array_equal(got, want[..., 0] if channels == 1 else want)


def test_image_tile_and_inputs(tmp_path, pil):
    x = np.random.default_rng(1).random((5, 3, 2, 2)).astype(np.float32)
    v = nn.Variable(x.shape)
    v.d = x
    monitor = M.Monitor(str(tmp_path))
    for name, value in [("variable", v), ("ndarray", v.data), ("array", x)]:
        M.MonitorImageTile(name, monitor, interval=1, verbose=False,
                           normalize_method=lambda b: b).add(0, value)
        got = pixels(tmp_path / name / "000000.png", pil)
        np.testing.assert_array_equal(got, reference_uint8(M.tile_images(x)))
    assert got.shape == (9, 9, 3)  # n = 3 tiles of 2 + 1 padding


def test_bad_images_raise_naming_the_monitor(tmp_path, pil):
    images = M.MonitorImage("gen", M.Monitor(str(tmp_path)), interval=1, verbose=False)
    with pytest.raises(ValueError, match=r"MonitorImage 'gen'.*\(N, \.\.\., C, H, W\).*\(4, 4\)"):
        images.add(0, np.zeros((4, 4)))
    with pytest.raises(TypeError, match="MonitorImage 'gen'"):
        images.add(0, [[[0.0]]])
    unscaled = M.MonitorImage("raw", M.Monitor(str(tmp_path)), interval=1, verbose=False,
                              normalize_method=lambda b: b * 2)
    with pytest.raises(ValueError, match=r"\[0, 1\].*normalize_method"):
        unscaled.add(0, np.ones((1, 1, 2, 2)))


def test_image_writes_leave_no_temporary_files(tmp_path, pil, caplog):
    images = M.MonitorImage("a b", M.Monitor(str(tmp_path)), interval=1, num_images=2)
    with caplog.at_level(logging.INFO, logger="symcompile.monitor"):
        images.add(0, np.random.default_rng(2).random((3, 3, 2, 2)))
    assert sorted(os.listdir(tmp_path / "a-b")) == ["000000-000.png", "000000-001.png"]
    assert caplog.records[0].getMessage() == (
        f"iter=0 {{a b}} are written to {os.path.join(str(tmp_path), 'a-b', '000000-*.png')}.")


def test_missing_pillow_and_matplotlib_say_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    images = M.MonitorImage("m", M.Monitor(str(tmp_path)), interval=1, verbose=False)
    with pytest.raises(ImportError, match="pip install Pillow"):
        images.add(0, np.arange(4.0).reshape(1, 1, 2, 2))
    (tmp_path / "s.series.txt").write_text("0 1\n1 2\n")
    with pytest.raises(ImportError, match="pip install matplotlib"):
        M.plot_series(str(tmp_path / "s.series.txt"))
    with pytest.raises(ValueError, match="s|m|h|d"):
        M.plot_time_elapsed(str(tmp_path / "s.series.txt"), unit="y")


def test_top_level_name_is_the_runtime_module():
    from symcompile.runtime import monitor
    assert M is monitor


# --- against nnabla 1.39 --------------------------------------------------------------------

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    if sys.argv[1] == "nnabla":
        import nnabla as nn
        import nnabla.monitor as M
    else:
        import symcompile as nn
        import symcompile.monitor as M

    rng = np.random.RandomState(0)
    monitor = M.Monitor("out")
    series = M.MonitorSeries("train loss", monitor, interval=3)
    plain = M.MonitorSeries("err", monitor)
    timer = M.MonitorTimeElapsed("time", monitor, interval=4)
    shapes = {"gray": (3, 1, 5, 4), "two": (3, 2, 4, 4), "rgb": (2, 2, 3, 6, 5),
              "four": (5, 4, 3, 3)}
    singles = {k: M.MonitorImage("single " + k, monitor, interval=4, num_images=3)
               for k in shapes}
    tiles = {k: M.MonitorImageTile("tile " + k, monitor, interval=4, num_images=5)
             for k in shapes}
    custom = M.MonitorImageTile("custom", monitor, interval=1,
                                normalize_method=lambda b: 1 / (1 + np.exp(-b)))
    var = nn.Variable((4, 3, 3, 3))
    for i in range(9):
        values = rng.randn(4).astype(np.float32)
        series.add(i, values[0])
        plain.add(i, float(values[1]) * 1000)
        timer.add(i)
        for k, shape in shapes.items():
            x = rng.randn(*shape)
            singles[k].add(i, x)
            tiles[k].add(i, x)
        var.d = rng.randn(*var.shape)
        custom.add(i, var)
""")


def _run(python: str, library: str, cwd: Path) -> list[str]:
    cwd.mkdir()
    script = cwd / "script.py"
    script.write_text(SCRIPT)
    done = subprocess.run([python, str(script), library], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert done.returncode == 0, done.stderr[-3000:]
    return [line.split("]: ", 1)[1] for line in done.stderr.splitlines() if "]: iter=" in line]


@needs_nnabla
def test_same_files_as_nnabla(tmp_path, pil):
    theirs_log = _run(NNABLA, "nnabla", tmp_path / "nnabla")
    mine_log = _run(sys.executable, "symcompile", tmp_path / "symcompile")
    theirs, mine = tmp_path / "nnabla" / "out", tmp_path / "symcompile" / "out"
    names = sorted(str(p.relative_to(theirs)) for p in theirs.rglob("*") if p.is_file())
    assert names == sorted(str(p.relative_to(mine)) for p in mine.rglob("*") if p.is_file())
    assert len([n for n in names if n.endswith(".png")]) == 4 * 3 * 3 + 4 * 3 + 9
    for name in names:
        if name.endswith(".series.txt"):
            assert (mine / name).read_bytes() == (theirs / name).read_bytes(), name
        elif name.endswith(".timer.txt"):
            def shape(text):
                return [(f[0], f[2], len(f)) for f in (ln.split(" ") for ln in text.splitlines())]
            assert shape((mine / name).read_text()) == shape((theirs / name).read_text())
        else:
            a, b = pixels(mine / name, pil), pixels(theirs / name, pil)
            assert a.dtype == b.dtype and a.shape == b.shape, name
            np.testing.assert_array_equal(a, b, err_msg=name)

    def masked(line):  # timer messages carry times
        return re.sub(r"\{time\}=\S+\[sec/(\d+)iter\] \S+\[sec\]", r"{time}=T[sec/\1iter] T",
                      line)
    assert [masked(m) for m in mine_log] == [masked(m) for m in theirs_log]
    assert len(mine_log) == 3 + 9 + 2 + 4 * 2 * 3 + 9
