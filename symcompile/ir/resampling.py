"""Primitives of interpolation and of random flips, shifts and crops.

Linear interpolation along one axis reads two neighbours per output element at
positions and weights fixed when the graph is built (`LinearTake`); its gradient adds
each weighted dy back into those two elements (`LinearTakeGrad`), and that one's is
the interpolation again. Nearest-neighbour interpolation is a `Take` (indexing.py).

A random flip, shift or crop reads x at positions chosen by a draw (`Bernoulli` /
`IntegerDraw` in primitives.py): `ChosenTake` reads them, `ChosenTakeGrad` adds dy back
where they were read, each the other's transpose; the draw gets no gradient.

A random choice (F.random_choice) draws, per population (row), positions with the
probabilities its weights give (`ChoiceIndices`, from uniform draws), and reads them
(`RowTake`; its gradient `RowTakeGrad` adds dy back where they were read).
"""

from __future__ import annotations

import sympy

from symcompile.ir.primitives import KernelBase, as_ints, exact


def _with_length(shape, axis: int, length: int) -> tuple[int, ...]:
    return tuple(length if i == axis else n for i, n in enumerate(shape))


class LinearTake(KernelBase):
    """Linear interpolation along `axis`: y[..., o, ...] = (1 - w[o]) * x[..., low[o], ...]
    + w[o] * x[..., high[o], ...], w[o] = frac[o] / scale (integers, so the weights are
    exact); args (x, low, high, frac, scale, axis)."""

    nargs = 6
    linear = True
    kernel = "interpolate_axis"
    options = ("low", "high", "frac", "scale", "axis")

    def shape(self, shapes):
        return _with_length(shapes.of(self.args[0]), int(self.args[5]), len(self.args[1]))

    def vjp(self, index, g, shapes):
        length = shapes.of(self.args[0])[int(self.args[5])]
        return LinearTakeGrad(exact(g, self.shape(shapes), shapes), *self.args[1:],
                              sympy.Integer(length))


class LinearTakeGrad(KernelBase):
    """The transpose of `LinearTake`: dx[..., i, ...] = sum over o with low[o] == i of
    (1 - w[o]) * dy[..., o, ...] + sum over o with high[o] == i of w[o] * dy[..., o, ...],
    of `length` along `axis`; args (dy, low, high, frac, scale, axis, length)."""

    nargs = 7
    linear = True
    kernel = "interpolate_axis_grad"
    options = ("low", "high", "frac", "scale", "axis", "length")
    unshown = ("length",)

    def shape(self, shapes):
        return _with_length(shapes.of(self.args[0]), int(self.args[5]), int(self.args[6]))

    def vjp(self, index, g, shapes):
        return LinearTake(exact(g, self.shape(shapes), shapes), *self.args[1:6])


class ChosenTake(KernelBase):
    """x read along the axes from `base_axis` on at positions a draw chose, per sample
    (the axes before base_axis): y[s, j] = x[s, source(choice[s], j)], with `kind` 0 a
    flip (choice[s, a] = 1: axis a reversed), 1 a shift by choice[s, a] - shifts[a] along
    each axis a, its borders "nearest" (mode 0) or "reflect" (1), 2 a crop at offsets
    choice[s]. Args (x, choice, kind, base_axis, sizes, shifts, mode, value): `sizes`
    the output's sample shape, `shifts` the largest shifts (a flip's: which axes), mode 2
    reads `value` outside x ("constant" borders)."""

    nargs = 8
    tensor_args = (0, 1)
    kernel = "chosen_take"
    options = ("kind", "base_axis", "sizes", "shifts", "mode", "value")
    unshown = ("sizes",)
    defaults = (("mode", 0),)

    @classmethod
    def eval(cls, *args):
        zero = args[0] == 0 and (int(args[6]) != 2 or args[7] == 0)
        return sympy.Integer(0) if zero else None  # linear in x (not in the draw)

    def shape(self, shapes):
        base = int(self.args[3])
        return tuple(shapes.of(self.args[0])[:base]) + as_ints(self.args[4])

    def vjp(self, index, g, shapes):
        if index == 1:
            return sympy.Integer(0)
        x_shape = shapes.of(self.args[0])
        return ChosenTakeGrad(exact(g, self.shape(shapes), shapes), self.args[1],
                              *self.args[2:], sympy.Tuple(*map(sympy.Integer, x_shape)))


