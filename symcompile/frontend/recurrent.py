"""nnabla's N-step recurrent layers: `F.rnn`, `F.lstm`, `F.gru` and `PF.rnn`, `PF.lstm`,
`PF.gru` (nnabla 1.39's, not the ``*_cell`` ones).

They are compositions of existing F functions, unrolled over the time steps when the
graph is built (as nnabla's own CPU implementation does it), so the compiler lowers and
differentiates them like any other graph: no op, no lowering and no hand-written
gradient of their own. Each layer and direction projects its whole input sequence in one
F.affine, then runs one F.affine of the hidden state and a few elementwise functions per
step.

nnabla's layout (checked against nnabla 1.39 on random inputs): x (T, B, I); h, c
(L, D, B, H) for L layers and D directions (2 when bidirectional); weight_l0
(D, [G,] H, I + H) and weight (L-1, D, [G,] H, D*H + H), whose last axis holds first the
columns that multiply the layer's input, then the H that multiply h; bias (L, D, [G',] H).
The gates along G: LSTM (G = 4) i, f, g, o; GRU (G = 3) r, z, n, its bias (G' = 4)
b_r, b_z, b_in, b_hn. The reverse direction reads the sequence from its end, starting
from h[l, 1]; y[t] is the concatenation (forward, reverse) of both directions' states for
step t, and it is the next layer's input. h_n (and c_n) hold each layer's and
direction's last state (the reverse direction's at t = 0).
"""

from __future__ import annotations

import numbers

from symcompile.frontend import functions as F
from symcompile.frontend import parametric_functions
from symcompile.frontend.initializer import (
    ConstantInitializer,
    JoinedInitializer,
    UniformInitializer,
    calc_uniform_lim_glorot,
)
from symcompile.frontend.parameter import get_parameter, get_parameter_or_create
from symcompile.frontend.parametric_functions import parametric_function_api
from symcompile.frontend.variable import Variable

__all__ = ["rnn", "lstm", "gru"]  # F's; PF's are PF_LAYERS, at the end

_GATES = {"rnn": None, "lstm": 4, "gru": 3}  # along the weights' G axis
_BIAS_GATES = {"rnn": None, "lstm": 4, "gru": 4}  # along the bias's (GRU's b_hn apart)


# --- checks --------------------------------------------------------------------------------

def _layout(lead: tuple, gates, tail: tuple) -> tuple:
    """A weight's or bias's shape: `lead`, the gates' axis (none for RNN), `tail`."""
    return lead + (() if gates is None else (gates,)) + tail


