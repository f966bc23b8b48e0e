"""nnabla's tutorial helper (tutorial/tiny_digits.py): the digits through data_iterator_simple."""

import numpy as np
from sklearn.datasets import load_digits as _load
from symcompile.utils.data_iterator import data_iterator_simple

def load_digits(n_class=10, normalize=True):
    digits = _load(n_class=n_class)
    if normalize:
        digits.images = digits.images / 16.0
    return digits

def data_iterator_tiny_digits(digits, batch_size=64, shuffle=False, rng=None):
    def load_func(index):
        return digits.images[index][None], np.array([digits.target[index]])
    return data_iterator_simple(load_func, digits.target.shape[0], batch_size, shuffle, rng, with_file_cache=False)
