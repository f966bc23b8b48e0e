"""Deterministic, safe identifiers for generated code, derived from user-given names.

User names (parameter keys such as ``affine/W``, variable names, hints taken from the
user's source) never reach generated source as they are: `identifier` maps them to
ASCII Python identifiers and `Namer` makes them unique with ``_2``, ``_3`` suffixes.
The mapping depends only on the names and the order they are asked for, never on
hashes or addresses, so generated modules are byte-stable.
"""

from __future__ import annotations

import builtins
import keyword
import re
import unicodedata

# Names the generated module defines or uses itself; user names must not shadow them.
RESERVED = frozenset(
    {
        "numpy", "DTYPE", "GRAPH_NAME", "GRAPH_HASH", "SYMCOMPILE_VERSION", "INPUTS",
        "PARAMETERS", "OUTPUTS", "GRADIENTS", "forward", "gradient", "sgd_step",
        "forward_saving", "backward", "init_parameters", "check_gradient", "lr", "saved",
        "rng", "seed", "self", "SOLVER", "STATE", "UNREACHED", "init_state", "save_checkpoint",
        "load_checkpoint", "path", "params", "state", "arrays", "SOURCE_HASH", "require_finite",
        "OUTPUT_GRADIENTS", "refuse_argument", "refuse_step", "class_labels", "os",
        "all_reduce", "all_reduce_sum", "PROCESS_GROUPS",
        # the array API backend's locals and kernels
        "xp", "dtype", "device", "namespace", "device_of", "assign", "array_api_compat",
        # the kernels of tensor primitives (backends/kernels), in both backends
        "conv_forward", "conv_grad_x", "conv_grad_w", "conv_padded", "conv_windows",
        "im2col", "col2im", "conv_matmul", "conv_matmul_grad_cols", "conv_matmul_grad_w",
        "conv_group_matrices",
        "conv_zeros", "conv_positions", "conv_window", "conv_columns", "conv_spread",
        "conv_wide_rows", "conv_wide_windows", "conv_output_size", "conv_widened",
        "conv_grad_x_flat",
        "pool_geometry", "pool_padded", "pool_cropped", "pool_max", "pool_max_grad",
        "pool_sum", "pool_sum_grad", "pool_divisor", "pool_average", "pool_average_grad",
        "pool_max_pick",
        "slice_grad", "pad_constant", "random_generator", "random_mask", "random_uniform",
        "arange_accumulated", "linspace_values",
        "random_normal", "random_integers", "random_moved", "gather_axis", "gather_axis_grad",
        "cumulative_sum", "cumulative_prod", "cumulative_prod_grad", "cumulative_prod_jvp",
        "cumulative_prod_grad_jvp", "reduce_prod", "reduce_sum", "reduce_sum_of_products",
        "sort_order", "sort_values", "sort_grad", "sort_index", "arg_extremum", "search_sorted",
        "top_k_order", "top_k_values", "top_k_grad", "top_k_index", "top_k_onehot",
        "sort_take", "top_k_take",
        "erf_values", "interpolate_axis", "interpolate_axis_grad", "chosen_sources",
        "chosen_index", "chosen_take", "chosen_take_grad", "choice_indices", "row_take",
        "row_take_grad", "erase_mask",
        "nd_indices", "index_array", "first_outside", "nd_positions", "nd_last", "nd_writer",
        "segment_sums",
        "gather_nd", "scatter_nd", "bool_rows", "bool_scatter", "bool_gather",
        "nms_detection2d", "box_iou", "bool_gather_built", "nonzero_indices", "unique_part",
        "refuse_count_change", "counts_above", "packed_positions",
        "packed_grid", "sequence_pack", "sequence_unpack", "onnx_box_extents", "onnx_nms_selected",
        "onnx_nms", "onnx_nms_count",
        "image_augment",
        "linalg_inv", "linalg_det", "linalg_logdet", "linalg_cholesky", "linalg_cholesky_grad",
        "random_binomial", "random_beta", "random_gamma",
        "shift_overlap", "shifted_copy", "shifted_products", "shifted_gather", "shifted_scatter",
        "complex_dft",
        "roi_align_axis", "roi_align_boxes", "roi_align_groups", "roi_align_forward",
        "roi_align_grad",
        "inq_fix_largest", "inq_fix_random", "inq_scheduled", "inq_pow2", "inq_sort_order",
        "inq_log2",
    }
)
_FORBIDDEN = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins))
_TEMP = re.compile(r"_t\d+\Z")
# Identifiers longer than this are shortened (the full name stays in PARAMETERS, INPUTS
# and the comments): a 120-character argument name helps nobody read the code.
MAX_IDENTIFIER = 48