def _checked(kind: str, x, h, c, weight_l0, weight, bias, num_layers, bidirectional,
             dropout, nonlinearity="tanh"):
    """Refuse what nnabla refuses (and its crashes), with the shapes that were expected;
    return (T, B, I, H, L, D)."""
    named = [("x", x), ("h", h)] + ([("c", c)] if kind == "lstm" else []) + [
        ("weight_l0", weight_l0), ("weight", weight), ("bias", bias)]
    for name, value in named:
        if value is None and name not in ("weight", "bias"):
            raise TypeError(f"F.{kind}: {name} is required (a Variable), got None")
        if value is not None and not isinstance(value, Variable):
            raise TypeError(f"F.{kind}: {name} must be a Variable, got "
                            f"{type(value).__name__}; wrap arrays with "
                            "nn.Variable.from_numpy_array(array)")
    if kind == "rnn" and nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"F.rnn: nonlinearity={nonlinearity!r}; nnabla's are 'tanh' and "
                         "'relu'")
    if isinstance(num_layers, bool) or not isinstance(num_layers, numbers.Integral) \
            or num_layers < 1:
        raise ValueError(f"F.{kind}: num_layers={num_layers!r} must be an int >= 1")
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) \
            or not 0 <= dropout < 1:
        raise ValueError(f"F.{kind}: dropout={dropout!r} must be a number in [0, 1) (or None)")
    L, D = int(num_layers), 2 if bidirectional else 1  # noqa: N806 (nnabla's letters)
    if x.ndim != 3:
        raise ValueError(f"F.{kind}: x has shape {x.shape}; it must be 3-D (T, B, I) = "
                         "(steps, batch_size, input_size); for one sequence of (T, I) "
                         "reshape it to (T, 1, I)")
    T, B, I = x.shape  # noqa: N806, E741
    if T == 0:
        raise ValueError(f"F.{kind}: x has shape {x.shape}, no time steps; give at least one")
    if h.ndim != 4 or h.shape[:3] != (L, D, B):
        H = h.shape[-1] if h.ndim else "H"  # noqa: N806
        raise ValueError(
            f"F.{kind}: h has shape {h.shape}; it must be (num_layers, num_directions, "
            f"batch_size, hidden_size) = ({L}, {D}, {B}, {H}) for num_layers={L}, "
            f"bidirectional={bool(bidirectional)} and x of shape {x.shape}; pass num_layers "
            "and bidirectional matching h")
    H = h.shape[3]  # noqa: N806
    if kind == "lstm" and c.shape != h.shape:
        raise ValueError(f"F.lstm: c has shape {c.shape}; it must have h's shape {h.shape}")
    gates = _GATES[kind]
    expected = _layout((D,), gates, (H, I + H))
    if weight_l0.shape != expected:
        layout = _layout(("num_directions",), gates,
                         ("hidden_size", "input_size + hidden_size"))
        raise ValueError(
            f"F.{kind}: weight_l0 has shape {weight_l0.shape}; it must be "
            f"({', '.join(map(str, layout))}) = {expected} for x of shape {x.shape} and h of "
            f"shape {h.shape} (the last axis: the {I} columns that multiply x, then the {H} "
            "that multiply h)")
    if L == 1 and weight is not None:
        raise ValueError(f"F.{kind}: weight (shape {weight.shape}) cannot be passed when "
                         "num_layers == 1, as in nnabla: the first layer's weights are "
                         "weight_l0; pass weight=None, or num_layers > 1 with h to match")
    if L > 1:
        expected = _layout((L - 1, D), gates, (H, D * H + H))
        if weight is None:
            raise ValueError(f"F.{kind}: weight is required when num_layers = {L} > 1: the "
                             f"weights of layers 1..{L - 1}, of shape {expected}")
        if weight.shape != expected:
            layout = _layout(("num_layers - 1", "num_directions"), gates,
                             ("hidden_size", "num_directions * hidden_size + hidden_size"))
            raise ValueError(
                f"F.{kind}: weight has shape {weight.shape}; it must be "
                f"({', '.join(map(str, layout))}) = {expected} for num_layers={L}, "
                f"bidirectional={bool(bidirectional)} and h of shape {h.shape}")
    if bias is not None:
        expected = _layout((L, D), _BIAS_GATES[kind], (H,))
        if bias.shape != expected:
            note = (" (GRU's four biases: b_r, b_z, b_in and b_hn)" if kind == "gru" else "")
            raise ValueError(
                f"F.{kind}: bias has shape {bias.shape}; it must be {expected}{note} for "
                f"h of shape {h.shape}, or None")
    return T, B, I, H, L, D


# --- the unrolled layers -------------------------------------------------------------------

def _input_and_state_weights(w, n_in: int, gates: int | None):
    """(W_x^T, W_h^T) of one direction's weight `w` ([G,] H, n_in + H): (n_in, G*H) and
    (H, G*H), the gates side by side along the last axis, as F.affine takes them."""
    H = w.shape[-2]  # noqa: N806
    rows = H if gates is None else gates * H
    wx = F.transpose(F.reshape(w[..., :n_in], (rows, n_in)), (1, 0))
    wh = F.transpose(F.reshape(w[..., n_in:], (rows, H)), (1, 0))
    return wx, wh


