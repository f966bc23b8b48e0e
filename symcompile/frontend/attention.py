"""nnabla 1.39's attention layers: `F.multi_head_attention`, `PF.multi_head_attention`,
`PF.transformer_encode`, `PF.transformer_decode` and `PF.transformer`.

As in nnabla they are compositions of other functions (affine, reshape, transpose,
batch_matmul, softmax, where, ...), recorded when the graph is built, so the compiler
lowers and differentiates them like any other graph: no op of their own.

nnabla's semantics (checked against nnabla 1.39): query (L_T, B, D_q), key (L_S, B, D_k),
value (L_S, B, D_v). q = affine(query) * head_dim ** -0.5 (bias included in the scaling),
k = affine(key), v = affine(value); with attention biases, one more source position
(attn_bias_k, attn_bias_v broadcast over the batch) is appended to k and v, and the masks
get a zero column for it (neither masked nor shifted). The heads are split from the
embedding axis into (B*H, L, head_dim): head h of batch b is row b*H + h. The weights
softmax(q k^T + additive_mask, masked to -inf where key_padding_mask is nonzero) have the
shape (B*H, L_T, L_S) (L_S + 1 with the biases), are returned after the dropout, and
weight v; the heads are joined back to (L_T, B, E_v) and projected by out_weight. A
query whose keys are all padded gets NaN weights, as in nnabla (softmax of -inf only).

The transformer layers mirror nnabla's code, quirks included: their attention layers get
no dropout of their own (the dropout is applied to their outputs), and `rng` and
`fix_parameters` reach none of their sub-layers (nnabla does not pass them on), so their
parameters draw from ``nn.random.prng`` and always receive gradients.
"""

from __future__ import annotations

import numbers

from symcompile.frontend import functions as F
from symcompile.frontend import parametric_functions
from symcompile.frontend.initializer import (
    ConstantInitializer,
    UniformInitializer,
    calc_uniform_lim_glorot,
)
from symcompile.frontend.parameter import get_parameter_or_create
from symcompile.frontend.parametric_functions import parametric_function_api
from symcompile.frontend.variable import Variable

__all__ = ["multi_head_attention"]  # F's; PF's are PF_LAYERS, at the end

_PARAMETERS = ("q_weight", "k_weight", "v_weight", "out_weight", "q_bias", "k_bias",
               "v_bias", "out_bias", "attn_bias_k", "attn_bias_v")


# --- checks --------------------------------------------------------------------------------

def _variable(function: str, name: str, value, optional: bool = False):
    if value is None and optional:
        return
    if not isinstance(value, Variable):
        got = "None" if value is None else type(value).__name__
        raise TypeError(f"{function}: {name} must be a Variable, got {got}; wrap arrays with "
                        "nn.Variable.from_numpy_array(array)")


def _sequences(function: str, query, key, value, num_heads, dropout):
    """Check the three sequences, num_heads and dropout; return (L_T, L_S, B)."""
    for name, x in (("query", query), ("key", key), ("value", value)):
        _variable(function, name, x)
        if x.ndim != 3:
            letters = "L_T, B, D_q" if name == "query" else f"L_S, B, D_{name[0]}"
            raise ValueError(f"{function}: {name} has shape {x.shape}; it must be 3-D "
                             f"({letters}) = (sequence length, batch size, features); for "
                             "one sequence of (L, D) reshape it to (L, 1, D)")
    if key.shape[0] != value.shape[0]:
        raise ValueError(f"{function}: key {key.shape} and value {value.shape} must have the "
                         "same source length L_S (axis 0)")
    if not query.shape[1] == key.shape[1] == value.shape[1]:
        raise ValueError(f"{function}: query {query.shape}, key {key.shape} and value "
                         f"{value.shape} must have the same batch size B (axis 1)")
    _scalars(function, num_heads, dropout)
    return query.shape[0], key.shape[0], key.shape[1]


def _scalars(function: str, num_heads, dropout):
    if isinstance(num_heads, bool) or not isinstance(num_heads, numbers.Integral) \
            or num_heads < 1:
        raise ValueError(f"{function}: num_heads={num_heads!r} must be an int >= 1")
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) \
            or not 0 <= dropout < 1:
        raise ValueError(f"{function}: dropout={dropout!r} must be a number in [0, 1)")


