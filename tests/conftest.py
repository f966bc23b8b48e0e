"""Shared fixtures: a clean parameter registry and a private compile cache per test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import symcompile as nn
from symcompile.runtime import execution as runtime

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite the checked-in generated modules instead of comparing")


@pytest.fixture(autouse=True)
def fresh_state(tmp_path, monkeypatch):
    """Each test starts with no parameters and its own on-disk module cache."""
    monkeypatch.setenv("SYMCOMPILE_CACHE_DIR", str(tmp_path / "cache"))
    runtime._modules.clear()
    runtime._updates.clear()
    nn.clear_parameters()
    np.random.seed(0)
    yield
    nn.clear_parameters()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