def _cell(kind: str, xp, hp, h, c, H, nonlinearity):  # noqa: N803
    """One step: the new (h, c) from the projected input `xp` and state `hp` (B, G*H),
    biases included."""
    if kind == "rnn":
        pre = F.add2(xp, hp)
        return (F.tanh(pre) if nonlinearity == "tanh" else F.relu(pre)), None
    if kind == "lstm":
        pre = F.add2(xp, hp)
        i, f, g, o = (pre[:, k * H:(k + 1) * H] for k in range(4))
        c = F.add2(F.mul2(F.sigmoid(f), c), F.mul2(F.sigmoid(i), F.tanh(g)))
        return F.mul2(F.sigmoid(o), F.tanh(c)), c
    rz = F.sigmoid(F.add2(xp[:, :2 * H], hp[:, :2 * H]))
    r, z = rz[:, :H], rz[:, H:]
    n = F.tanh(F.add2(xp[:, 2 * H:], F.mul2(r, hp[:, 2 * H:])))
    return F.add2(n, F.mul2(z, F.sub2(h, n))), None  # (1 - z) n + z h


def _biases(kind: str, b, H):  # noqa: N803
    """The biases of one layer and direction `b` ([G',] H) as those of the input's and of
    the state's projections: (G*H,) and None, or GRU's (3H,) b_r, b_z, b_in and
    (3H,) 0, 0, b_hn."""
    if b is None:
        return None, None
    if kind == "rnn":
        return b, None
    if kind == "lstm":
        return F.reshape(b, (4 * H,)), None
    zeros = F.constant(0.0, (2 * H,))
    return F.reshape(b[:3], (3 * H,)), F.concatenate(zeros, b[3], axis=0)


def _unrolled(kind, x, h, c, weight_l0, weight, bias, L, D, nonlinearity="tanh"):  # noqa: N803
    """(y, h_n, c_n) of the unrolled layers (c_n None but for LSTM)."""
    T, B, _ = x.shape  # noqa: N806
    H = h.shape[3]  # noqa: N806
    gates = _GATES[kind]
    last_h, last_c = [], []
    inputs = x
    for layer in range(L):
        w = weight_l0 if layer == 0 else weight[layer - 1]
        n_in = inputs.shape[2]
        directions = []
        for d in range(D):
            wx, wh = _input_and_state_weights(w[d], n_in, gates)
            bx, bh = _biases(kind, None if bias is None else bias[layer, d], H)
            projected = F.split(F.affine(inputs, wx, bx, base_axis=2), axis=0)
            state = h[layer, d]
            cell = c[layer, d] if kind == "lstm" else None
            states = [None] * T
            for t in (range(T) if d == 0 else range(T - 1, -1, -1)):
                hp = F.affine(state, wh, bh)
                state, cell = _cell(kind, projected[t], hp, state, cell, H, nonlinearity)
                states[t] = state
            last_h.append(state)
            last_c.append(cell)
            directions.append(F.stack(*states, axis=0))
        inputs = directions[0] if D == 1 else F.concatenate(*directions, axis=2)
    h_n = F.reshape(F.stack(*last_h, axis=0), (L, D, B, H))
    c_n = F.reshape(F.stack(*last_c, axis=0), (L, D, B, H)) if kind == "lstm" else None
    return inputs, h_n, c_n


_COMMON = """
    dropout is accepted and, as by nnabla 1.39's CPU implementation, not applied (the
    outputs are those of dropout=0); it must be in [0, 1). With training=False nnabla's
    backward refuses to run; here the gradients are the derivatives either way.
    n_outputs and outputs are accepted and ignored. Shapes are checked when the graph is
    built (ValueError naming the shapes expected).
"""