def _embeddings(function: str, num_heads, qk_dim, k_dim, v_dim):
    """Check the embedding dimensions against each other and num_heads."""
    if qk_dim != k_dim:
        raise ValueError(f"{function}: the query's embedding dimension {qk_dim} and the "
                         f"key's {k_dim} must be the same (q_weight and k_weight must have "
                         "the same number of columns)")
    if qk_dim % num_heads:
        raise ValueError(f"{function}: the embedding dimension E={qk_dim} of query and key "
                         f"is not divisible by num_heads={num_heads}; choose num_heads among "
                         f"{[h for h in range(1, qk_dim + 1) if qk_dim % h == 0]} or change "
                         "E")
    if v_dim % num_heads:
        raise ValueError(f"{function}: the value's embedding dimension E_v={v_dim} is not "
                         f"divisible by num_heads={num_heads}; choose num_heads among "
                         f"{[h for h in range(1, v_dim + 1) if v_dim % h == 0]} or change "
                         "E_v")


def _masks(function: str, additive_mask, key_padding_mask, tgt_len, src_len, batch):
    """Check the masks' shapes: additive_mask 2-D, broadcastable to (L_T, L_S);
    key_padding_mask (B, L_S)."""
    _variable(function, "additive_mask", additive_mask, optional=True)
    _variable(function, "key_padding_mask", key_padding_mask, optional=True)
    if additive_mask is not None and (
            additive_mask.ndim != 2
            or additive_mask.shape[0] not in (1, tgt_len)
            or additive_mask.shape[1] not in (1, src_len)):
        raise ValueError(f"{function}: additive_mask has shape {additive_mask.shape}; it must "
                         f"be (L_T, L_S) = ({tgt_len}, {src_len}) (target length of query, "
                         "source length of key), or broadcastable to it with 1s")
    if key_padding_mask is not None and key_padding_mask.shape != (batch, src_len):
        raise ValueError(f"{function}: key_padding_mask has shape {key_padding_mask.shape}; "
                         f"it must be (B, L_S) = ({batch}, {src_len}) (batch size, source "
                         "length of key), 1 where a key is padding, 0 elsewhere")


def _matrix(function: str, name: str, weight, rows: int, rows_are: str):
    _variable(function, name, weight)
    if weight.ndim != 2 or weight.shape[0] != rows:
        raise ValueError(f"{function}: {name} has shape {weight.shape}; it must be 2-D "
                         f"({rows}, columns), its rows matching {rows_are}")
    return weight.shape[1]


def _vector(function: str, name: str, bias, size: int, of: str, whole: bool = False):
    _variable(function, name, bias, optional=True)
    if bias is None:
        return
    if (bias.size != size) if whole else (bias.shape != (size,)):
        shape = f"{size} elements, e.g. (1, 1, {size})" if whole else f"({size},)"
        raise ValueError(f"{function}: {name} has shape {bias.shape}; it must have {shape}, "
                         f"the number of columns of {of}")


# --- F.multi_head_attention ----------------------------------------------------------------

def _heads(x, length, batch, num_heads, head_dim):
    """(L, B, H*head_dim) -> (B*H, L, head_dim)."""
    return F.transpose(F.reshape(x, (length, batch * num_heads, head_dim)), (1, 0, 2))