class ChosenTakeGrad(KernelBase):
    """The transpose of `ChosenTake`: dx[s, i] = sum over j with source(choice[s], j) ==
    i (and inside x) of dy[s, j], dx of shape `x_shape`. Args (dy, choice, kind,
    base_axis, sizes, shifts, mode, value, x_shape)."""

    nargs = 9
    tensor_args = (0, 1)
    kernel = "chosen_take_grad"
    options = ("kind", "base_axis", "sizes", "shifts", "mode", "value", "x_shape")
    unshown = ("x_shape", "sizes")
    defaults = ChosenTake.defaults
    linear_in = (0,)  # linear in dy

    def shape(self, shapes):
        return as_ints(self.args[8])

    def vjp(self, index, g, shapes):
        if index == 1:
            return sympy.Integer(0)
        return ChosenTake(exact(g, self.shape(shapes), shapes), self.args[1], *self.args[2:8])


# --- random choices: positions drawn per row from weights -----------------------------------

class ChoiceIndices(KernelBase):
    """`count` positions per row of the weights w (rows, n), drawn from the uniform
    draws u: with `replace`, position i with probability w[r, i] / sum(w[r]) for each
    of u's (rows, count) numbers (the inverse of the weights' cumulative sum); without,
    the `count` largest keys log(w[r, i]) - log(-log(u[r, i])) of u's (rows, n) numbers,
    in order (successive sampling without replacement, by the Gumbel top-k rule). The
    positions are numbers of the module's dtype; args (w, u, replace, count). Piecewise
    constant: no gradient."""

    nargs = 4
    tensor_args = (0, 1)
    kernel = "choice_indices"
    options = ("replace", "count")

    def shape(self, shapes):
        return (shapes.of(self.args[0])[0], int(self.args[3]))

    def vjp(self, index, g, shapes):
        return sympy.Integer(0)


class RowTake(KernelBase):
    """y[r, j] = x[r, positions[r, j]] (x (rows, n), positions (rows, k) computed at run
    time); args (x, positions)."""

    nargs = 2
    tensor_args = (0, 1)
    kernel = "row_take"
    linear_in = (0,)  # linear in x

    def shape(self, shapes):
        return shapes.of(self.args[1])

    def vjp(self, index, g, shapes):
        if index == 1:
            return sympy.Integer(0)
        return RowTakeGrad(exact(g, self.shape(shapes), shapes), self.args[1],
                           sympy.Integer(shapes.of(self.args[0])[1]))


class RowTakeGrad(KernelBase):
    """The transpose of `RowTake`: dx[r, i] = sum over j with positions[r, j] == i of
    dy[r, j], dx of shape (rows, length); args (dy, positions, length)."""

    nargs = 3
    tensor_args = (0, 1)
    kernel = "row_take_grad"
    options = ("length",)
    linear_in = (0,)  # linear in dy

    def shape(self, shapes):
        return (shapes.of(self.args[0])[0], int(self.args[2]))

    def vjp(self, index, g, shapes):
        if index == 1:
            return sympy.Integer(0)
        return RowTake(exact(g, self.shape(shapes), shapes), self.args[1])


# --- random erasing: rectangles drawn per sample (and channel) -------------------------------

class EraseMask(KernelBase):
    """1 where F.random_erase erases x (B, C, H, W), else 0: for each of the `n` rounds and
    each sample (and channel, unless `share`), five uniform numbers in `draws` (n, B, 1 or
    C, 5) give, as nnabla's generate_random_coords, the area S_e = U(area_ratios) * H * W,
    the aspect ratio r_e = U(aspect_ratios), whether to erase (U(0, 1) <= prob), and the
    top-left corner (uniform integers in [0, H - H_e] and [0, W - W_e]) of the rectangle of
    rows [y_e, y_e + H_e] and columns [x_e, x_e + W_e] (both ends included, as nnabla's),
    H_e = min(floor(sqrt(S_e * r_e)), H), W_e = min(floor(sqrt(S_e / r_e)), W). Args (draws,
    prob, area_ratios, aspect_ratios, x_shape). A constant: no gradient."""

    nargs = 5
    tensor_args = (0,)
    kernel = "erase_mask"
    options = ("prob", "area_ratios", "aspect_ratios", "x_shape")
    unshown = ("x_shape",)

    def shape(self, shapes):
        return as_ints(self.args[4])

    def vjp(self, index, g, shapes):
        return sympy.Integer(0)