def rnn(x, h, weight_l0, weight=None, bias=None, num_layers=1, nonlinearity="tanh",
        dropout=None, bidirectional=False, training=True, n_outputs=-1, outputs=None):
    """N-step Elman RNN: h_t = act(W_x x_t + W_h h_{t-1} + b), act tanh or relu.

    x (T, B, I), h (L, D, B, H), weight_l0 (D, H, I + H), weight (L-1, D, H, D*H + H)
    (None when num_layers is 1), bias (L, D, H) or None. Returns (y, h_n): y (T, B, D*H),
    h_n (L, D, B, H).
    """
    dropout = 0.0 if dropout is None else dropout
    _, _, _, _, L, D = _checked("rnn", x, h, None, weight_l0, weight, bias, num_layers,  # noqa: N806
                                bidirectional, dropout, nonlinearity)
    y, h_n, _ = _unrolled("rnn", x, h, None, weight_l0, weight, bias, L, D, nonlinearity)
    return y, h_n


def lstm(x, h, c, weight_l0, weight=None, bias=None, num_layers=1, dropout=None,
         bidirectional=False, training=True, n_outputs=-1, outputs=None):
    """N-step LSTM: with the gates (i, f, g, o) = W_x x_t + W_h h_{t-1} + b,
    c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g) and h_t = sigmoid(o) tanh(c_t).

    x (T, B, I), h and c (L, D, B, H), weight_l0 (D, 4, H, I + H), weight
    (L-1, D, 4, H, D*H + H) (None when num_layers is 1), bias (L, D, 4, H) or None; the
    4 in the order i, f, g, o. Returns (y, h_n, c_n): y (T, B, D*H), h_n and c_n
    (L, D, B, H).
    """
    dropout = 0.0 if dropout is None else dropout
    _, _, _, _, L, D = _checked("lstm", x, h, c, weight_l0, weight, bias, num_layers,  # noqa: N806
                                bidirectional, dropout)
    return _unrolled("lstm", x, h, c, weight_l0, weight, bias, L, D)


def gru(x, h, weight_l0, weight=None, bias=None, num_layers=1, dropout=None,
        bidirectional=False, training=True, n_outputs=-1, outputs=None):
    """N-step GRU: r = sigmoid(W_xr x_t + W_hr h + b_r), z = sigmoid(W_xz x_t + W_hz h +
    b_z), n = tanh(W_xn x_t + b_in + r (W_hn h + b_hn)), h_t = (1 - z) n + z h.

    x (T, B, I), h (L, D, B, H), weight_l0 (D, 3, H, I + H), weight
    (L-1, D, 3, H, D*H + H) (None when num_layers is 1), the 3 in the order r, z, n; bias
    (L, D, 4, H) or None, the 4 being b_r, b_z, b_in, b_hn. Returns (y, h_n): y
    (T, B, D*H), h_n (L, D, B, H).
    """
    dropout = 0.0 if dropout is None else dropout
    _, _, _, _, L, D = _checked("gru", x, h, None, weight_l0, weight, bias, num_layers,  # noqa: N806
                                bidirectional, dropout)
    y, h_n, _ = _unrolled("gru", x, h, None, weight_l0, weight, bias, L, D)
    return y, h_n


for _function in (rnn, lstm, gru):
    _function.__doc__ += _COMMON
rnn, lstm, gru = (F._imperatively(f) for f in (rnn, lstm, gru))  # NdArrays in, as F's


# --- the parametric layers -----------------------------------------------------------------

def _pf_shapes(kind: str, x, h):
    """(I, H, L) from x (T, B, I) and h (L, D, B, H), refusing other ranks before any
    parameter is created."""
    for name, value, rank, layout in (("x", x, 3, "(T, B, I)"),
                                      ("h", h, 4, "(num_layers, num_directions, B, H)")):
        if not isinstance(value, Variable):
            raise TypeError(f"PF.{kind}: {name} must be a Variable, got "
                            f"{type(value).__name__}")
        if value.ndim != rank:
            raise ValueError(f"PF.{kind}: {name} has shape {value.shape}; it must be "
                             f"{rank}-D {layout}")
    return x.shape[2], h.shape[3], h.shape[0]


