"""nnabla's tutorial runs unchanged with only the imports swapped, and keeps its semantics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

TUTORIAL = Path(__file__).parent / "tutorials" / "linear_regression_nnabla.py"


@pytest.fixture
def tutorial():
    source = TUTORIAL.read_text()
    swapped = source.replace("import nnabla as nn", "import symcompile as nn").replace(
        "import nnabla.", "import symcompile.")
    pairs = zip(source.splitlines(), swapped.splitlines(), strict=True)
    changed = [(a, b) for a, b in pairs if a != b]
    assert len(changed) == 4 and all(a.startswith("import nnabla") for a, _ in changed)
    namespace = {"__name__": "__tutorial__"}
    exec(compile(swapped, str(TUTORIAL), "exec"), namespace)
    return namespace


def test_parameters_are_a_and_b(tutorial):
    assert list(tutorial["params"]) == ["a", "b"]
    assert all(p.shape == (1, 1) and p.need_grad for p in tutorial["params"].values())


def test_update_moves_by_exactly_minus_lr_times_grad(tutorial):
    lr = np.float32(0.01)
    np.testing.assert_array_equal(tutorial["after_a"],
                                  tutorial["first_a"] - lr * tutorial["first_ga"])
    np.testing.assert_array_equal(tutorial["after_b"],
                                  tutorial["first_b"] - lr * tutorial["first_gb"])
    assert tutorial["after_a"].dtype == np.float32


def test_second_backward_doubles_the_gradient(tutorial):
    np.testing.assert_array_equal(tutorial["twice"], 2 * tutorial["once"])


def test_update_uses_hand_edited_gradients(tutorial):
    np.testing.assert_array_equal(tutorial["manual_after_a"],
                                  tutorial["manual_a"] - np.float32(0.01) * np.float32(15))
    np.testing.assert_array_equal(tutorial["manual_after_b"],
                                  tutorial["manual_b"] - np.float32(0.01) * np.float32(-10))


def test_converges_after_200_updates(tutorial):
    assert abs(tutorial["a"].d.item() - 0.3) < 0.02
    assert abs(tutorial["b"].d.item() - 1.5) < 0.02


def test_gradient_matches_the_closed_form(tutorial):
    """d loss/d a = mean(-2 x (y - (a x + b))), d loss/d b = mean(-2 (y - (a x + b)))."""
    x = tutorial["x"].d.astype(np.float64)
    y = tutorial["y_true"].d.astype(np.float64)
    a, b = tutorial["first_a"].item(), tutorial["first_b"].item()
    tutorial["a"].d = a
    tutorial["b"].d = b
    tutorial["solver"].zero_grad()
    tutorial["loss"].forward()
    tutorial["loss"].backward()
    r = y - (a * x + b)
    np.testing.assert_allclose(tutorial["a"].g, np.mean(-2 * x * r), rtol=1e-5)
    np.testing.assert_allclose(tutorial["b"].g, np.mean(-2 * r), rtol=1e-5)
    np.testing.assert_allclose(tutorial["loss"].d, np.mean(r**2), rtol=1e-5)