def multi_head_attention(query, key, value, num_heads, q_weight, k_weight, v_weight,
                         out_weight, q_bias=None, k_bias=None, v_bias=None, out_bias=None,
                         attn_bias_k=None, attn_bias_v=None, dropout=0.0,
                         additive_mask=None, key_padding_mask=None):
    """Multi-head attention (nnabla's F.multi_head_attention; see the module's docstring).

    Args:
        query, key, value: (L_T, B, D_q), (L_S, B, D_k), (L_S, B, D_v).
        num_heads: H; E and E_v must be divisible by it.
        q_weight, k_weight, v_weight: (D_q, E), (D_k, E), (D_v, E_v).
        out_weight: (E_v, E_out).
        q_bias, k_bias, v_bias, out_bias: optional (E,), (E,), (E_v,), (E_out,).
        attn_bias_k, attn_bias_v: optional, both or neither, E and E_v elements: one more
            key and value, appended to the source sequence.
        dropout: ratio of F.dropout on the attention weights (none when 0).
        additive_mask: optional (L_T, L_S), added to the attention logits.
        key_padding_mask: optional (B, L_S), nonzero where a key is padding (ignored).

    Returns:
        (output (L_T, B, E_out), attention weights (B*H, L_T, L_S), L_S + 1 with the
        attention biases).
    """
    function = "F.multi_head_attention"
    tgt_len, src_len, batch = _sequences(function, query, key, value, num_heads, dropout)
    qk_dim = _matrix(function, "q_weight", q_weight, query.shape[2], "query's D_q")
    k_dim = _matrix(function, "k_weight", k_weight, key.shape[2], "key's D_k")
    v_dim = _matrix(function, "v_weight", v_weight, value.shape[2], "value's D_v")
    out_dim = _matrix(function, "out_weight", out_weight, v_dim,
                      "v_weight's columns E_v")
    _embeddings(function, num_heads, qk_dim, k_dim, v_dim)
    _vector(function, "q_bias", q_bias, qk_dim, "q_weight")
    _vector(function, "k_bias", k_bias, k_dim, "k_weight")
    _vector(function, "v_bias", v_bias, v_dim, "v_weight")
    _vector(function, "out_bias", out_bias, out_dim, "out_weight")
    if (attn_bias_k is None) != (attn_bias_v is None):
        raise ValueError(f"{function}: give both attn_bias_k and attn_bias_v or neither "
                         f"(got only {'attn_bias_k' if attn_bias_v is None else 'attn_bias_v'})")
    _vector(function, "attn_bias_k", attn_bias_k, k_dim, "k_weight", whole=True)
    _vector(function, "attn_bias_v", attn_bias_v, v_dim, "v_weight", whole=True)
    _masks(function, additive_mask, key_padding_mask, tgt_len, src_len, batch)
    num_heads = int(num_heads)
    head_dim, head_vdim = qk_dim // num_heads, v_dim // num_heads

    q = F.affine(query, q_weight, q_bias, base_axis=2) * (float(head_dim) ** -0.5)
    k = F.affine(key, k_weight, k_bias, base_axis=2)
    v = F.affine(value, v_weight, v_bias, base_axis=2)
    if attn_bias_k is not None:  # one more key and value, for every batch element
        k = F.concatenate(k, F.broadcast(F.reshape(attn_bias_k, (1, 1, k_dim)),
                                         (1, batch, k_dim)), axis=0)
        v = F.concatenate(v, F.broadcast(F.reshape(attn_bias_v, (1, 1, v_dim)),
                                         (1, batch, v_dim)), axis=0)
        src_len += 1
        if additive_mask is not None:
            additive_mask = F.pad(additive_mask, (0, 1))
        if key_padding_mask is not None:
            key_padding_mask = F.pad(key_padding_mask, (0, 1))

    q = _heads(q, tgt_len, batch, num_heads, head_dim)
    k = _heads(k, src_len, batch, num_heads, head_dim)
    v = _heads(v, src_len, batch, num_heads, head_vdim)
    logits = F.batch_matmul(q, k, transpose_b=True)  # (B*H, L_T, L_S)
    if additive_mask is not None:
        logits = logits + F.reshape(additive_mask, (1,) + tuple(additive_mask.shape))
    if key_padding_mask is not None:
        by_batch = (batch, num_heads, tgt_len, src_len)
        padding = F.broadcast(F.reshape(key_padding_mask, (batch, 1, 1, src_len)), by_batch)
        logits = F.reshape(
            F.where(padding, F.constant(float("-inf"), by_batch), F.reshape(logits, by_batch)),
            (batch * num_heads, tgt_len, src_len))
    weights = F.softmax(logits, axis=2)
    if dropout > 0:
        weights = F.dropout(weights, p=dropout)
    heads = F.batch_matmul(weights, v)  # (B*H, L_T, head_vdim)
    joined = F.reshape(F.transpose(heads, (1, 0, 2)), (tgt_len, batch, v_dim))
    return F.affine(joined, out_weight, out_bias, base_axis=2), weights


# --- PF.multi_head_attention ---------------------------------------------------------------

