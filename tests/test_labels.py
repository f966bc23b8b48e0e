"""Class labels of F.softmax_cross_entropy, read as nnabla reads them.

nnabla casts each label to int (truncating: 1.7 is class 1, -0.5 is class 0), ignores a
sample labelled -1 (zero loss, zero gradient) and has no class for anything else; here
such a label (7 of 5 classes, -2, NaN, inf) is refused with a ValueError naming the
input, the value and its index, by the runtime and by the generated module alike.
"""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import numeric_gradient

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF

N, C = 4, 5
LOGITS = np.array([[0.2, -1.0, 0.5, 1.5, -0.3],
                   [1.0, 0.1, -0.4, 0.0, 0.7],
                   [-0.6, 0.9, 0.3, -1.2, 0.4],
                   [0.5, 0.5, -0.5, 2.0, -2.0]])


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def reference(logits, classes):
    """nnabla's mean softmax cross entropy and its gradient, for integer classes (-1:
    ignored)."""
    p = softmax(np.asarray(logits, np.float64))
    classes = np.asarray(classes).reshape(-1)
    valid = classes != -1
    onehot = np.zeros_like(p)
    onehot[np.arange(len(classes))[valid], classes[valid]] = 1
    losses = np.where(valid, -np.log(p[np.arange(len(classes)), np.where(valid, classes, 0)]),
                      0.0)
    gradient = (p - onehot) * valid[:, None] / len(classes)
    return losses.mean(), gradient


def runtime_graph():
    """loss = mean(softmax_cross_entropy(x, t)) with x (4, 5) trainable, t (4, 1)."""
    x = nn.Variable((N, C), need_grad=True)
    x.name = "x"
    x.d = LOGITS
    t = nn.Variable((N, 1))
    t.name = "t"
    loss = F.mean(F.softmax_cross_entropy(x, t))
    return x, t, loss


