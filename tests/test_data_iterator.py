"""symcompile.utils.data_iterator gives nnabla's batches, in nnabla's order.

The order tests pin nnabla 1.39's rules (wrap-around batches finish in the old order;
a memory cache repeats epoch 1's order in epoch 2); the differential test runs one
scenario script under symcompile and under real nnabla (the Python that
SYMCOMPILE_NNABLA_PYTHON names) and compares every batch; it skips without nnabla.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from symcompile.utils.data_iterator import (
    DataIterator,
    data_iterator,
    data_iterator_csv_dataset,
    data_iterator_simple,
)
from symcompile.utils.data_source import CsvDataSource, DataSource, SimpleDataSource


def load(i):
    return np.full((2,), i, dtype=np.float32), np.array([i * 10])


def firsts(di, n):
    return [di.next()[0][:, 0].astype(int).tolist() for _ in range(n)]


def test_batches_follow_variables_and_order_without_shuffle():
    di = data_iterator_simple(load, 5, 2)
    x, y = di.next()
    assert di.variables == ["x0", "x1"] and di.size == 5 and di.batch_size == 2
    assert x.dtype == np.float32 and x.shape == (2, 2) and y.tolist() == [[0], [10]]
    # 5 is not a multiple of 2: the third batch wraps around to example 0.
    assert firsts(di, 4) == [[2, 3], [4, 0], [1, 2], [3, 4]]
    assert (di.epoch, di.position) == (2, 0)


def test_shuffle_draws_one_permutation_per_epoch_after_the_crossing_batch():
    rng = np.random.RandomState(0)
    order0, order1 = rng.permutation(5).tolist(), rng.permutation(5).tolist()
    di = data_iterator_simple(load, 5, 2, shuffle=True, rng=np.random.RandomState(0))
    got = sum(firsts(di, 5), [])
    # The batch crossing the epoch end takes its tail from the *old* order's start;
    # the next batch continues at position 1 of the new order.
    assert got == order0 + [order0[0]] + order1[1:5]
    assert di.epoch == 2


def test_memory_cache_repeats_the_first_order_once_as_nnabla_does():
    order0 = np.random.RandomState(0).permutation(4).tolist()
    # data_iterator_simple does not pass its rng on to the cache, which (as in
    # nnabla) then reshuffles with its own RandomState(313).
    order1 = np.random.RandomState(313).permutation(4).tolist()
    di = data_iterator_simple(load, 4, 2, shuffle=True, rng=np.random.RandomState(0),
                              with_memory_cache=True)
    got = sum(firsts(di, 6), [])
    assert got == order0 + order0 + [order0[k] for k in order1]


def test_epoch_callbacks_and_context_manager():
    events = []
    with data_iterator_simple(load, 3, 2,
                              epoch_begin_callbacks=[lambda e: events.append(("begin", e))],
                              epoch_end_callbacks=[lambda e: events.append(("end", e))]) as di:
        di.register_epoch_end_callback(lambda e: events.append(("end2", e)))
        for _ in range(3):
            di.next()
    assert events == [("end", 0), ("end2", 0), ("begin", 1), ("end", 1), ("end2", 1),
                      ("begin", 2)]
    assert di._closed


def test_stop_exhausted_drops_the_partial_batch_and_keeps_stopping():
    di = data_iterator_simple(load, 7, 3, stop_exhausted=True)
    assert [b[0][:, 0].astype(int).tolist() for b in di] == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(StopIteration):
        di.next()
    assert (di.epoch, di.position) == (0, 6)


def test_slices_share_one_shuffle_and_cover_the_data():
    base = data_iterator_simple(load, 11, 2, shuffle=True, rng=np.random.RandomState(5))
    shards = [base.slice(None, num_of_slices=3, slice_pos=k) for k in range(3)]
    assert [s.size for s in shards] == [4, 4, 4]   # the last shard shifts back: 7..10
    order0 = np.random.RandomState(5).permutation(11).tolist()
    first = [sum(firsts(s, 2), []) for s in shards]
    assert first == [order0[0:4], order0[4:8], order0[7:11]]
    dropped = [base.slice(None, num_of_slices=3, slice_pos=k, drop_last=True) for k in range(3)]
    assert [d.size for d in dropped] == [3, 3, 3]
    ranged = base.slice(None, slice_start=2, slice_end=5)
    assert ranged.size == 3
    with pytest.raises(ValueError, match="num_of_slices and slice_pos"):
        base.slice(None, num_of_slices=3)


def test_user_data_source_subclass():
    class Squares(DataSource):
        def __init__(self):
            super().__init__(shuffle=False)
            self._size, self._variables = 4, ("x", "sq")

        def _get_data(self, position):
            return np.array([position]), np.array([position ** 2])

    di = data_iterator(Squares(), 3)
    assert di.variables == ("x", "sq")
    assert di.next()[1].ravel().tolist() == [0, 1, 4]
    assert isinstance(DataIterator(Squares(), 2).next(), tuple)


def _write_csv_dataset(root):
    np.savetxt(root / "a0.csv", np.arange(6).reshape(2, 3), delimiter=",")
    np.savetxt(root / "a1.csv", np.arange(6).reshape(2, 3) + 10, delimiter=",")
    lines = ["x:arr,v__0,v__1,#note,y:label"]
    lines += [f"a{i % 2}.csv,{i},{i * 2},skip,{i % 3}" for i in range(8)]
    (root / "data.csv").write_text("\n".join(lines) + "\n")
    return root / "data.csv"


def test_csv_dataset_numbers_vectors_and_csv_cells(tmp_path):
    path = _write_csv_dataset(tmp_path)
    source = CsvDataSource(str(path))
    assert source.variables == ("x", "v", "y") and source.size == 8
    di = data_iterator_csv_dataset(str(path), 3, with_file_cache=False, with_memory_cache=False)
    x, v, y = di.next()
    assert x.shape == (3, 2, 3) and x[1, 0].tolist() == [10, 11, 12]
    assert v.tolist() == [[0, 0], [1, 2], [2, 4]] and y.tolist() == [[0], [1], [2]]
    assert y.dtype == np.float64
    cached = data_iterator_csv_dataset(str(path), 3)     # nnabla's cache files are float32
    assert cached.next()[2].dtype == np.float32


def test_csv_dataset_images(tmp_path):
    image = pytest.importorskip("PIL.Image")
    rgb = (np.arange(12, dtype=np.uint8).reshape(2, 2, 3) * 20)
    image.fromarray(rgb).save(tmp_path / "rgb.png")
    image.fromarray(np.arange(4, dtype=np.uint8).reshape(2, 2) * 50).save(tmp_path / "g.png")
    (tmp_path / "d.csv").write_text("x:image,y\nrgb.png,1\nrgb.png,2\n")
    x, y = data_iterator_csv_dataset(str(tmp_path / "d.csv"), 2).next()
    np.testing.assert_allclose(x[0], rgb.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    raw = CsvDataSource(str(tmp_path / "d.csv"), normalize=False)._get_data(0)[0]
    assert raw.dtype == np.uint8 and raw.shape == (3, 2, 2)
    (tmp_path / "g.csv").write_text("x:image\ng.png\n")
    assert CsvDataSource(str(tmp_path / "g.csv"))._get_data(0)[0].shape == (1, 2, 2)


def test_bad_input_names_the_function_and_the_fix():
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        data_iterator_simple(load, 5, 0)
    with pytest.raises(ValueError, match="num_examples must be a positive int"):
        data_iterator_simple(load, 0, 2)
    with pytest.raises(ValueError, match="num_examples"):
        SimpleDataSource(load, -3)

    def ragged(i):
        return (np.zeros(2 + i),)

    with pytest.raises(ValueError, match=r"load_func ragged.*same shape"):
        data_iterator_simple(ragged, 4, 2).next()
    with pytest.raises(ValueError, match=r"load_func ragged.*same shape"):
        data_iterator_simple(ragged, 4, 2, with_file_cache=True)
    with pytest.raises(ValueError, match="return a tuple"):
        data_iterator_simple(lambda i: 3.0, 4, 2)


# One script, run under each library; it prints every batch, epoch (and, without
# nnabla's prefetch thread, position) as JSON.
SCENARIOS = textwrap.dedent('''
    import importlib, json, logging, os, sys
    import numpy as np
    lib, root = sys.argv[1], sys.argv[2]
    m = importlib.import_module(lib + ".utils.data_iterator")
    if lib == "nnabla":
        from nnabla.logger import logger
        logger.setLevel(logging.ERROR)
    out = {}
    def lf(i):
        return np.full((2,), i, dtype=np.float32), np.array([i * 10])
    def run(name, di, n, position=False):
        out[name] = [[a.tolist() for a in di.next()] + [di.epoch]
                     + ([di.position] if position else []) for _ in range(n)]
    for size, bs in [(5, 2), (6, 3), (7, 3), (4, 5)]:
        for shuffle in (False, True):
            for mc in (False, True):
                for fc in (False, True):
                    run(f"simple-{size}-{bs}-{shuffle}-{mc}-{fc}", m.data_iterator_simple(
                        lf, size, bs, shuffle=shuffle, rng=np.random.RandomState(7),
                        with_memory_cache=mc, with_file_cache=fc), 3 * -(-size // bs) + 1)
    run("rng-none", m.data_iterator_simple(lf, 7, 3, shuffle=True, with_memory_cache=True), 8)
    run("chunks", m.data_iterator_simple(lf, 230, 32, shuffle=True, with_file_cache=True,
        rng=np.random.RandomState(3)), 25)
    run("no-thread", m.data_iterator_simple(lf, 5, 2, shuffle=True, use_thread=False,
        rng=np.random.RandomState(0)), 8, position=True)
    for mc in (False, True):
        for fc in (False, True):
            run(f"csv-{mc}-{fc}", m.data_iterator_csv_dataset(
                os.path.join(root, "data.csv"), 3, shuffle=True, rng=np.random.RandomState(11),
                with_memory_cache=mc, with_file_cache=fc), 10)
    if os.path.exists(os.path.join(root, "img.csv")):
        run("images", m.data_iterator_csv_dataset(os.path.join(root, "img.csv"), 2,
            shuffle=True, rng=np.random.RandomState(2)), 4)
    base = m.data_iterator_simple(lf, 11, 2, shuffle=True, rng=np.random.RandomState(5))
    shards = [base.slice(None, num_of_slices=3, slice_pos=k) for k in range(3)]
    out["slices"] = [[[a.tolist() for a in s.next()] + [s.epoch] for s in shards]
                     for _ in range(6)]
    events = []
    di = m.data_iterator_simple(lf, 5, 2, epoch_begin_callbacks=[lambda e: events.append(["b", e])],
                                epoch_end_callbacks=[lambda e: events.append(["e", e])])
    for _ in range(6):
        di.next()
        events.append(["n", di.epoch])
    out["callbacks"] = events
    di = m.data_iterator_simple(lf, 7, 3, stop_exhausted=True, use_thread=False)
    out["stop"] = [[b[1].ravel().tolist() for b in di], di.epoch, di.position]
    print(json.dumps(out))
''')


def _nnabla_python():
    candidate = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
    return candidate if candidate and os.path.exists(candidate) else None


def _scenario_results(python, lib, root):
    done = subprocess.run([python, str(root / "scenarios.py"), lib, str(root)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_same_batches_as_nnabla_for_the_same_seed(tmp_path):
    python = _nnabla_python()
    if python is None:
        pytest.skip("no nnabla: set SYMCOMPILE_NNABLA_PYTHON to a Python with nnabla 1.39")
    if subprocess.run([python, "-c", "import nnabla"], capture_output=True).returncode:
        pytest.skip(f"{python} cannot import nnabla")
    _write_csv_dataset(tmp_path)
    try:
        from PIL import Image
        for k in range(3):
            Image.fromarray(np.full((2, 3, 3), 40 * k, dtype=np.uint8)).save(tmp_path / f"i{k}.png")
        (tmp_path / "img.csv").write_text(
            "x:image,y\n" + "".join(f"i{k}.png,{k}\n" for k in range(3)))
    except ImportError:
        pass
    (tmp_path / "scenarios.py").write_text(SCENARIOS)
    mine = _scenario_results(sys.executable, "symcompile", tmp_path)
    theirs = _scenario_results(python, "nnabla", tmp_path)
    assert sorted(mine) == sorted(theirs)
    for name in theirs:
        assert mine[name] == theirs[name], name