def _dimension(function: str, name: str, value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)
                              or value < 1):
        raise ValueError(f"{function}: {name}={value!r} must be an int >= 1 (or None)")


@parametric_function_api("multi_head_attention")
def pf_multi_head_attention(query, key, value, num_heads=12, dropout=0.0, k_embed_dim=None,
                            v_embed_dim=None, out_dim=None, rng=None, with_bias=True,
                            add_attn_bias=False, additive_mask=None, key_padding_mask=None,
                            fix_parameters=False, param_init=None):
    """Multi-head attention layer (see `F.multi_head_attention`), creating in
    ``multi_head_attention/``: ``q_weight`` (D_q, E), ``k_weight`` (D_k, E), ``v_weight``
    (D_v, E_v), ``out_weight`` (E_v, E_out) (Glorot uniform, drawn in that order), with
    `with_bias` ``q_bias``, ``k_bias`` (E,), ``v_bias`` (E_v,), ``out_bias`` (E_out,)
    (zeros), with `add_attn_bias` ``attn_bias_k`` (1, 1, E) and ``attn_bias_v``
    (1, 1, E_v) (Glorot uniform of (E, 1) and (E_v, 1)). E = k_embed_dim if given, else
    D_q; E_v = v_embed_dim if given, else D_v; E_out = out_dim if given, else E_v.
    `param_init` maps those names to initializers or arrays. Returns (output (L_T, B,
    E_out), attention weights (B*H, L_T, L_S)).
    """
    function = "PF.multi_head_attention"
    tgt_len, src_len, batch = _sequences(function, query, key, value, num_heads, dropout)
    for name, dim in (("k_embed_dim", k_embed_dim), ("v_embed_dim", v_embed_dim),
                      ("out_dim", out_dim)):
        _dimension(function, name, dim)
    qk_dim = query.shape[2] if k_embed_dim is None else int(k_embed_dim)
    v_dim = value.shape[2] if v_embed_dim is None else int(v_embed_dim)
    out_dim = v_dim if out_dim is None else int(out_dim)
    _embeddings(function, num_heads, qk_dim, qk_dim, v_dim)
    _masks(function, additive_mask, key_padding_mask, tgt_len, src_len, batch)
    param_init = {} if param_init is None else dict(param_init)
    unknown = sorted(set(param_init) - set(_PARAMETERS))
    if unknown:
        raise ValueError(f"{function}: param_init has unknown keys {unknown}; known: "
                         f"{list(_PARAMETERS)}")

    def parameter(name, shape, default):
        init = param_init.get(name)
        return get_parameter_or_create(name, shape, default() if init is None else init, True,
                                       not fix_parameters)

    def glorot(inmaps, outmaps):
        return lambda: UniformInitializer(calc_uniform_lim_glorot(inmaps, outmaps), rng)

    d_q, d_k, d_v = query.shape[2], key.shape[2], value.shape[2]
    qw = parameter("q_weight", (d_q, qk_dim), glorot(d_q, qk_dim))
    kw = parameter("k_weight", (d_k, qk_dim), glorot(d_k, qk_dim))
    vw = parameter("v_weight", (d_v, v_dim), glorot(d_v, v_dim))
    ow = parameter("out_weight", (v_dim, out_dim), glorot(v_dim, out_dim))
    qb = kb = vb = ob = abk = abv = None
    if with_bias:
        qb, kb, vb, ob = (parameter(name, (size,), ConstantInitializer)
                          for name, size in (("q_bias", qk_dim), ("k_bias", qk_dim),
                                             ("v_bias", v_dim), ("out_bias", out_dim)))
    if add_attn_bias:
        abk = parameter("attn_bias_k", (1, 1, qk_dim), glorot(qk_dim, 1))
        abv = parameter("attn_bias_v", (1, 1, v_dim), glorot(v_dim, 1))
    return multi_head_attention(query, key, value, num_heads, qw, kw, vw, ow, qb, kb, vb, ob,
                                abk, abv, dropout, additive_mask=additive_mask,
                                key_padding_mask=key_padding_mask)


# --- PF.transformer_encode, PF.transformer_decode, PF.transformer -------------------------