def forward_backward(labels):
    x, t, loss = runtime_graph()
    t.d = np.asarray(labels, np.float64).reshape(N, 1)
    loss.forward()
    x.grad.zero()
    loss.backward()
    return float(loss.d), x.g.copy()


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A module with a parameter: loss = mean(softmax_cross_entropy(affine(x), t))."""
    nn.clear_parameters()
    x = nn.Variable((N, 3))
    x.name = "x"
    t = nn.Variable((N, 1))
    t.name = "t"
    loss = F.mean(F.softmax_cross_entropy(PF.affine(x, C), t))
    module = nn.compile(loss, name="classifier", output_dir=tmp_path_factory.mktemp("labels"),
                        solver="sgd").module
    nn.clear_parameters()
    return module


def classifier_arguments(m, labels, dtype=np.float32):
    rng = np.random.default_rng(5)
    params = m.init_parameters(seed=1)
    return {"x": rng.standard_normal((N, 3)).astype(np.float32),
            "t": np.asarray(labels).reshape(N, 1).astype(dtype), **params}


# --- truncation and -1 ------------------------------------------------------------------

def test_a_fractional_label_is_its_truncated_class_in_forward_and_backward():
    loss, grad = forward_backward([1.7, 0, 3, 4.9])
    loss_int, grad_int = forward_backward([1, 0, 3, 4])
    expected_loss, expected_grad = reference(LOGITS, [1, 0, 3, 4])
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    assert loss == pytest.approx(loss_int, rel=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(grad, grad_int, rtol=1e-6, atol=1e-8)
    # row 0: softmax - onehot(1), over the batch of 4
    np.testing.assert_allclose(grad[0] * N, softmax(LOGITS)[0] - np.eye(C)[1], atol=1e-6)


def test_truncation_is_towards_zero():
    loss, grad = forward_backward([-0.5, 2.99, 0.2, 3])  # -0.5 is class 0, not -1
    expected_loss, expected_grad = reference(LOGITS, [0, 2, 0, 3])
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)


def test_label_minus_one_gives_zero_loss_and_zero_gradient_for_its_row():
    loss, grad = forward_backward([-1, 2, 0, -1])
    expected_loss, expected_grad = reference(LOGITS, [-1, 2, 0, -1])
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    np.testing.assert_array_equal(grad[0], 0)
    np.testing.assert_array_equal(grad[3], 0)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)
    # -1.5 truncates to -1: ignored too
    loss_fraction, grad_fraction = forward_backward([-1.5, 2, 0, -1])
    assert loss_fraction == pytest.approx(loss, rel=1e-6)
    np.testing.assert_allclose(grad_fraction, grad, atol=1e-8)


def test_gradient_with_fractional_and_ignored_labels_matches_finite_differences(tmp_path):
    x, t, loss = runtime_graph()
    m = nn.compile(loss, name="ce64", output_dir=tmp_path, dtype="float64").module
    assert list(m.INPUTS) == ["x", "t"]
    labels = np.array([[1.7], [-1], [4.2], [0.0]])
    _, analytic = m.gradient(LOGITS.copy(), labels)
    numeric = numeric_gradient(lambda logits, lab: m.forward(logits, lab),
                               [LOGITS, labels], 0)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(analytic, reference(LOGITS, [1, -1, 4, 0])[1], rtol=1e-9,
                               atol=1e-12)


# --- labels without a class -------------------------------------------------------------

BAD_LABELS = [7, 5, -2, np.nan, np.inf, -np.inf]
BAD_IDS = ["7", "5", "-2", "nan", "inf", "-inf"]


def mentions(message: str, value: float) -> bool:
    return ("nan" in message if np.isnan(value) else
            ("-inf" in message if value == -np.inf else
             "inf" in message if np.isinf(value) else str(int(value)) in message))


@pytest.mark.parametrize("bad", BAD_LABELS, ids=BAD_IDS)
def test_runtime_forward_refuses_a_label_without_a_class(bad):
    x, t, loss = runtime_graph()
    t.d = [[0], [1], [bad], [2]]
    with pytest.raises(ValueError) as error:
        loss.forward()
    message = str(error.value)
    assert "forward" in message and "'t'" in message and "(2, 0)" in message
    assert mentions(message, bad), message


@pytest.mark.parametrize("bad", BAD_LABELS, ids=BAD_IDS)
def test_runtime_backward_refuses_a_label_without_a_class(bad):
    x, t, loss = runtime_graph()
    t.d = [[0], [1], [2], [3]]
    loss.forward()
    t.d = [[bad], [1], [2], [3]]
    x.grad.zero()
    with pytest.raises(ValueError) as error:
        loss.backward()
    message = str(error.value)
    assert "backward" in message and "'t'" in message and "(0, 0)" in message
    assert mentions(message, bad), message
    np.testing.assert_array_equal(x.g, 0)  # no gradient was written


@pytest.mark.parametrize("bad", BAD_LABELS, ids=BAD_IDS)
def test_generated_forward_refuses_a_label_without_a_class(classifier, bad):
    args = classifier_arguments(classifier, [0, 1, 2, 3])
    args["t"][1, 0] = bad
    with pytest.raises(ValueError) as error:
        classifier.forward(**args)
    message = str(error.value)
    assert "forward()" in message and "'t'" in message and "(1, 0)" in message
    assert mentions(message, bad), message


@pytest.mark.parametrize("function", ["gradient", "sgd_step", "forward_saving"])
def test_every_generated_function_refuses_bad_labels(classifier, function):
    args = classifier_arguments(classifier, [0, 1, 2, 3])
    args["t"][3, 0] = 9
    before = {k: v.copy() for k, v in args.items()}
    with pytest.raises(ValueError, match=rf"{function}\(\).*'t'.*9.*\(3, 0\)"):
        getattr(classifier, function)(**args)
    for name, value in before.items():
        np.testing.assert_array_equal(args[name], value)  # sgd_step updated nothing


def test_generated_backward_refuses_bad_labels(classifier):
    args = classifier_arguments(classifier, [0, 1, 2, 3])
    _, saved = classifier.forward_saving(**args)
    args["t"][2, 0] = -2
    with pytest.raises(ValueError, match=r"backward\(\).*'t'.*-2.*\(2, 0\)"):
        classifier.backward(saved, **args, g_loss=np.float32(1.0))


# --- integer labels -----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.float64])
def test_generated_module_accepts_labels_of_any_integer_dtype(classifier, dtype):
    reference_args = classifier_arguments(classifier, [4, 0, 2, 1])
    args = classifier_arguments(classifier, [4, 0, 2, 1], dtype)
    assert args["t"].dtype == dtype
    assert classifier.forward(**args) == classifier.forward(**reference_args)
    _, *grads = classifier.gradient(**args)
    _, *expected = classifier.gradient(**reference_args)
    for g, e in zip(grads, expected, strict=True):
        np.testing.assert_array_equal(g, e)


def test_generated_module_reads_fractional_labels_as_nnabla_does(classifier):
    fractional = classifier_arguments(classifier, [4.5, 0.9, 2.1, -1.0])
    integer = classifier_arguments(classifier, [4, 0, 2, -1], np.int64)
    assert classifier.forward(**fractional) == classifier.forward(**integer)
    _, *grads = classifier.gradient(**fractional)
    _, *expected = classifier.gradient(**integer)
    for g, e in zip(grads, expected, strict=True):
        np.testing.assert_array_equal(g, e)


def test_integer_labels_out_of_range_are_refused_too(classifier):
    args = classifier_arguments(classifier, [0, 5, 1, 2], np.int64)
    with pytest.raises(ValueError, match=r"forward\(\).*'t'.*5.*\(1, 0\)"):
        classifier.forward(**args)


def test_one_input_read_as_labels_of_several_class_counts(tmp_path):
    """Labels read by two functions with 3 and 5 classes are checked once, against 3 (the
    module used to read a labels array it never defined)."""
    nn.clear_parameters()
    idx = nn.Variable((4,))
    w1 = nn.parameter.get_parameter_or_create("w1", (3, 2), np.ones((3, 2)))
    w2 = nn.parameter.get_parameter_or_create("w2", (5, 2), np.arange(10.0).reshape(5, 2))
    loss = F.sum(F.embed(idx, w1)) + F.sum(F.embed(idx, w2))
    module = nn.compile(loss, name="two_counts", output_dir=tmp_path).module
    assert module.INPUTS["idx"]["labels"] == 3
    w1_value, w2_value = np.ones((3, 2), np.float32), np.arange(10, dtype=np.float32).reshape(5, 2)
    got = module.forward(np.array([0, 1, 2, 1], np.float32), w1_value, w2_value)
    np.testing.assert_allclose(got, 8 + w2_value[[0, 1, 2, 1]].sum())
    with pytest.raises(ValueError, match=r"holds 4.0 at index \(2,\).*0 to 2"):
        module.forward(np.array([0, 1, 4, 1], np.float32), w1_value, w2_value)
