"""F.multi_head_attention, PF.multi_head_attention and the transformer layers (nnabla
1.39's compositions, symcompile/frontend/attention.py).

Forward values against a NumPy reference written here (a loop over batch elements and
heads), gradients against central finite differences in float64; masks, attention biases,
dropout, the PF layers' parameters (names, shapes, the values nnabla's initializers draw)
and refused shapes; and, where SYMCOMPILE_NNABLA_PYTHON names nnabla 1.39's Python, one
scenario run as written by both (outputs, gradients, parameters).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from gradcheck import check_function
from nnabla_run import nnabla_rows

import symcompile as nn
import symcompile.frontend.attention  # noqa: F401 - installs F/PF.multi_head_attention
import symcompile.functions as F
import symcompile.parametric_functions as PF

NNABLA = os.environ.get("SYMCOMPILE_NNABLA_PYTHON")
L_T, L_S, B = 3, 4, 2


# --- the reference -------------------------------------------------------------------------

def reference(query, key, value, num_heads, q_weight, k_weight, v_weight, out_weight,
              q_bias=None, k_bias=None, v_bias=None, out_bias=None, attn_bias_k=None,
              attn_bias_v=None, additive_mask=None, key_padding_mask=None):
    """nnabla's multi-head attention, one batch element and head at a time: head h of
    batch element b is row b * H + h of the weights (B*H, L_T, L_S)."""
    def project(x, w, b):
        return x @ w + (0 if b is None else b)

    q, k, v = (project(query, q_weight, q_bias), project(key, k_weight, k_bias),
               project(value, v_weight, v_bias))
    batch = query.shape[1]
    if attn_bias_k is not None:  # one more key and value, neither masked nor shifted
        k = np.concatenate([k, np.broadcast_to(np.reshape(attn_bias_k, (1, 1, -1)),
                                               (1, batch, k.shape[2]))])
        v = np.concatenate([v, np.broadcast_to(np.reshape(attn_bias_v, (1, 1, -1)),
                                               (1, batch, v.shape[2]))])
        if additive_mask is not None:
            additive_mask = np.pad(additive_mask, ((0, 0), (0, 1)))
        if key_padding_mask is not None:
            key_padding_mask = np.pad(key_padding_mask, ((0, 0), (0, 1)))
    d, dv = q.shape[2] // num_heads, v.shape[2] // num_heads
    weights = np.empty((batch * num_heads, q.shape[0], k.shape[0]))
    heads = np.empty((q.shape[0], batch, v.shape[2]))
    for b in range(batch):
        for h in range(num_heads):
            logits = (q[:, b, h * d:(h + 1) * d] / np.sqrt(d)) @ k[:, b, h * d:(h + 1) * d].T
            if additive_mask is not None:
                logits = logits + additive_mask
            if key_padding_mask is not None:
                logits = np.where(key_padding_mask[b] != 0, -np.inf, logits)
            with np.errstate(invalid="ignore"):
                e = np.exp(logits - logits.max(axis=1, keepdims=True))
                weights[b * num_heads + h] = e / e.sum(axis=1, keepdims=True)
            heads[:, b, h * dv:(h + 1) * dv] = weights[b * num_heads + h] @ \
                v[:, b, h * dv:(h + 1) * dv]
    return project(heads, out_weight, out_bias), weights


def _arrays(rng, d_q=4, d_k=5, d_v=3, e=4, e_v=6, e_out=3, bias=True, attn_bias=False,
            additive=False, padding=False):
    """The named inputs of one F.multi_head_attention call (an ordered dict)."""
    a = {"query": rng.normal(size=(L_T, B, d_q)), "key": rng.normal(size=(L_S, B, d_k)),
         "value": rng.normal(size=(L_S, B, d_v)), "q_weight": rng.normal(size=(d_q, e)),
         "k_weight": rng.normal(size=(d_k, e)), "v_weight": rng.normal(size=(d_v, e_v)),
         "out_weight": rng.normal(size=(e_v, e_out))}
    if bias:
        a.update(q_bias=rng.normal(size=e), k_bias=rng.normal(size=e),
                 v_bias=rng.normal(size=e_v), out_bias=rng.normal(size=e_out))
    if attn_bias:
        a.update(attn_bias_k=rng.normal(size=(1, 1, e)), attn_bias_v=rng.normal(size=(1, 1, e_v)))
    if additive:
        a["additive_mask"] = rng.normal(size=(L_T, L_S))
    if padding:
        a["key_padding_mask"] = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    return a


def _call(function, names, values, num_heads=2, **options):
    kw = dict(zip(names, values, strict=True))
    return function(kw.pop("query"), kw.pop("key"), kw.pop("value"), num_heads,
                    kw.pop("q_weight"), kw.pop("k_weight"), kw.pop("v_weight"),
                    kw.pop("out_weight"), **kw, **options)


CASES = {
    "plain": dict(bias=False),
    "biases, additive mask": dict(additive=True),
    "key padding mask": dict(padding=True),
    "attention biases and both masks": dict(attn_bias=True, additive=True, padding=True),
}


@pytest.mark.parametrize("output", [0, 1], ids=["output", "weights"])
@pytest.mark.parametrize("case", list(CASES))
def test_values_and_gradients(case, output, tmp_path, rng):
    """Both outputs against the reference, and the gradients of every input but the
    key padding mask against central differences (check_function, float64)."""
    given = _arrays(rng, **CASES[case])
    names = list(given)
    masks = ("key_padding_mask",)
    check_function(lambda *xs: F.multi_head_attention(*_call_args(names, xs))[output],
                   lambda *arrays: _call(reference, names, arrays)[output],
                   list(given.values()), tmp_path, rng,
                   need_grad=[name not in masks for name in names], rtol=1e-5, atol=1e-7)


def _call_args(names, xs):
    """F.multi_head_attention's positional arguments from named Variables."""
    kw = dict(zip(names, xs, strict=True))
    order = ["query", "key", "value", None, "q_weight", "k_weight", "v_weight", "out_weight",
             "q_bias", "k_bias", "v_bias", "out_bias", "attn_bias_k", "attn_bias_v", "dropout",
             "additive_mask", "key_padding_mask"]
    return [2 if name is None else 0.0 if name == "dropout" else kw.get(name)
            for name in order]


