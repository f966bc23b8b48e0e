"""symcompile gives nnabla's numbers: each scenario in tests/differential/ (and nnabla's
linear-regression tutorial) runs on symcompile and is compared with what real nnabla 1.39
printed for it (tests/differential/nnabla_1.39.json). With SYMCOMPILE_NNABLA_PYTHON
pointing at a Python that has nnabla, the recorded numbers are checked against nnabla
itself too; without it those tests skip.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "differential"))
import run as differential  # noqa: E402  (tests/differential/run.py)

RECORDED = json.loads(differential.RECORDED.read_text(encoding="utf-8"))
SCENARIOS = differential.scenarios()
NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
needs_nnabla = pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set "
                                  "(a Python 3.10 with `pip install nnabla`)")


def assert_same(got: list[dict], expected: list[dict], scenario: str) -> None:
    assert [r["name"] for r in got] == [r["name"] for r in expected], scenario
    for mine, theirs in zip(got, expected, strict=True):
        assert mine["shape"] == theirs["shape"], (scenario, mine["name"])
        np.testing.assert_allclose(mine["value"], theirs["value"], rtol=2e-6, atol=1e-7,
                                   err_msg=f"{scenario}: {mine['name']}")


def test_every_scenario_is_recorded():
    assert sorted(RECORDED) == sorted([p.stem for p in SCENARIOS] + ["tutorial"])


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.stem)
def test_symcompile_gives_nnabla_numbers(scenario):
    assert_same(differential.results(scenario, "symcompile"), RECORDED[scenario.stem],
                scenario.stem)


def test_tutorial_with_swapped_imports_prints_nnabla_numbers():
    """The tutorial's code, verbatim but for its imports, runs to the end on this NumPy
    (its show_result() calls float() on (1, 1) arrays) and prints nnabla's numbers."""
    got = differential.tutorial_numbers("symcompile")
    np.testing.assert_allclose(got, RECORDED["tutorial"], rtol=1e-5, atol=1e-7)


@needs_nnabla
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.stem)
def test_recorded_numbers_are_nnabla_s(scenario):
    assert_same(differential.results(scenario, "nnabla", NNABLA), RECORDED[scenario.stem],
                scenario.stem)


@needs_nnabla
def test_recorded_tutorial_numbers_are_nnabla_s():
    assert differential.tutorial_numbers("nnabla", NNABLA) == RECORDED["tutorial"]