def _glorot_halves(rng, lead, gates, H, n_in):  # noqa: N803
    """nnabla's default weights: Glorot-uniform columns for the input (n_in -> H), then
    for the state (H -> H), drawn in that order and joined along the last axis."""
    middle = () if gates is None else (gates,)
    return JoinedInitializer([(UniformInitializer(calc_uniform_lim_glorot(n_in, H), rng), n_in),
                              (UniformInitializer(calc_uniform_lim_glorot(H, H), rng), H)],
                             lead + middle + (H,))


def _parameters(kind, x, h, w0_init, w_init, b_init, bidirectional, rng, with_bias,
                fix_parameters):
    """weight_l0, weight (None for one layer) and bias (None without) in the current
    scope, created as nnabla's PF creates them; num_layers is h.shape[0], as there."""
    I, H, L = _pf_shapes(kind, x, h)  # noqa: N806, E741
    D = 2 if bidirectional else 1  # noqa: N806
    gates, bias_gates = _GATES[kind], _BIAS_GATES[kind]
    w0_shape = _layout((D,), gates, (H, I + H))
    w_shape = _layout((L - 1, D), gates, (H, D * H + H))
    b_shape = _layout((L, D), bias_gates, (H,))
    # nnabla's PF.rnn draws its default weights on every call; PF.lstm and PF.gru only
    # for parameters that do not exist yet (the same draws, in the same order)
    eager = kind == "rnn"
    if w0_init is None and (eager or get_parameter("weight_l0") is None):
        w0_init = _glorot_halves(rng, (D,), gates, H, I)
    if w_init is None and (eager or (L > 1 and get_parameter("weight") is None)):
        w_init = _glorot_halves(rng, (L - 1, D), gates, H, D * H)
    w0 = get_parameter_or_create("weight_l0", w0_shape, w0_init, True, not fix_parameters)
    w = None
    if L > 1:
        w = get_parameter_or_create("weight", w_shape, w_init, True, not fix_parameters)
    b = None
    if with_bias:
        if b_init is None:
            b_init = ConstantInitializer()
        b = get_parameter_or_create("bias", b_shape, b_init, True, not fix_parameters)
    return w0, w, b, L


@parametric_function_api("rnn")
def pf_rnn(x, h, w0_init=None, w_init=None, b_init=None, num_layers=1, nonlinearity="tanh",
           dropout=0.0, bidirectional=False, training=True, rng=None, with_bias=True,
           fix_parameters=False):
    """N-step RNN layer (see `F.rnn`), creating ``rnn/weight_l0`` (D, H, I + H),
    ``rnn/weight`` (L-1, D, H, D*H + H; only for L > 1) and ``rnn/bias`` (L, D, H; zeros,
    with_bias), L = h.shape[0] (`num_layers` is ignored, as in nnabla). The default
    weights are nnabla's: Glorot uniform for the input columns (I or D*H -> H) and for the
    state columns (H -> H), drawn from `rng`. Returns (y, h_n).
    """
    w0, w, b, L = _parameters("rnn", x, h, w0_init, w_init, b_init, bidirectional, rng,  # noqa: N806
                              with_bias, fix_parameters)
    return rnn(x, h, w0, w, b, L, nonlinearity, dropout, bidirectional, training)


@parametric_function_api("lstm")
def pf_lstm(x, h, c, w0_init=None, w_init=None, b_init=None, num_layers=1, dropout=0.0,
            bidirectional=False, training=True, rng=None, with_bias=True,
            fix_parameters=False):
    """N-step LSTM layer (see `F.lstm`), creating ``lstm/weight_l0`` (D, 4, H, I + H),
    ``lstm/weight`` (L-1, D, 4, H, D*H + H; only for L > 1) and ``lstm/bias``
    (L, D, 4, H; zeros, with_bias), L = h.shape[0] (`num_layers` is ignored, as in
    nnabla); default weights as PF.rnn's. Returns (y, h_n, c_n).
    """
    w0, w, b, L = _parameters("lstm", x, h, w0_init, w_init, b_init, bidirectional, rng,  # noqa: N806
                              with_bias, fix_parameters)
    return lstm(x, h, c, w0, w, b, L, dropout, bidirectional, training)