def identifier(name: str, fallback: str = "v") -> str:
    """Map any string to a readable ASCII identifier (not yet unique).

    ``affine/W`` -> ``affine_W``; ``a; import os`` -> ``a_import_os``; ``1x`` -> ``_1x``;
    non-ASCII letters are spelled as their code point (``α`` -> ``u03b1``).
    """
    text = unicodedata.normalize("NFKC", str(name))
    pieces = []
    for char in text:
        if char.isascii() and (char.isalnum() or char == "_"):
            pieces.append(char)
        elif char.isascii():
            pieces.append("_")
        elif char.isalnum():
            pieces.append(f"u{ord(char):04x}")
        else:
            pieces.append("_")
    ident = re.sub(r"_{2,}", "_", "".join(pieces)).strip("_")
    # (one character less where a leading digit will get a "_")
    ident = _shortened(ident, MAX_IDENTIFIER - (ident[:1].isdigit()))
    if not ident:
        ident = fallback
    if ident[0].isdigit():
        ident = "_" + ident
    if ident in _FORBIDDEN or ident in RESERVED or _TEMP.match(ident):
        ident = ident + "_"
    return ident


def _shortened(ident: str, limit: int = MAX_IDENTIFIER) -> str:
    """A long identifier as the initials of its leading words and its trailing words in
    full: ``transformer_encoder_layer_11_..._extra_affine_W`` -> ``tel11mha_query_
    projection_extra_affine_W`` (the most specific part of a scoped name is its end)."""
    if len(ident) <= limit:
        return ident
    words = [w for w in ident.split("_") if w]
    for keep in range(len(words) - 1, 0, -1):
        initials = "".join(w if w.isdigit() else w[0] for w in words[:-keep])
        candidate = f"{initials}_{'_'.join(words[-keep:])}"
        if len(candidate) <= limit:
            return candidate
    return ident[-limit:].lstrip("_") or ident[:limit]


class Namer:
    """Hands out unique identifiers in request order: ``x``, ``x_2``, ``x_3``, ..."""

    def __init__(self, taken: set[str] | frozenset[str] = frozenset()) -> None:
        self._taken = set(taken)
        # base -> the suffix its last claim reached: the 10,000th ``h`` of a loop does not
        # try h_2 ... h_9999 again (the suffixes below it are all taken)
        self._next: dict[str, int] = {}

    def claim(self, name: str, fallback: str = "v") -> str:
        base = identifier(name, fallback)
        candidate, n = base, self._next.get(base, 1)
        if n > 1:
            candidate = f"{base}_{n}"
        while candidate in self._taken:
            n += 1
            candidate = f"{base}_{n}"
        self._taken.add(candidate)
        self._next[base] = n
        return candidate

    def temp(self, counter: list[int]) -> str:
        """The next free common-subexpression name ``_tN``."""
        while True:
            candidate = f"_t{counter[0]}"
            counter[0] += 1
            if candidate not in self._taken:
                self._taken.add(candidate)
                return candidate


def comment_text(text: str, limit: int = 200) -> str:
    """Text that is safe inside a single ``#`` comment line: no line breaks or controls."""
    out = []
    for char in str(text):
        if char == "\t":
            out.append(" ")
        elif unicodedata.category(char)[0] in "CZ" and char != " ":
            out.append(char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    flat = "".join(out)
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 3]
    words = cut.rsplit(" ", 1)[0]  # never mid-word, unless one word fills the limit
    return (words if len(words) > limit // 2 else cut) + "..."


def docstring_text(text: str, limit: int = 2000) -> str:
    """Text that is safe inside a triple-quoted docstring (the caller wraps it)."""
    return comment_text(text, limit).replace("\\", "\\\\").replace('"', '\\"')
