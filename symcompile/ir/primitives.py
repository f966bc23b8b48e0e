"""Tensor operations SymPy treats as opaque functions, with their shapes and VJPs.

Elementwise maths is plain SymPy over one symbol per array, so `sympy.diff` can take its
partial derivatives. Everything that mixes elements (sums over axes, dot products,
broadcasting) is a `Primitive`: a `sympy.Function` subclass that knows its result shape
and its vector-Jacobian product, and that the printer prints with a `_print_<Name>`.

Shapes follow NumPy broadcasting. An expression may be *smaller* than the value it
stands for (a gradient that is constant along an axis keeps size 1 there, a scalar
seed has shape ()); the `Shapes` oracle gives the actual shape, and `exact` and
`reduce_sum` account for the difference where it matters.
"""

from __future__ import annotations

import math

import sympy


def shape_tuple(shape) -> sympy.Tuple:
    return sympy.Tuple(*(sympy.Integer(d) for d in shape))


def as_ints(tup) -> tuple[int, ...]:
    return tuple(int(d) for d in tup)


class Shapes:
    """Shape oracle: the NumPy shape of any expression over array symbols."""

    def __init__(self) -> None:
        self._symbols: dict[sympy.Symbol, tuple[int, ...]] = {}
        self._memo: dict[sympy.Basic, tuple[int, ...]] = {}
        self._masks: set[sympy.Symbol] = set()  # symbols holding boolean arrays

    def declare(self, symbol: sympy.Symbol, shape: tuple[int, ...]) -> sympy.Symbol:
        """Give `symbol` a shape; a symbol renamed to hold another array may be redeclared
        (remembered shapes of expressions using it are then forgotten)."""
        shape = tuple(shape)
        if self._symbols.get(symbol, shape) != shape:
            self._memo.clear()
        self._symbols[symbol] = shape
        return symbol

    def of(self, expr: sympy.Basic) -> tuple[int, ...]:
        if isinstance(expr, sympy.Symbol):
            try:
                return self._symbols[expr]
            except KeyError:
                raise KeyError(f"no shape declared for symbol {expr}") from None
        if expr in self._memo:
            return self._memo[expr]
        if isinstance(expr, Primitive):
            shape = expr.shape(self)
        elif isinstance(expr, sympy.Number) or not expr.args:
            shape = ()
        else:
            shape = broadcast_shapes(*(self.of(a) for a in expr.args if isinstance(a, sympy.Expr)))
        self._memo[expr] = shape
        return shape

    def is_scalar(self, expr: sympy.Basic) -> bool:
        return self.of(expr) == ()

    def declare_mask(self, symbol: sympy.Symbol, mask: bool = True) -> None:
        """Whether `symbol` holds a boolean array (redeclarable, like shapes)."""
        if mask:
            self._masks.add(symbol)
        else:
            self._masks.discard(symbol)

    def is_mask(self, expr: sympy.Basic) -> bool:
        """Whether `expr` evaluates to a boolean NumPy array (a comparison or a one-hot)."""
        if isinstance(expr, sympy.Symbol):
            return expr in self._masks
        if expr.is_Mul:  # (x > 0)*(y > 0) is a logical and: still boolean
            return all(self.is_mask(factor) for factor in expr.args)
        if expr.is_Pow:  # mask**2 is the mask
            return bool(expr.exp.is_Integer and expr.exp > 0 and self.is_mask(expr.base))
        return (getattr(expr, "boolean", False) or isinstance(expr, sympy.Heaviside)
                or bool(expr.is_Relational))


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """NumPy's broadcasting of `shapes` (right-aligned)."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for axis in range(rank):
        size = 1
        for s in shapes:
            k = axis - (rank - len(s))
            if k < 0:
                continue
            d = s[k]
            if d != 1:
                if size not in (1, d):
                    raise ValueError(f"shapes {shapes} do not broadcast")
                size = d
        out.append(size)
    return tuple(out)


def _folded_operand(operation: str, constant: sympy.Expr) -> ValueError:
    """The error for an operand that simplification folded into a constant: only then is
    an array argument smaller than the operation needs (sqrt(h**2)/|h| squared is 1)."""
    return ValueError(
        f"the operand of a {operation} simplifies to a constant ({constant} in the generated "
        "code), whose array shape symcompile cannot recover there. Fix: that value does not "
        "depend on the graph's inputs; give it as a constant array (an nn.Variable with "
        "need_grad=False).")


class Primitive(sympy.Function):
    """A tensor operation with a known result shape and a vector-Jacobian product."""

    tensor_args: tuple[int, ...] = (0,)  # positions of the array arguments
    # Linear in each array argument: a zero argument (a gradient that cancelled out,
    # x - x) makes the result zero, whatever the shapes.
    linear = False
    # Only moves elements around: a constant argument is the same constant.
    structural = False
    # Linear in these array arguments only (a gradient kernel is linear in its cotangent,
    # not in the x it reads positions from): a zero one makes the result zero.
    linear_in: tuple[int, ...] = ()

    @classmethod
    def eval(cls, *args):
        if cls.linear and any(args[i] == 0 for i in cls.tensor_args):
            return sympy.Integer(0)
        if any(args[i] == 0 for i in cls.linear_in):
            return sympy.Integer(0)
        if cls.structural and args[0].is_Number:
            return args[0]
        return None

    def _eval_is_commutative(self):
        return True  # elementwise products of arrays commute

    def _eval_is_real(self):
        return True

    def _sympystr(self, printer) -> str:
        """Plain ``Name(args)`` for str() and debugging (SymPy's StrPrinter has methods for
        its own MatMul and Transpose that would misread ours)."""
        return f"{type(self).__name__}({', '.join(printer._print(a) for a in self.args)})"

    def shape(self, shapes: Shapes) -> tuple[int, ...]:
        raise NotImplementedError

    def vjp(self, index: int, g: sympy.Expr, shapes: Shapes) -> sympy.Expr:
        """d(output)/d(argument `index`) applied to the cotangent `g`."""
        raise NotImplementedError(f"{type(self).__name__} has no VJP for argument {index}")


class ReduceSum(Primitive):
    """``x.sum(axis=axes, keepdims=keepdims)``; args: (x, axes, keepdims, x_shape).

    `x_shape` is x's shape when the sum was built: if simplification later folds x into
    something smaller (a constant), the sum still counts every element it stood for.
    """

    nargs = 4
    linear = True

    def shape(self, shapes):
        x_shape = as_ints(self.args[3])
        axes, keep = as_ints(self.args[1]), bool(self.args[2])
        if keep:
            return tuple(1 if i in axes else d for i, d in enumerate(x_shape))
        return tuple(d for i, d in enumerate(x_shape) if i not in axes)

    def vjp(self, index, g, shapes):
        axes, keep = as_ints(self.args[1]), bool(self.args[2])
        if keep or shapes.is_scalar(g):
            return g
        return ExpandDims(g, shape_tuple(axes))


class ExpandDims(Primitive):
    """``numpy.expand_dims(x, axes)``; args: (x, axes)."""

    nargs = 2
    linear = structural = True

    def shape(self, shapes):
        x_shape = list(shapes.of(self.args[0]))
        for axis in sorted(as_ints(self.args[1])):
            x_shape.insert(axis, 1)
        return tuple(x_shape)

    def vjp(self, index, g, shapes):
        if shapes.is_scalar(g):
            return g
        return reshape(g, shapes.of(self.args[0]), shapes)


class Reshape(Primitive):
    """``numpy.reshape(x, shape)``; args: (x, shape)."""

    nargs = 2
    linear = structural = True

    def shape(self, shapes):
        return as_ints(self.args[1])

    def vjp(self, index, g, shapes):
        x_shape = shapes.of(self.args[0])
        return reshape(exact(g, self.shape(shapes), shapes), x_shape, shapes)


class BroadcastTo(Primitive):
    """``numpy.broadcast_to(x, shape)``: a read-only view of exactly `shape`."""

    nargs = 2

    def shape(self, shapes):
        return as_ints(self.args[1])

    def vjp(self, index, g, shapes):
        # g may be smaller than this array (a scalar from a sum): count every element
        return unbroadcast(g, shapes.of(self.args[0]), shapes, self.shape(shapes))


class Full(Primitive):
    """``numpy.full(shape, x, dtype=DTYPE)``: a fresh, writable array of exactly `shape`."""

    nargs = 2

    def shape(self, shapes):
        return as_ints(self.args[1])

    def vjp(self, index, g, shapes):
        # g may be smaller than this array (a scalar from a sum): count every element
        return unbroadcast(g, shapes.of(self.args[0]), shapes, self.shape(shapes))


class Copy(Primitive):
    """``x.copy()``: an output that would otherwise be the same array as an input."""

    nargs = 1

    def shape(self, shapes):
        return shapes.of(self.args[0])

    def vjp(self, index, g, shapes):
        return g


class Dot(Primitive):
    """``numpy.vdot(u, v)``: the sum of the elementwise product of two same-shape arrays."""

    nargs = 2
    linear = True
    tensor_args = (0, 1)

    def shape(self, shapes):
        return ()

    def vjp(self, index, g, shapes):
        return g * self.args[1 - index]


class MatMul(Primitive):
    """``a @ b`` (NumPy matmul: batch axes broadcast, the last two multiply)."""

    nargs = 2
    linear = True
    tensor_args = (0, 1)
    precedence = 50  # binds like *, so a product containing it parenthesises it

    def shape(self, shapes):
        a, b = shapes.of(self.args[0]), shapes.of(self.args[1])
        if not a or not b:
            raise _folded_operand("matrix product", self.args[0] if not a else self.args[1])
        return broadcast_shapes(a[:-2], b[:-2]) + (a[-2], b[-1])

    def vjp(self, index, g, shapes):
        a, b = self.args
        g = exact(g, self.shape(shapes), shapes)
        if index == 0:
            return unbroadcast(matmul(g, swap_last(b, shapes), shapes), shapes.of(a), shapes)
        return unbroadcast(matmul(swap_last(a, shapes), g, shapes), shapes.of(b), shapes)


class KernelBase(Primitive):
    """A primitive the backends compute with a *kernel*: a helper function the module
    inlines (`backends.kernels`), named `kernel`, called with the array arguments and
    then the `options` (the remaining arguments, by keyword). Printers print every
    subclass with one ``_print_KernelBase`` (SymPy dispatches on a base class of a
    Function only when its name ends in "Base")."""

    kernel: str = ""
    options: tuple[str, ...] = ()
    # Options a formula leaves out: always (shapes), or at these values (every entry of
    # a tuple option equal to it)
    unshown: tuple[str, ...] = ()
    defaults: tuple[tuple[str, int], ...] = ()

    def keywords(self) -> tuple[tuple[str, sympy.Basic], ...]:
        """(name, value) of each option, in order."""
        first = len(self.tensor_args)
        return tuple(zip(self.options, self.args[first:], strict=True))

    def shown_keywords(self) -> tuple[tuple[str, sympy.Basic], ...]:
        """The options a formula shows: those that are not shapes or default values."""
        defaults = dict(self.defaults)

        def default(name, value) -> bool:
            values = value.args if isinstance(value, sympy.Tuple) else (value,)
            return name in defaults and all(int(v) == defaults[name] for v in values)

        return tuple((name, value) for name, value in self.keywords()
                     if name not in self.unshown and not default(name, value))


class Convolution(KernelBase):
    """nnabla's convolution (a cross-correlation, zero-padded) of x (N, C, *L) with the
    weights w (C', C/group, *K): y (N, C', *L') with
    ``y[n, o, l] = sum over c, k of w[o, c, k] * xpad[n, G(o)*C/group + c, l*stride + k*dilation]``,
    G(o) the group of output channel o. Args: (x, w, pad, stride, dilation, group)."""

    nargs = 6
    linear = True  # in each of x and w (the bias is added outside)
    tensor_args = (0, 1)
    kernel = "conv_forward"
    options = ("pad", "stride", "dilation", "group")
    defaults = (("pad", 0), ("stride", 1), ("dilation", 1), ("group", 1))

    def shape(self, shapes):
        x, w = shapes.of(self.args[0]), shapes.of(self.args[1])
        if len(x) < 3 or len(w) != len(x):
            raise _folded_operand("convolution", self.args[0] if len(x) < 3 else self.args[1])
        return (x[0], w[0]) + conv_output_size(x[2:], w[2:], *self.args[2:5])

    def vjp(self, index, g, shapes):
        x, w, *geometry = self.args
        g = exact(g, self.shape(shapes), shapes)
        if index == 0:
            return ConvolutionGradX(g, w, shape_tuple(shapes.of(x)), *geometry)
        return ConvolutionGradW(x, g, shape_tuple(shapes.of(w)), *geometry)


class _ConvolutionGrad(KernelBase):
    """A gradient of `Convolution`: two arrays, the shape it makes (its third argument),
    then the convolution's geometry."""

    nargs = 7
    linear = True
    tensor_args = (0, 1)
    defaults = Convolution.defaults

    def shape(self, shapes):
        return as_ints(self.args[2])


class ConvolutionGradX(_ConvolutionGrad):
    """d loss / d x of `Convolution`, given g = d loss / d y (col2im): the transpose of the
    convolution, ``dx[n, G(o)*C/group + c, l*stride + k*dilation - pad] += g[n, o, l] *
    w[o, c, k]``. Args: (g, w, x_shape, pad, stride, dilation, group)."""

    kernel = "conv_grad_x"
    options = ("x_shape", "pad", "stride", "dilation", "group")
    unshown = ("x_shape",)

    def vjp(self, index, g, shapes):
        """It is linear in g and in w, and the transpose of the convolution: <G, dx> =
        <conv(G, w), g>, so d/dg is the convolution of G and d/dw its weight gradient
        with the roles of x and g swapped (deconvolution's gradients)."""
        dy, w, _, *geometry = self.args
        g = exact(g, self.shape(shapes), shapes)
        if index == 0:
            return Convolution(g, w, *geometry)
        return ConvolutionGradW(g, dy, shape_tuple(shapes.of(w)), *geometry)


class ConvolutionGradW(_ConvolutionGrad):
    """d loss / d w of `Convolution`, given g = d loss / d y: ``dw[o, c, k] = sum over n, l
    of g[n, o, l] * xpad[n, G(o)*C/group + c, l*stride + k*dilation]``.
    Args: (x, g, w_shape, pad, stride, dilation, group)."""

    kernel = "conv_grad_w"
    options = ("w_shape", "pad", "stride", "dilation", "group")
    unshown = ("w_shape",)

    def vjp(self, index, g, shapes):
        """Linear in x and in g: <G, dw> = <g, conv(x, G)>, so d/dx is the convolution's
        x-gradient of g with the weights G, and d/dg the convolution of x with G."""
        x, dy, _, *geometry = self.args
        g = exact(g, self.shape(shapes), shapes)
        if index == 0:
            return ConvolutionGradX(dy, g, shape_tuple(shapes.of(x)), *geometry)
        return Convolution(x, g, *geometry)


def conv_output_size(size, kernel, pad, stride, dilation) -> tuple[int, ...]:
    """The spatial size of a convolution's output: (L + 2p - d(k - 1) - 1) // s + 1 per axis
    (any of the arguments may be a SymPy Tuple)."""
    return tuple((int(n) + 2 * int(p) - int(d) * (int(k) - 1) - 1) // int(s) + 1
                 for n, k, p, s, d in zip(size, kernel, pad, stride, dilation, strict=True))


# The largest im2col matrix (in elements) a convolution keeps: at most this, the matrix
# is made once (Im2Col) and read by both the forward product and the weight gradient,
# instead of being gathered twice inside conv_forward and conv_grad_w (measured: 35-40 %
# of a LeNet convolution's forward and weight gradient). Above it, the fused kernels,
# which hold no such matrix between the forward and backward passes.
IM2COL_LIMIT = 16 * 2**20


def convolution(x: sympy.Expr, w: sympy.Expr, pad, stride, dilation, group: int,
                shapes: Shapes | None = None) -> sympy.Expr:
    """The convolution of x (N, C, *L) and w (C', C/group, *K): a product of w with
    x's im2col matrix when that matrix is at most IM2COL_LIMIT elements (and `shapes`
    tells), else the fused `Convolution`."""
    pad, stride, dilation = shape_tuple(pad), shape_tuple(stride), shape_tuple(dilation)
    if shapes is not None:
        x_shape, w_shape = shapes.of(x), shapes.of(w)
        out = conv_output_size(x_shape[2:], w_shape[2:], pad, stride, dilation)
        if x_shape[1] * math.prod(w_shape[2:]) * x_shape[0] * math.prod(out) <= IM2COL_LIMIT:
            columns = Im2Col(x, shape_tuple(w_shape[2:]), pad, stride, dilation)
            return ConvolutionOfColumns(columns, w, shape_tuple((x_shape[0], w_shape[0], *out)),
                                        sympy.Integer(group))
    return Convolution(x, w, pad, stride, dilation, sympy.Integer(group))


class Im2Col(KernelBase):
    """x's im2col matrix: the windows of the zero-padded x (N, C, *L) as a matrix of
    (C * prod(K), N * prod(M)), ``cols[(c, k), (n, m)] = xpad[n, c, m*stride +
    k*dilation]``. Args: (x, kernel, pad, stride, dilation)."""

    nargs = 5
    linear = True
    tensor_args = (0,)
    kernel = "im2col"
    options = ("kernel", "pad", "stride", "dilation")
    unshown = ("kernel",)
    defaults = (("pad", 0), ("stride", 1), ("dilation", 1))

    def shape(self, shapes):
        x = shapes.of(self.args[0])
        out = conv_output_size(x[2:], *self.args[1:5])
        return (x[1] * math.prod(as_ints(self.args[1])), x[0] * math.prod(out))

    def vjp(self, index, g, shapes):
        """col2im of g; when g is the columns' gradient of one product with weights w
        (``col2im(conv_matmul_grad_cols(dy, w))``, a convolution's x-gradient), the fused
        `ConvolutionGradX` of dy and w instead, whose NumPy kernel adds the columns in
        longer runs (conv_grad_x_flat; measured, 1 thread: LeNet's second convolution's
        x-gradient 1.53 ms against 2.88 by col2im of the columns' gradient)."""
        g = exact(g, self.shape(shapes), shapes)
        x_shape = shape_tuple(shapes.of(self.args[0]))
        if isinstance(g, ColumnsGradient) and shapes.of(g.args[1])[2:] == as_ints(self.args[1]):
            dy, w, _, group = g.args
            return ConvolutionGradX(dy, w, x_shape, *self.args[2:5], group)
        return Col2Im(g, x_shape, *self.args[1:5])


class Col2Im(KernelBase):
    """The transpose of `Im2Col`: each column entry added back where it was read,
    ``dx[n, c, m*stride + k*dilation - pad] += cols[(c, k), (n, m)]``. Args: (cols,
    x_shape, kernel, pad, stride, dilation)."""

    nargs = 6
    linear = True
    tensor_args = (0,)
    kernel = "col2im"
    options = ("x_shape", "kernel", "pad", "stride", "dilation")
    unshown = ("x_shape", "kernel")
    defaults = Im2Col.defaults

    def shape(self, shapes):
        return as_ints(self.args[1])

    def vjp(self, index, g, shapes):
        g = exact(g, self.shape(shapes), shapes)
        return Im2Col(g, *self.args[2:6])


class _ColumnsProduct(KernelBase):
    """A product of a convolution's weights with columns, per group (the rows of the
    columns and the output channels split into `group` equal parts)."""

    nargs = 4
    linear = True  # in each array
    tensor_args = (0, 1)

    def shape(self, shapes):
        return as_ints(self.args[2])


class ConvolutionOfColumns(_ColumnsProduct):
    """The convolution from x's im2col matrix: ``y[n, o, m] = sum over r of
    w[o, r] * cols[G(o)*R + r, (n, m)]``, w (C', C/group, *K) read as (C', R) with R =
    C/group * prod(K). Args: (cols, w, y_shape, group)."""

    kernel = "conv_matmul"
    options = ("y_shape", "group")
    unshown = ("y_shape",)
    defaults = (("group", 1),)

    def vjp(self, index, g, shapes):
        cols, w, _, group = self.args
        g = exact(g, self.shape(shapes), shapes)
        if index == 0:
            return ColumnsGradient(g, w, shape_tuple(shapes.of(cols)), group)
        return WeightsOfColumns(cols, g, shape_tuple(shapes.of(w)), group)


class ColumnsGradient(_ColumnsProduct):
    """d loss / d cols of `ConvolutionOfColumns`, given g = d loss / d y:
    ``dcols[G(o)*R + r, (n, m)] = sum over o of w[o, r] * g[n, o, m]`` (per group).
    Args: (g, w, cols_shape, group)."""

    kernel = "conv_matmul_grad_cols"
    options = ("cols_shape", "group")
    unshown = ("cols_shape",)
    defaults = (("group", 1),)

    def vjp(self, index, g, shapes):
        """Linear in dy and in w: <G, w.T dy> = <w G, dy> = <w, dy G.T>, so d/ddy is the
        product of w with the columns G and d/dw the weights of the columns G and dy."""
        dy, w, _, group = self.args
        g = exact(g, self.shape(shapes), shapes)
        if index == 0:
            return ConvolutionOfColumns(g, w, shape_tuple(shapes.of(dy)), group)
        return WeightsOfColumns(g, dy, shape_tuple(shapes.of(w)), group)


class WeightsOfColumns(_ColumnsProduct):
    """d loss / d w of `ConvolutionOfColumns`, given g = d loss / d y:
    ``dw[o, r] = sum over n, m of g[n, o, m] * cols[G(o)*R + r, (n, m)]`` (per group).
    Args: (cols, g, w_shape, group)."""

    kernel = "conv_matmul_grad_w"
    options = ("w_shape", "group")
    unshown = ("w_shape",)
    defaults = (("group", 1),)

    def vjp(self, index, g, shapes):
        """Linear in cols and in dy: <G, dy cols.T> = <G.T dy, cols> = <dy, G cols>, so
        d/dcols is the columns gradient of dy with the weights G and d/ddy the product
        of G with cols."""
        cols, dy, _, group = self.args
        g = exact(g, self.shape(shapes), shapes)
        if index == 0:
            return ColumnsGradient(dy, g, shape_tuple(shapes.of(cols)), group)
        return ConvolutionOfColumns(cols, g, shape_tuple(shapes.of(dy)), group)


class Pooling(KernelBase):
    """The pooling kernels' common part: x (*maps, *L) pooled over its last len(kernel)
    axes in windows ``[m*stride - pad, m*stride - pad + kernel)`` per axis. Args: (x,
    kernel, stride, pad, ignore_border, *more options)."""

    nargs = 5
    tensor_args = (0,)
    options = ("kernel", "stride", "pad", "ignore_border")
    defaults = (("pad", 0),)

    def shape(self, shapes):
        x = shapes.of(self.args[0])
        kernel = as_ints(self.args[1])
        if len(x) < len(kernel):
            raise _folded_operand("pooling", self.args[0])
        rank = len(kernel)
        return x[:len(x) - rank] + pool_output_size(x[len(x) - rank:], *self.args[1:5])


class MaxPooling(Pooling):
    """nnabla's max pooling: the maximum over each window, padding ignored (-inf)."""

    kernel = "pool_max"

    def vjp(self, index, g, shapes):
        g = exact(g, self.shape(shapes), shapes)
        return MaxPoolingGrad(self.args[0], g, *self.args[1:])


class MaxPoolingGrad(KernelBase):
    """d loss / d x of `MaxPooling`, given g = d loss / d y: each window's g goes to the
    first maximum of the window in C order, accumulated over overlapping windows.
    Args: (x, g, kernel, stride, pad, ignore_border)."""

    nargs = 6
    tensor_args = (0, 1)
    kernel = "pool_max_grad"
    options = Pooling.options
    defaults = Pooling.defaults
    linear_in = (1,)  # linear in g (not in x)

    def shape(self, shapes):
        return shapes.of(self.args[0])

    def vjp(self, index, g, shapes):
        """Piecewise constant in x (its derivative is 0 wherever it has one, as where the
        maxima change it jumps) and linear in g: d/dg is its transpose, MaxPoolingPick."""
        if index == 0:
            return sympy.Integer(0)
        x, _, *geometry = self.args
        return MaxPoolingPick(x, exact(g, self.shape(shapes), shapes), *geometry)


class MaxPoolingPick(KernelBase):
    """The transpose of `MaxPoolingGrad` in its g: each window of c (of x's shape) read at
    the first maximum of x's window in C order, ``y[m] = c[argmax of window m of x]``
    (the second derivative of max pooling). Args: (x, c, kernel, stride, pad,
    ignore_border)."""

    nargs = 6
    tensor_args = (0, 1)
    kernel = "pool_max_pick"
    options = Pooling.options
    defaults = Pooling.defaults
    linear_in = (1,)  # linear in c (not in x)

    def shape(self, shapes):
        x, kernel = shapes.of(self.args[0]), as_ints(self.args[2])
        rank = len(kernel)
        return x[:len(x) - rank] + pool_output_size(x[len(x) - rank:], *self.args[2:6])

    def vjp(self, index, g, shapes):
        if index == 0:
            return sympy.Integer(0)
        x, _, *geometry = self.args
        return MaxPoolingGrad(x, exact(g, self.shape(shapes), shapes), *geometry)


class SumPooling(Pooling):
    """nnabla's sum pooling: the sum over each window, padding zeros."""

    linear = True
    kernel = "pool_sum"

    def vjp(self, index, g, shapes):
        x, *geometry = self.args
        g = exact(g, self.shape(shapes), shapes)
        return SumPoolingGrad(g, shape_tuple(shapes.of(x)), *geometry)


class SumPoolingGrad(KernelBase):
    """d loss / d x of `SumPooling`: each window's g added to the window's elements.
    Args: (g, x_shape, kernel, stride, pad, ignore_border)."""

    nargs = 6
    linear = True
    tensor_args = (0,)
    kernel = "pool_sum_grad"
    options = ("x_shape",) + Pooling.options
    unshown = ("x_shape",)
    defaults = Pooling.defaults

    def shape(self, shapes):
        return as_ints(self.args[1])


class AveragePooling(Pooling):
    """nnabla's average pooling: the window's sum divided by the window's size clipped to
    the padded input (including_pad=1) or its count of input elements (0)."""

    nargs = 6
    linear = True
    kernel = "pool_average"
    options = Pooling.options + ("including_pad",)

    def vjp(self, index, g, shapes):
        x, *geometry = self.args
        g = exact(g, self.shape(shapes), shapes)
        return AveragePoolingGrad(g, shape_tuple(shapes.of(x)), *geometry)


class AveragePoolingGrad(KernelBase):
    """d loss / d x of `AveragePooling`: each window's g, divided as in the forward, added
    to the window's elements. Args: (g, x_shape, kernel, stride, pad, ignore_border,
    including_pad)."""

    nargs = 7
    linear = True
    tensor_args = (0,)
    kernel = "pool_average_grad"
    options = SumPoolingGrad.options + ("including_pad",)
    unshown = ("x_shape",)
    defaults = Pooling.defaults

    def shape(self, shapes):
        return as_ints(self.args[1])


def pool_output_size(size, kernel, stride, pad, ignore_border) -> tuple[int, ...]:
    """The pooled axes' output size (nnabla's): (L + 2p - k) // s + 1 with ignore_border,
    else (L + p - 1) // s + 1 (one p: the last window may run past the padding)."""
    if bool(ignore_border):
        return tuple((int(n) + 2 * int(p) - int(k)) // int(s) + 1
                     for n, k, s, p in zip(size, kernel, stride, pad, strict=True))
    return tuple((int(n) + int(p) - 1) // int(s) + 1
                 for n, k, s, p in zip(size, kernel, stride, pad, strict=True))


def pooling(kind: str, x: sympy.Expr, kernel, stride, pad, ignore_border: bool,
            including_pad: bool = True) -> sympy.Expr:
    """Pooling of `kind` ("max", "sum" or "average") of x over its last len(kernel) axes."""
    args = (x, shape_tuple(kernel), shape_tuple(stride), shape_tuple(pad),
            sympy.Integer(int(bool(ignore_border))))
    if kind == "max":
        return MaxPooling(*args)
    if kind == "sum":
        return SumPooling(*args)
    return AveragePooling(*args, sympy.Integer(int(bool(including_pad))))


class Transpose(Primitive):
    """``numpy.transpose(x, perm)`` (``x.T`` for a matrix)."""

    nargs = 2
    linear = structural = True

    def shape(self, shapes):
        x_shape = shapes.of(self.args[0])
        perm = as_ints(self.args[1])
        if len(x_shape) != len(perm):
            raise _folded_operand("transpose", self.args[0])
        return tuple(x_shape[p] for p in perm)

    def vjp(self, index, g, shapes):
        perm = as_ints(self.args[1])
        inverse = tuple(sorted(range(len(perm)), key=perm.__getitem__))
        return transpose(exact(g, self.shape(shapes), shapes), inverse, shapes)


class ReduceMax(Primitive):
    """``x.max(axis=a, keepdims=k)`` over one axis; args: (x, axis, keepdims)."""

    nargs = 3
    method = "max"

    @classmethod
    def eval(cls, x, axis, keepdims):
        return x if x.is_Number else None  # the max of a constant (folded) is itself

    def shape(self, shapes):
        x_shape = shapes.of(self.args[0])
        axis, keep = int(self.args[1]), bool(self.args[2])
        if keep:
            return tuple(1 if i == axis else d for i, d in enumerate(x_shape))
        return tuple(d for i, d in enumerate(x_shape) if i != axis)

    def vjp(self, index, g, shapes):
        """The gradient goes to the first maximal element along the axis, as in nnabla."""
        x, axis, keep = self.args
        if not bool(keep) and not shapes.is_scalar(g):
            g = ExpandDims(g, shape_tuple((int(axis),)))
        return FirstExtremum(x, axis, sympy.Integer(self.method == "max")) * g


class ReduceMin(ReduceMax):
    """``x.min(axis=a, keepdims=k)`` over one axis."""

    method = "min"


class Mask(Primitive):
    """A primitive whose value is a boolean array (printed as a comparison)."""

    tensor_args = ()
    boolean = True


class FirstExtremum(Mask):
    """1 at the first maximum (or minimum) along `axis`, 0 elsewhere; args (x, axis, is_max)."""

    nargs = 3

    def shape(self, shapes):
        return shapes.of(self.args[0])


class StopGradient(Primitive):
    """`x` as a constant: no gradient flows through it."""

    nargs = 1
    tensor_args = ()

    def shape(self, shapes):
        return shapes.of(self.args[0])


class AsNumber(Primitive):
    """A boolean mask's values as numbers of the module's dtype, 1 or 0. Every function's
    output is a float array in nnabla (F.one_hot's too); a mask left boolean would be
    computed on in NumPy's smallest float (``numpy.cosh`` of a bool array is float16)."""

    nargs = 1
    tensor_args = ()  # piecewise constant: no gradient

    def shape(self, shapes):
        return shapes.of(self.args[0])


def as_number(expr: sympy.Expr, shapes: Shapes) -> sympy.Expr:
    """`expr`, or its numbers if it is a boolean mask (through a StopGradient)."""
    inner = expr.args[0] if isinstance(expr, StopGradient) else expr
    if not shapes.is_mask(inner):
        return expr
    number = AsNumber(inner)
    return StopGradient(number) if inner is not expr else number


class Arange(Primitive):
    """nnabla's F.arange: `count` values, the first `start`, each next one the previous
    plus `step` rounded to the module's dtype; args (start, step, count). A constant."""

    nargs = 3
    tensor_args = ()

    def shape(self, shapes):
        return (int(self.args[2]),)


class Linspace(Primitive):
    """nnabla's F.linspace: `num` values start + i*(stop - start)/(num - 1), computed in
    float64 and rounded to the module's dtype; args (start, stop, num). A constant."""

    nargs = 3
    tensor_args = ()

    def shape(self, shapes):
        return (int(self.args[2]),)


class DrawBase(Primitive):
    """An array drawn at random; args (shape, *its distribution's numbers, tag). The tag
    (see `tagged`) makes each draw of a graph a different expression, so that no pass
    takes two draws of one shape for one value. Lowering
    gives every draw an array of its own, computed once per forward pass (from the
    function's `rng`) and saved for the backward pass. The printers print each as a call
    of its kernel ``random_<kind>(rng, shape, *numbers, dtype)`` (one method for all:
    SymPy dispatches on a base class only when its name ends in "Base")."""

    tensor_args = ()  # a constant: no gradient flows into a draw
    kind = ""

    def shape(self, shapes):
        return as_ints(self.args[0])

    @property
    def numbers(self) -> tuple:
        """The distribution's numbers (after the shape, before the tag)."""
        return self.args[1:-1]

    def tagged(self, tag: int) -> DrawBase:
        return type(self)(*self.args[:-1], sympy.Integer(tag))


class Bernoulli(DrawBase):
    """1 with probability `keep`, else 0 (dropout's mask); args (shape, keep, tag)."""

    nargs = 3
    kind = "mask"


class UniformDraw(DrawBase):
    """Uniform in [low, high) (F.rand); args (shape, low, high, tag)."""

    nargs = 4
    kind = "uniform"


class NormalDraw(DrawBase):
    """Normal with mean mu and standard deviation sigma (F.randn); args (shape, mu, sigma,
    tag)."""

    nargs = 4
    kind = "normal"


class IntegerDraw(DrawBase):
    """Integers uniform in [low, high) (F.randint), as numbers; args (shape, low, high,
    tag)."""

    nargs = 4
    kind = "integers"


class BinomialDraw(DrawBase):
    """Successes of n trials of probability p (F.rand_binomial), as numbers; args (shape,
    n, p, tag)."""

    nargs = 4
    kind = "binomial"


class BetaDraw(DrawBase):
    """Beta(alpha, beta) (F.rand_beta); args (shape, alpha, beta, tag)."""

    nargs = 4
    kind = "beta"


class GammaDraw(DrawBase):
    """Gamma of shape k and scale theta (F.rand_gamma); args (shape, k, theta, tag)."""

    nargs = 4
    kind = "gamma"


class Composite(Primitive):
    """A primitive with a closed-form VJP that is printed through its `expansion`.

    (Not `expand`: SymPy calls `expand(complex=True)` on arguments of its functions.)
    """

    def expansion(self, shapes: Shapes) -> sympy.Expr:
        raise NotImplementedError


# --- smart constructors: the only way the compiler builds these primitives -------------

def exact(expr: sympy.Expr, shape: tuple[int, ...], shapes: Shapes) -> sympy.Expr:
    """`expr` as an array of exactly `shape` (a broadcast view when it is smaller)."""
    if shapes.of(expr) == tuple(shape):
        return expr
    return BroadcastTo(expr, shape_tuple(shape))


def materialize(expr: sympy.Expr, shape: tuple[int, ...], shapes: Shapes) -> sympy.Expr:
    """`expr` as a fresh array of exactly `shape` and the module's dtype."""
    if isinstance(expr, sympy.Symbol) and shapes.of(expr) == tuple(shape):
        return Copy(expr)  # never hand out (or overwrite) the caller's array
    if shapes.of(expr) == tuple(shape) and not isinstance(expr, sympy.Number):
        return expr
    return Full(expr, shape_tuple(shape))


def reduce_sum(expr: sympy.Expr, axes, keepdims: bool, in_shape: tuple[int, ...],
               shapes: Shapes) -> sympy.Expr:
    """Sum of a value of nominal shape `in_shape` (represented by `expr`) over `axes`.

    Where `expr` is implicitly broadcast (size 1, or a scalar) along a reduced axis the
    sum is a multiplication by that axis' length. Factors constant along the reduced axes
    move outside the sum, and a full reduction of a product of two same-shape arrays
    becomes a dot product.
    """
    axes = tuple(sorted(set(axes)))
    actual = shapes.of(expr)
    if actual == ():
        count = math.prod(in_shape[a] for a in axes)
        return expr * count
    count = math.prod(in_shape[a] for a in axes if actual[a] == 1)
    summed = tuple(a for a in axes if actual[a] != 1)
    if not summed:
        result = expr
        if not keepdims and axes:
            result = Reshape(expr, shape_tuple(
                tuple(d for i, d in enumerate(actual) if i not in axes)))
        return result * count if count != 1 else result
    outside, inside = [], []
    for factor in sympy.Mul.make_args(expr):
        f_shape = shapes.of(factor)
        invariant = f_shape == () or (keepdims and all(f_shape[a] == 1 for a in summed))
        (outside if invariant else inside).append(factor)
    if len(inside) == 1 and isinstance(inside[0], ReduceSum) and bool(inside[0].args[2]):
        # sum(sum(e, a1, keepdims), a2) == sum(e, a1 + a2), but the axes of a1 that are
        # not in a2 stay (of length 1) when the outer sum drops its axes
        inner, inner_axes = inside[0].args[0], as_ints(inside[0].args[1])
        kept = set(inner_axes) - set(axes)
        merged = reduce_sum(inner, tuple(set(axes) | set(inner_axes)), keepdims or bool(kept),
                            shapes.of(inner), shapes)
        if kept and not keepdims:
            merged = Reshape(merged, shape_tuple(
                tuple(d for i, d in enumerate(actual) if i not in axes)))
        return sympy.Mul(*outside, merged) * count
    inner = sympy.Mul(*inside)
    full_reduction = math.prod(d for i, d in enumerate(actual) if i not in summed) == 1
    reduced = None
    if full_reduction:
        reduced = _as_dot(inside, actual, shapes)
        kept = tuple(1 if i in axes else d for i, d in enumerate(actual) if keepdims
                     or i not in axes)
        if reduced is not None and kept:
            # a dot product is a scalar: the axes of length 1 left are the sum's
            reduced = Reshape(reduced, shape_tuple(kept))
    if reduced is None:
        reduced = ReduceSum(inner, shape_tuple(axes), sympy.Integer(int(keepdims)),
                            shape_tuple(shapes.of(inner)))
    if count != 1:
        outside.append(sympy.Integer(count))
    return sympy.Mul(*outside, reduced)


def matmul(a: sympy.Expr, b: sympy.Expr, shapes: Shapes) -> sympy.Expr:
    """``a @ b`` with any scalar factors of `a` and `b` moved outside."""
    a_out, a_in = _split_scalars(a, shapes)
    b_out, b_in = _split_scalars(b, shapes)
    return sympy.Mul(*a_out, *b_out, MatMul(sympy.Mul(*a_in), sympy.Mul(*b_in)))


def scale_into_matmul(expr: sympy.Expr, shapes: Shapes) -> sympy.Expr:
    """``c * (a @ b)`` -> ``a @ (c*b)`` (or ``(c*a) @ b``): scale the smaller operand.

    Scaling a 128x256 operand instead of a 784x256 product saves a pass over the larger
    array and its temporary; the value is the same up to rounding.
    """
    scalars, rest = _split_scalars(expr, shapes)
    if not scalars or len(rest) != 1 or not isinstance(rest[0], MatMul):
        return expr
    a, b = rest[0].args
    factor = sympy.Mul(*scalars)
    if math.prod(shapes.of(a)) < math.prod(shapes.of(b)):
        return MatMul(factor * a, b)
    return MatMul(a, factor * b)


def _split_scalars(expr, shapes):
    outside, inside = [], []
    for factor in sympy.Mul.make_args(expr):
        (outside if shapes.is_scalar(factor) else inside).append(factor)
    return outside, inside


def transpose(x: sympy.Expr, perm, shapes: Shapes) -> sympy.Expr:
    """`x` with its axes permuted; identities vanish and transposes of transposes merge."""
    perm = tuple(int(p) for p in perm)
    if perm == tuple(range(len(perm))):
        return x
    if isinstance(x, Transpose):
        inner = as_ints(x.args[1])
        return transpose(x.args[0], tuple(inner[p] for p in perm), shapes)
    return Transpose(x, shape_tuple(perm))


def swap_last(x: sympy.Expr, shapes: Shapes) -> sympy.Expr:
    """`x` with its last two axes swapped (the matrix transpose)."""
    rank = len(shapes.of(x))
    return transpose(x, tuple(range(rank - 2)) + (rank - 1, rank - 2), shapes)


def keep_argument_shapes(old: Primitive, args: list, shapes: Shapes) -> sympy.Expr:
    """`old` rebuilt with `args`; an array argument that simplification made smaller (a
    gradient folded to a scalar) is broadcast back to the shape `old` was built for, so
    reshapes, transposes and matrix products still see it. A zero argument of a linear
    primitive is left for `eval` to fold into 0."""
    args = list(args)
    for i in old.tensor_args:
        shape = shapes.of(old.args[i])
        if shapes.of(args[i]) != shape and not (old.linear and args[i] == 0):
            args[i] = exact(args[i], shape, shapes)
    return old.func(*args)


def substitute(expr: sympy.Expr, mapping: dict, shapes: Shapes) -> sympy.Expr:
    """``expr.xreplace(mapping)``, keeping the shapes of primitives' arguments."""
    if expr in mapping:
        return mapping[expr]
    if not expr.args or isinstance(expr, sympy.Symbol):
        return expr
    args = [substitute(a, mapping, shapes) for a in expr.args]
    if all(new is old for new, old in zip(args, expr.args, strict=True)):
        return expr
    if isinstance(expr, Primitive):
        return keep_argument_shapes(expr, args, shapes)
    return expr.func(*args)


def reshape(x: sympy.Expr, shape, shapes: Shapes) -> sympy.Expr:
    """`x` with shape `shape` (same size); no-op reshapes vanish, nested ones merge."""
    shape = tuple(int(d) for d in shape)
    if shapes.of(x) == shape:
        return x
    if isinstance(x, Reshape):
        x = x.args[0]
        if shapes.of(x) == shape:
            return x
    return Reshape(x, shape_tuple(shape))


def _as_dot(factors: list, shape: tuple[int, ...], shapes: Shapes):
    """`Dot(u, v)` when `factors` multiply to u*v with u, v both of `shape`, else None."""
    if len(factors) == 1:
        base, power = factors[0].as_base_exp()
        if power == 2 and shapes.of(base) == shape:
            return Dot(base, base)
        return None
    if all(shapes.of(f) == shape for f in factors):
        return Dot(sympy.Mul(*factors[:-1]), factors[-1])
    return None


def unbroadcast(expr: sympy.Expr, target: tuple[int, ...], shapes: Shapes,
                nominal: tuple[int, ...] | None = None) -> sympy.Expr:
    """Sum `expr` over the axes along which it was broadcast to reach `target`'s shape.

    `nominal` is the shape of the value `expr` is the gradient of (by default its own
    shape); `expr` may be smaller (a scalar seed, a gradient constant along an axis), and
    an axis it does not have still counts its full length. The result has the rank of
    `target` (or is a scalar) and broadcasts to `target`.
    """
    actual = shapes.of(expr)
    nominal = actual if nominal is None else tuple(nominal)
    if nominal == ():
        return expr
    lead = len(nominal) - len(target)
    axes = list(range(lead))
    axes += [i for i, d in enumerate(nominal) if i >= lead and d != 1 and target[i - lead] == 1]
    if not axes:
        return expr
    if all(a < lead for a in axes):  # only the leading axes: sum them away directly
        return reduce_sum(expr, axes, False, nominal, shapes)
    reduced = reduce_sum(expr, axes, True, nominal, shapes)
    if lead and shapes.of(reduced) != ():
        reduced = Reshape(reduced, shape_tuple(shapes.of(reduced)[lead:]))
    return reduced