def _variables(given, need_grad=True):
    return {k: nn.Variable.from_numpy_array(np.asarray(a, np.float32),
                                            need_grad=need_grad and "mask" not in k)
            for k, a in given.items()}


def test_shapes_one_head_and_broadcast_additive_mask(rng):
    """H = 1 and H = E; E_out != E_v; an additive mask of (1, L_S) broadcast over the
    queries; the weights are (B*H, L_T, L_S + 1) with attention biases."""
    for heads in (1, 2, 6):
        given = _arrays(rng, e=6, attn_bias=True, additive=True)
        given["additive_mask"] = given["additive_mask"][:1]
        v = _variables(given)
        out, w = _call(F.multi_head_attention, list(v), list(v.values()), num_heads=heads)
        assert out.shape == (L_T, B, 3) and w.shape == (B * heads, L_T, L_S + 1)
        F.sink(out, w).forward()
        want = _call(reference, list(given), list(given.values()), num_heads=heads)
        np.testing.assert_allclose(out.d, want[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(w.d, want[1], rtol=1e-4, atol=1e-6)


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_key_padding_mask_gives_zero_weights_and_nan_when_all_padded(rng):
    """Padded keys get exactly 0 (softmax of -inf: a large negative number is not the
    same); a query whose keys are all padded gets NaN, as in nnabla."""
    given = _arrays(rng, padding=True)
    given["key_padding_mask"] = np.array([[0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    v = _variables(given)
    out, w = _call(F.multi_head_attention, list(v), list(v.values()))
    F.sink(out, w).forward()
    assert np.all(w.d[:2, :, 1:3] == 0) and np.all(w.d[:2, :, [0, 3]] > 0)
    np.testing.assert_allclose(w.d[:2].sum(axis=2), 1, rtol=1e-6)
    assert np.all(np.isnan(w.d[2:])) and np.all(np.isnan(out.d[:, 1]))
    assert np.all(np.isfinite(out.d[:, 0]))


def test_dropout(rng):
    """With dropout the weights are the dropout-free ones, each either 0 or scaled by
    1 / (1 - p), and the output is computed from them; the shapes do not change."""
    given = _arrays(rng, additive=True)
    v = _variables(given)
    names, values = list(v), list(v.values())
    out0, w0 = _call(F.multi_head_attention, names, values)
    out, w = _call(F.multi_head_attention, names, values, dropout=0.4)
    assert (out.shape, w.shape) == (out0.shape, w0.shape) == ((L_T, B, 3), (B * 2, L_T, L_S))
    F.sink(out0, w0, out, w).forward()
    kept = w.d != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(w.d[kept], w0.d[kept] / 0.6, rtol=1e-5)
    v_heads = (given["value"] @ given["v_weight"] + given["v_bias"]).reshape(L_S, B * 2, 3)
    heads = np.einsum("nts,snd->tnd", w.d, v_heads).reshape(L_T, B, 6)
    np.testing.assert_allclose(out.d, heads @ given["out_weight"] + given["out_bias"],
                               rtol=1e-4, atol=1e-5)


# --- PF.multi_head_attention ---------------------------------------------------------------

def _glorot(draw, inmaps, outmaps):
    lim = np.sqrt(6.0 / (inmaps + outmaps))
    return np.float32(draw.uniform(-lim, lim, size=(inmaps, outmaps)))


def test_pf_parameters_are_nnablas():
    """Names, shapes, order and values: Glorot uniform weights drawn from nn.random.prng
    in the order q, k, v, out, then the attention biases; zero biases."""
    q, k, v = nn.Variable((L_T, B, 6)), nn.Variable((L_S, B, 5)), nn.Variable((L_S, B, 2))
    nn.seed(21)
    out, w = PF.multi_head_attention(q, k, v, num_heads=2, k_embed_dim=4, out_dim=7,
                                     add_attn_bias=True)
    assert out.shape == (L_T, B, 7) and w.shape == (B * 2, L_T, L_S + 1)
    params = nn.get_parameters()
    shapes = {"q_weight": (6, 4), "k_weight": (5, 4), "v_weight": (2, 2), "out_weight": (2, 7),
              "q_bias": (4,), "k_bias": (4,), "v_bias": (2,), "out_bias": (7,),
              "attn_bias_k": (1, 1, 4), "attn_bias_v": (1, 1, 2)}
    assert list(params) == [f"multi_head_attention/{k}" for k in shapes]
    assert {k.split("/")[1]: p.shape for k, p in params.items()} == shapes
    draw = np.random.RandomState(21)
    want = {name: _glorot(draw, *shapes[name]) for name in
            ("q_weight", "k_weight", "v_weight", "out_weight")}
    want["attn_bias_k"] = _glorot(draw, 4, 1).reshape(1, 1, 4)
    want["attn_bias_v"] = _glorot(draw, 2, 1).reshape(1, 1, 2)
    for name, shape in shapes.items():
        expected = want.get(name, np.zeros(shape, np.float32))
        np.testing.assert_array_equal(params[f"multi_head_attention/{name}"].d, expected, name)
    # a second call in the scope reuses them; with_bias=False creates no bias
    PF.multi_head_attention(q, k, v, num_heads=2, k_embed_dim=4, out_dim=7, add_attn_bias=True)
    assert len(nn.get_parameters()) == 10
    PF.multi_head_attention(q, k, v, num_heads=2, with_bias=False, name="nb",
                            param_init={"q_weight": np.ones((6, 6), np.float32)})
    names = [k for k in nn.get_parameters() if k.startswith("nb/")]
    assert names == [f"nb/multi_head_attention/{k}_weight" for k in "qkv"] + \
        ["nb/multi_head_attention/out_weight"]
    assert np.all(nn.get_parameters()["nb/multi_head_attention/q_weight"].d == 1)


def test_pf_gradients_with_masks(tmp_path):
    """check_gradient of a PF layer with attention biases and both masks (the masks given,
    the rest at the module's random point)."""
    nn.seed(2)
    q = nn.Variable((L_T, B, 4), need_grad=True)
    kv = nn.Variable((L_S, B, 6), need_grad=True)
    additive = nn.Variable((L_T, L_S))
    padding = nn.Variable((B, L_S))
    for x, name in ((q, "q"), (kv, "kv"), (additive, "additive"), (padding, "padding")):
        x.name = name
    out, w = PF.multi_head_attention(q, kv, kv, num_heads=2, add_attn_bias=True,
                                     additive_mask=additive, key_padding_mask=padding)
    draw = np.random.default_rng(3)
    loss = F.sum(out * nn.Variable.from_numpy_array(draw.normal(size=out.shape))) + \
        F.sum(w * nn.Variable.from_numpy_array(draw.normal(size=w.shape)))
    module = nn.compile(loss, name="pf_mha", output_dir=tmp_path, dtype="float64").module
    report = module.check_gradient(inputs={
        "additive": draw.normal(size=(L_T, L_S)),
        "padding": np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0]])})
    assert len(report) == 2 + 10 and all(passed for _, _, passed in report.values()), report


def test_fix_parameters(tmp_path):
    """fix_parameters: the parameters get no gradient (only the query does)."""
    q = nn.Variable((L_T, B, 4), need_grad=True)
    q.name = "q"
    out, _ = PF.multi_head_attention(q, q, q, num_heads=2, fix_parameters=True)
    module = nn.compile(F.sum(out), name="fixed", output_dir=tmp_path).module
    assert list(module.GRADIENTS) == ["q"]
    assert len(module.PARAMETERS) == 8


# --- the transformer layers ----------------------------------------------------------------

def test_transformer_shapes_and_parameter_names():
    src, tgt = nn.Variable((L_S, B, 4)), nn.Variable((L_T, B, 4))
    out = PF.transformer(src, tgt, embed_dim=4, num_heads=2, num_encoder_layers=2,
                         num_decoder_layers=1, dim_feedforward=5)  # dropout 0.1
    assert out.shape == (L_T, B, 4)
    params = nn.get_parameters()
    mha = [f"multi_head_attention/{k}" for k in
           ("q_weight", "k_weight", "v_weight", "out_weight", "q_bias", "k_bias", "v_bias",
            "out_bias")]
    norm = ["layer_normalization/beta", "layer_normalization/gamma"]
    encoder = [f"src_self_attn/{k}" for k in mha] + [f"enc_layer_norm1/{k}" for k in norm] + \
        ["enc_affine1/affine/W", "enc_affine1/affine/b", "enc_affine2/affine/W",
         "enc_affine2/affine/b"] + [f"enc_layer_norm2/{k}" for k in norm]
    decoder = [f"tgt_self_attn/{k}" for k in mha] + [f"dec_layer_norm1/{k}" for k in norm] + \
        [f"tgt_memory_attn/{k}" for k in mha] + [f"dec_layer_norm2/{k}" for k in norm] + \
        ["dec_affine1/affine/W", "dec_affine1/affine/b", "dec_affine2/affine/W",
         "dec_affine2/affine/b"] + [f"dec_layer_norm3/{k}" for k in norm]
    want = [f"transformer/encoder{i:02d}/transformer_encode/{k}" for i in range(2)
            for k in encoder] + [f"transformer/decoder00/transformer_decode/{k}"
                                 for k in decoder]
    assert list(params) == want
    assert params["transformer/encoder00/transformer_encode/enc_affine1/affine/W"].shape == (4, 5)
    assert params["transformer/decoder00/transformer_decode/dec_layer_norm3/"
                  "layer_normalization/gamma"].shape == (1, 1, 4)
    out.forward()
    assert out.d.shape == (L_T, B, 4) and np.all(np.isfinite(out.d))


def test_transformer_encode_and_decode_gradients(tmp_path):
    nn.seed(4)
    src = nn.Variable((L_S, B, 4), need_grad=True)
    tgt = nn.Variable((L_T, B, 4), need_grad=True)
    memory = PF.transformer_encode(src, 4, 2, dim_feedforward=3, dropout=0.0,
                                   add_attn_bias=True)
    out = PF.transformer_decode(tgt, memory, 4, 2, dim_feedforward=3, dropout=0.0,
                                activation=F.tanh)
    loss = F.sum(out * nn.Variable.from_numpy_array(np.random.default_rng(0).normal(
        size=out.shape)))
    report = nn.check_gradient(loss, output_dir=tmp_path)
    assert len(report) == 2 + (10 + 4 + 4) + (2 * 8 + 6 + 4) and \
        all(passed for _, _, passed in report.values()), report


# --- refused -------------------------------------------------------------------------------

def _refused(rng):
    v = _variables(_arrays(rng, additive=True, padding=True))
    x = nn.Variable((L_T, B, 4))

    def f(**change):
        args = dict(v, **change)
        return lambda: F.multi_head_attention(
            args["query"], args["key"], args["value"], change.get("heads", 2),
            args["q_weight"], args["k_weight"], args["v_weight"], args["out_weight"],
            additive_mask=args["additive_mask"], key_padding_mask=args["key_padding_mask"],
            attn_bias_k=change.get("abk"), attn_bias_v=change.get("abv"),
            dropout=change.get("p", 0.0))

    return [
        (f(heads=3), "E=4 of query and key is not divisible by num_heads=3; choose num_heads among "
         "\\[1, 2, 4\\]"),
        (f(v_weight=nn.Variable((3, 5)), out_weight=nn.Variable((5, 3))),
         "E_v=5 is not divisible by num_heads=2"),
        (f(k_weight=nn.Variable((5, 6))), "embedding dimension 4 and the key's 6"),
        (f(value=nn.Variable((5, B, 3))), "same source length L_S"),
        (f(query=nn.Variable((L_T, 3, 4))), "same batch size B"),
        (f(query=nn.Variable((L_T, 4))), "query has shape \\(3, 4\\); it must be 3-D"),
        (f(q_weight=nn.Variable((5, 4))), "q_weight has shape \\(5, 4\\).*query's D_q"),
        (f(out_weight=nn.Variable((4, 3))), "out_weight has shape .*E_v"),
        (f(additive_mask=nn.Variable((L_S, L_T))), "additive_mask has shape \\(4, 3\\).*"
                                                   "\\(L_T, L_S\\) = \\(3, 4\\)"),
        (f(additive_mask=nn.Variable((1, L_T, L_S))), "additive_mask has shape"),
        (f(key_padding_mask=nn.Variable((L_S, B))), "key_padding_mask has shape \\(4, 2\\).*"
                                                    "\\(B, L_S\\) = \\(2, 4\\)"),
        (f(abk=nn.Variable((1, 1, 4))), "both attn_bias_k and attn_bias_v or neither"),
        (f(abk=nn.Variable((1, 1, 3)), abv=nn.Variable((1, 1, 6))), "attn_bias_k has shape"),
        (f(heads=0), "num_heads=0 must be an int >= 1"),
        (f(p=1.0), "dropout=1.0 must be a number in \\[0, 1\\)"),
        (lambda: PF.multi_head_attention(x, x, x, num_heads=3), "PF.multi_head_attention: the "
                                                                "embedding dimension E=4"),
        (lambda: PF.multi_head_attention(x, x, x, num_heads=2, key_padding_mask=nn.Variable(
            (B, 2))), "PF.multi_head_attention: key_padding_mask"),
        (lambda: PF.multi_head_attention(x, x, x, num_heads=2, param_init={"W": 1}),
         "unknown keys \\['W'\\]"),
        (lambda: PF.transformer(x, nn.Variable((L_T, B, 6)), embed_dim=4, num_heads=2),
         "PF.transformer: tgt has shape \\(3, 2, 6\\).*embed_dim=4"),
        (lambda: PF.transformer_encode(x, 4, 3), "PF.transformer_encode: .*num_heads=3"),
        (lambda: PF.transformer_decode(x, nn.Variable((L_S, 3, 4)), 4, 2),
         "same batch size"),
    ]


def test_bad_shapes_are_refused(rng):
    for call, message in _refused(rng):
        with pytest.raises(ValueError, match=message):
            call()
    assert not nn.get_parameters()  # the PF layers check before creating any
    with pytest.raises(TypeError, match="key must be a Variable"):
        F.multi_head_attention(nn.Variable((3, 2, 4)), np.zeros((3, 2, 4)), None, 2,
                               *(nn.Variable((4, 4)) for _ in range(4)))


# --- nnabla 1.39 itself --------------------------------------------------------------------

# Run as written by symcompile here and by nnabla 1.39: PF.multi_head_attention with every
# option, F.multi_head_attention with a fully padded batch element, a small transformer.
SCENARIO = """
def leaf(name, grad=True):
    return nn.Variable.from_numpy_array(np.array(arrays[name], np.float32), need_grad=grad)
def gradients(loss, xs):
    loss.forward()
    for x in xs:
        x.grad.zero()
    loss.backward()
    return [x.g.tolist() for x in xs]
result = {}
nn.clear_parameters()
nn.seed(11)
q, kv = leaf("q"), leaf("kv")
am, kpm = leaf("am", False), leaf("kpm", False)
out, w = PF.multi_head_attention(q, kv, kv, num_heads=2, k_embed_dim=4, v_embed_dim=6,
                                 out_dim=3, add_attn_bias=True, additive_mask=am,
                                 key_padding_mask=kpm)
params = list(nn.get_parameters().values())
grads = gradients(F.sum(out * out) + F.sum(w * w), [q, kv] + params)
result["mha"] = {"shapes": [list(out.shape), list(w.shape)], "out": out.d.tolist(),
                 "w": w.d.tolist(), "grads": grads,
                 "params": {k: [list(p.shape), p.d.tolist()]
                            for k, p in nn.get_parameters().items()}}
ws = [leaf(k) for k in ("w4", "w4", "w4", "w4")]
out, w = F.multi_head_attention(q, q, q, 4, *ws, key_padding_mask=leaf("all_padded", False))
F.sink(out, w).forward()
result["padded"] = {"out": out.d.tolist(), "w": w.d.tolist()}
nn.clear_parameters()
nn.seed(12)
src, tgt = leaf("src"), leaf("q")
y = PF.transformer(src, tgt, embed_dim=4, num_heads=2, num_encoder_layers=1,
                   num_decoder_layers=2, dim_feedforward=5, dropout=0.0,
                   src_additive_mask=leaf("src_mask", False),
                   memory_key_padding_mask=leaf("kpm", False), add_attn_bias=True)
params = list(nn.get_parameters().values())
grads = gradients(F.sum(y * y), [src, tgt] + params)
result["transformer"] = {"y": y.d.tolist(), "grads": grads,
                         "params": {k: [list(p.shape), p.d.tolist()]
                                    for k, p in nn.get_parameters().items()}}
"""

_SCRIPT = """
import json, sys
import numpy as np
import nnabla as nn
import nnabla.functions as F
import nnabla.parametric_functions as PF
scenario, arrays = json.loads(sys.argv[1])
exec(scenario)
print(json.dumps(result))
"""


def _scenario_arrays():
    draw = np.random.RandomState(0)
    return {"q": draw.randn(L_T, B, 4).tolist(), "kv": draw.randn(L_S, B, 5).tolist(),
            "src": draw.randn(L_S, B, 4).tolist(), "am": draw.randn(L_T, L_S).tolist(),
            "src_mask": draw.randn(L_S, L_S).tolist(), "w4": draw.randn(4, 4).tolist(),
            "kpm": [[0, 1, 0, 0], [0, 0, 0, 1]], "all_padded": [[0, 1, 0], [1, 1, 1]]}


def _ours(arrays) -> dict:
    names = {"nn": nn, "F": F, "PF": PF, "np": np, "arrays": arrays}
    exec(SCENARIO, names)  # noqa: S102 - the test's own text
    return names["result"]


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_scenario_runs_here():
    result = _ours(_scenario_arrays())
    assert result["mha"]["shapes"] == [[L_T, B, 3], [B * 2, L_T, L_S + 1]]
    padded = np.array(result["padded"]["w"])
    assert np.all(np.isnan(padded[4:])) and np.all(np.isfinite(padded[:4]))
    # one encoder (attention 10, two norms 4, two affines 4), two decoders (2 * 10 + 6 + 4)
    assert len(result["transformer"]["params"]) == 18 + 2 * 30
    assert np.all(np.isfinite(result["transformer"]["y"]))


@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.skipif(not NNABLA, reason="SYMCOMPILE_NNABLA_PYTHON is not set")
def test_nnablas_numbers(tmp_path):
    arrays = _scenario_arrays()
    (row,) = nnabla_rows(NNABLA, _SCRIPT, [SCENARIO, arrays], tmp_path)
    ours = _ours(arrays)
    for part in ("mha", "transformer"):
        assert list(ours[part]["params"]) == list(row[part]["params"]), part
        for name, (shape, value) in row[part]["params"].items():
            assert ours[part]["params"][name][0] == shape, name
            np.testing.assert_array_equal(ours[part]["params"][name][1],
                                          np.array(value, np.float32), err_msg=name)
        assert len(ours[part]["grads"]) == len(row[part]["grads"])
        for i, (got, want) in enumerate(zip(ours[part]["grads"], row[part]["grads"],
                                            strict=True)):
            np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5,
                                       err_msg=f"{part}: gradient {i}")
    assert ours["mha"]["shapes"] == row["mha"]["shapes"]
    for key in ("out", "w"):
        np.testing.assert_allclose(ours["mha"][key], row["mha"][key], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ours["padded"][key], row["padded"][key], rtol=1e-5,
                                   atol=1e-6)  # NaN where nnabla has NaN
    np.testing.assert_allclose(ours["transformer"]["y"], row["transformer"]["y"], rtol=1e-4,
                               atol=1e-5)


def test_signatures_are_nnabla_s():
    """nnabla 1.39's signatures (PF's without the `name` keyword nnabla's decorator shows,
    which symcompile's PF layers take too)."""
    import inspect

    sig = {"F": str(inspect.signature(F.multi_head_attention)),
           **{n: str(inspect.signature(getattr(PF, n))) for n in
              ("multi_head_attention", "transformer_encode", "transformer_decode",
               "transformer")}}
    assert sig["F"] == (
        "(query, key, value, num_heads, q_weight, k_weight, v_weight, out_weight, "
        "q_bias=None, k_bias=None, v_bias=None, out_bias=None, attn_bias_k=None, "
        "attn_bias_v=None, dropout=0.0, additive_mask=None, key_padding_mask=None)")
    assert sig["multi_head_attention"] == (
        "(query, key, value, num_heads=12, dropout=0.0, k_embed_dim=None, v_embed_dim=None, "
        "out_dim=None, rng=None, with_bias=True, add_attn_bias=False, additive_mask=None, "
        "key_padding_mask=None, fix_parameters=False, param_init=None)")
    assert sig["transformer"].startswith("(src, tgt, embed_dim=512, num_heads=8, "
                                         "num_encoder_layers=6, num_decoder_layers=6, "
                                         "dim_feedforward=2048, dropout=0.1, activation=None")
    assert sig["transformer_encode"].startswith("(src, embed_dim, num_heads, "
                                                "dim_feedforward=2048, dropout=0.1")
    assert sig["transformer_decode"].startswith("(tgt, memory, embed_dim, num_heads, ")