@parametric_function_api("gru")
def pf_gru(x, h, w0_init=None, w_init=None, b_init=None, num_layers=1, dropout=0.0,
           bidirectional=False, training=True, rng=None, with_bias=True,
           fix_parameters=False):
    """N-step GRU layer (see `F.gru`), creating ``gru/weight_l0`` (D, 3, H, I + H),
    ``gru/weight`` (L-1, D, 3, H, D*H + H; only for L > 1) and ``gru/bias`` (L, D, 4, H:
    b_r, b_z, b_in, b_hn; zeros, with_bias), L = h.shape[0] (`num_layers` is ignored, as
    in nnabla); default weights as PF.rnn's. Returns (y, h_n).
    """
    w0, w, b, L = _parameters("gru", x, h, w0_init, w_init, b_init, bidirectional, rng,  # noqa: N806
                              with_bias, fix_parameters)
    return gru(x, h, w0, w, b, L, dropout, bidirectional, training)


for _layer, _name in ((pf_rnn, "rnn"), (pf_lstm, "lstm"), (pf_gru, "gru")):
    _layer.__name__ = _layer.__qualname__ = _name



# --- one LSTM step: PF.lstm_cell and PF.LSTMCell -------------------------------------------

@parametric_function_api("lstm")
def lstm_cell(x, h, c, state_size, w_init=None, b_init=None, fix_parameters=False):
    """One LSTM step (nnabla's PF.lstm_cell): x (B, I), h and c (B, state_size), one
    ``lstm/affine`` of concat(x, h) to (B, 4, state_size) (``lstm/affine/W``
    (I + state_size, 4, state_size), ``/b`` (4, state_size)), its gates in nnabla's order
    i, o, f, g (not F.lstm's i, f, g, o). Returns (h, c)."""
    xh = F.concatenate(x, h, axis=1)
    gates = parametric_functions.affine(xh, (4, state_size), w_init=w_init, b_init=b_init,
                                        fix_parameters=fix_parameters)
    i, o, f, g = F.split(gates, axis=1)
    c_next = F.sigmoid(f) * c + F.sigmoid(i) * F.tanh(g)
    return F.sigmoid(o) * F.tanh(c_next), c_next


class LSTMCell:
    """nnabla's PF.LSTMCell: an lstm_cell that keeps its state h and c (zeros unless
    given) between calls."""

    def __init__(self, batch_size, state_size, h=None, c=None, name=None):
        self.batch_size, self.state_size, self.name = batch_size, state_size, name
        self.h = h if h is not None else self._zeros()
        self.c = c if c is not None else self._zeros()

    def _zeros(self) -> Variable:
        state = Variable((self.batch_size, self.state_size))
        state.data.zero()
        return state

    def reset_state(self) -> None:
        """h and c back to zeros."""
        self.h.data.zero()
        self.c.data.zero()

    def __call__(self, x, w_init=None, b_init=None, fix_parameters=False):
        """One step from x (B, I): the new h (also kept, with c, for the next call)."""
        self.h, self.c = lstm_cell(x, self.h, self.c, self.state_size, w_init, b_init,
                                   fix_parameters=fix_parameters, name=self.name)
        return self.h


PF_LAYERS = {"rnn": pf_rnn, "lstm": pf_lstm, "gru": pf_gru}  # PF.<name>

# F and PF under nnabla's names. F cannot import this module, which composes F's
# functions, so the package imports it for this effect (as it does `arithmetic` for the
# operators of Variables).
for _name in __all__:
    setattr(F, _name, globals()[_name])
    setattr(parametric_functions, _name, PF_LAYERS[_name])
parametric_functions.lstm_cell, parametric_functions.LSTMCell = lstm_cell, LSTMCell
F.__all__ += __all__
parametric_functions.__all__ += [*__all__, "lstm_cell", "LSTMCell"]