def _embedded(function: str, name: str, x, embed_dim, num_heads, dim_feedforward, dropout):
    _variable(function, name, x)
    for label, n in (("embed_dim", embed_dim), ("dim_feedforward", dim_feedforward)):
        _dimension(function, label, n)
        if n is None:
            raise ValueError(f"{function}: {label} must be an int >= 1, got None")
    if x.ndim != 3 or x.shape[2] != embed_dim:
        raise ValueError(f"{function}: {name} has shape {x.shape}; it must be 3-D (L, B, "
                         f"embed_dim={embed_dim}) (sequence length, batch size, features)")
    _scalars(function, num_heads, dropout)
    _embeddings(function, num_heads, embed_dim, embed_dim, embed_dim)


def _dropped(x, dropout):
    return F.dropout(x, dropout) if dropout > 0 else x


def _feedforward(x, dim_feedforward, embed_dim, dropout, activation, prefix):
    """The residual block x + affine2(dropout(activation(affine1(x)))), before its
    layer normalization."""
    hidden = activation(parametric_functions.affine(x, dim_feedforward, base_axis=2,
                                                    name=f"{prefix}_affine1"))
    out = parametric_functions.affine(_dropped(hidden, dropout), embed_dim, base_axis=2,
                                      name=f"{prefix}_affine2")
    return x + _dropped(out, dropout)


def _normalized(x, name):
    return parametric_functions.layer_normalization(x, batch_axis=(0, 1), name=name)


def _attended(x, memory, num_heads, add_attn_bias, additive_mask, key_padding_mask,
              dropout, attention: str, norm: str):
    """The residual block layer_norm(x + dropout(attention of x to memory)), the
    attention's parameters under `attention`, the normalization's under `norm`."""
    attended = pf_multi_head_attention(
        x, memory, memory, num_heads=num_heads, add_attn_bias=add_attn_bias,
        additive_mask=additive_mask, key_padding_mask=key_padding_mask, name=attention)[0]
    return _normalized(x + _dropped(attended, dropout), norm)


@parametric_function_api("transformer_encode")
def transformer_encode(src, embed_dim, num_heads, dim_feedforward=2048, dropout=0.1,
                       activation=None, src_additive_mask=None, src_key_padding_mask=None,
                       rng=None, add_attn_bias=False, fix_parameters=False):
    """One transformer encoder layer (nnabla's PF.transformer_encode): src (L_S, B, E) ->
    (L_S, B, E). Self-attention ``src_self_attn`` (masks src_additive_mask (L_S, L_S),
    src_key_padding_mask (B, L_S)), dropout, residual, ``enc_layer_norm1``; then
    ``enc_affine1`` (dim_feedforward, `activation`, F.relu by default), dropout,
    ``enc_affine2`` (E), dropout, residual, ``enc_layer_norm2``; the layer norms over the
    features with batch_axis (0, 1). As in nnabla, `rng` and `fix_parameters` are
    accepted but reach no sub-layer.
    """
    function = "PF.transformer_encode"
    _embedded(function, "src", src, embed_dim, num_heads, dim_feedforward, dropout)
    activation = F.relu if activation is None else activation
    src = _attended(src, src, num_heads, add_attn_bias, src_additive_mask,
                    src_key_padding_mask, dropout, "src_self_attn", "enc_layer_norm1")
    return _normalized(_feedforward(src, dim_feedforward, embed_dim, dropout, activation,
                                    "enc"), "enc_layer_norm2")


@parametric_function_api("transformer_decode")
def transformer_decode(tgt, memory, embed_dim, num_heads, dim_feedforward=2048, dropout=0.1,
                       activation=None, tgt_additive_mask=None, memory_additive_mask=None,
                       tgt_key_padding_mask=None, memory_key_padding_mask=None, rng=None,
                       add_attn_bias=False, fix_parameters=False):
    """One transformer decoder layer (nnabla's PF.transformer_decode): tgt (L_T, B, E),
    memory (L_S, B, E) -> (L_T, B, E). Self-attention ``tgt_self_attn`` (tgt masks
    (L_T, L_T), (B, L_T)), dropout, residual, ``dec_layer_norm1``; attention
    ``tgt_memory_attn`` of that to memory (memory masks (L_T, L_S), (B, L_S)), dropout,
    residual, ``dec_layer_norm2``; the feed-forward block ``dec_affine1``,
    ``dec_affine2``, ``dec_layer_norm3`` as in `transformer_encode`. As in nnabla, `rng`
    and `fix_parameters` are accepted but reach no sub-layer.
    """
    function = "PF.transformer_decode"
    _embedded(function, "tgt", tgt, embed_dim, num_heads, dim_feedforward, dropout)
    _embedded(function, "memory", memory, embed_dim, num_heads, dim_feedforward, dropout)
    if memory.shape[1] != tgt.shape[1]:
        raise ValueError(f"{function}: tgt {tgt.shape} and memory {memory.shape} must have the "
                         "same batch size B (axis 1)")
    activation = F.relu if activation is None else activation
    tgt = _attended(tgt, tgt, num_heads, add_attn_bias, tgt_additive_mask,
                    tgt_key_padding_mask, dropout, "tgt_self_attn", "dec_layer_norm1")
    tgt = _attended(tgt, memory, num_heads, add_attn_bias, memory_additive_mask,
                    memory_key_padding_mask, dropout, "tgt_memory_attn", "dec_layer_norm2")
    return _normalized(_feedforward(tgt, dim_feedforward, embed_dim, dropout, activation,
                                    "dec"), "dec_layer_norm3")


@parametric_function_api("transformer")
def transformer(src, tgt, embed_dim=512, num_heads=8, num_encoder_layers=6,
                num_decoder_layers=6, dim_feedforward=2048, dropout=0.1, activation=None,
                src_additive_mask=None, tgt_additive_mask=None, memory_additive_mask=None,
                src_key_padding_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, rng=None, add_attn_bias=False,
                fix_parameters=False):
    """Transformer (nnabla's PF.transformer): `num_encoder_layers` transformer_encode
    layers ``encoder00``, ``encoder01``, ... of src (L_S, B, E) give the memory, then
    `num_decoder_layers` transformer_decode layers ``decoder00``, ... of tgt (L_T, B, E)
    with it; returns (L_T, B, E). With no encoder layer the memory is src; with no decoder
    layer the output is tgt.
    """
    function = "PF.transformer"
    for name, x in (("src", src), ("tgt", tgt)):
        _embedded(function, name, x, embed_dim, num_heads, dim_feedforward, dropout)
    if src.shape[1] != tgt.shape[1]:
        raise ValueError(f"{function}: src {src.shape} and tgt {tgt.shape} must have the same "
                         "batch size B (axis 1)")
    for name, n in (("num_encoder_layers", num_encoder_layers),
                    ("num_decoder_layers", num_decoder_layers)):
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"{function}: {name}={n!r} must be an int >= 0")
    shared = dict(embed_dim=embed_dim, num_heads=num_heads, dim_feedforward=dim_feedforward,
                  dropout=dropout, activation=activation, rng=rng, add_attn_bias=add_attn_bias,
                  fix_parameters=fix_parameters)
    memory = src
    for i in range(num_encoder_layers):
        memory = transformer_encode(memory, src_additive_mask=src_additive_mask,
                                    src_key_padding_mask=src_key_padding_mask,
                                    name=f"encoder{i:02d}", **shared)
    output = tgt
    for i in range(num_decoder_layers):
        output = transformer_decode(output, memory, tgt_additive_mask=tgt_additive_mask,
                                    memory_additive_mask=memory_additive_mask,
                                    tgt_key_padding_mask=tgt_key_padding_mask,
                                    memory_key_padding_mask=memory_key_padding_mask,
                                    name=f"decoder{i:02d}", **shared)
    return output


pf_multi_head_attention.__name__ = pf_multi_head_attention.__qualname__ = \
    "multi_head_attention"

PF_LAYERS = {"multi_head_attention": pf_multi_head_attention,
             "transformer_encode": transformer_encode,
             "transformer_decode": transformer_decode, "transformer": transformer}  # PF.<name>

# F and PF under nnabla's names. F cannot import this module, which composes F's
# functions, so the package imports it for this effect (as it does `recurrent`).
for _name in __all__:
    setattr(F, _name, globals()[_name])
for _name, _layer in PF_LAYERS.items():
    setattr(parametric_functions, _name, _layer)
F.__all__ += __all__
parametric_functions.__all__ += list(PF_LAYERS)
