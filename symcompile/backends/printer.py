"""SymPy expression -> NumPy source text. Expressions only: statements live in templates.

A subclass of SymPy's `NumPyPrinter` with the `_print_X` overrides symcompile needs:
its tensor primitives, readable numbers (``0.1``, ``x/32``), products that multiply
scalars before arrays (fewer array operations), and the two stock printings that are
wrong for training code: ``Max(x, 0)`` (``functools.reduce``) and ``Heaviside`` (which
gives relu'(0) = 1/2 through ``numpy.select``).
"""

from __future__ import annotations

import math

import sympy
from sympy.printing.numpy import NumPyPrinter as _SymPyNumPyPrinter
from sympy.printing.precedence import PRECEDENCE, precedence

from symcompile.ir.formula import option_text
from symcompile.ir.indexing import slice_text
from symcompile.ir.primitives import (
    BroadcastTo,
    Full,
    Primitive,
    Shapes,
    as_ints,
    broadcast_shapes,
    shape_tuple,
)


def shape_text(shape) -> str:
    dims = as_ints(shape)
    return f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(map(str, dims))})"


class NumPyPrinter(_SymPyNumPyPrinter):
    """Prints array expressions as NumPy code.

    Args:
        shapes: Shape oracle; lets products put scalar factors first. Optional.
        dtype: NumPy dtype name for arrays the printed code creates.
    """

    def __init__(self, shapes: Shapes | None = None, dtype: str = "float32") -> None:
        super().__init__({"fully_qualified_modules": True, "inline": True,
                          "allow_unknown_functions": False})
        self._shapes = shapes
        self._dtype = dtype
        # The kernels the printed code calls (`_kernel_call`), for the emitter: a module
        # inlines exactly those.
        self.kernels: set[str] = set()

    def _is_scalar(self, expr) -> bool:
        if expr.is_Number:
            return True
        if self._shapes is None:
            return False
        try:
            return self._shapes.of(expr) == ()
        except KeyError:
            return False

    # --- numbers ---------------------------------------------------------------------
    def _print(self, expr, **kwargs):
        """Constant subexpressions (``log(2)``, ``sqrt(2)/2``) print as one Python float: a
        NumPy function of a constant would be a float64 scalar, which turns float32 arrays
        into float64."""
        folded = self._folded(expr)
        return super()._print(expr, **kwargs) if folded is None else folded

    def _folded(self, expr) -> str | None:
        """A constant subexpression's value as a Python float literal; None for anything
        else (a name, an array, an exact rational, a complex number)."""
        if isinstance(expr, sympy.Expr) and expr.is_number and not expr.is_Rational \
                and not expr.is_Float and not expr.has(Primitive):
            try:
                return self._print_Float(sympy.Float(float(expr)))
            except TypeError:  # complex: leave it to SymPy
                pass
        return None

    def _print_Float(self, expr):
        value = float(expr)
        if math.isfinite(value):
            return repr(value)
        return "float('nan')" if math.isnan(value) else f"{'-' if value < 0 else ''}float('inf')"

    def _print_Rational(self, expr):
        return f"{expr.p}/{expr.q}"

    # --- arithmetic --------------------------------------------------------------------
    def _cost(self, expr) -> int:
        """How much array work `expr` is, roughly (0 for a name or a scalar)."""
        if self._is_scalar(expr) or not expr.args:
            return 0
        return 1 + sum(self._cost(a) for a in expr.args if isinstance(a, sympy.Expr))

    def _is_mask(self, expr) -> bool:
        return self._shapes is not None and self._shapes.is_mask(expr)

    def _print_Mul(self, expr):
        """Scalars first, then the arrays smaller than the product (broadcast ones), then
        the others, boolean masks last: ``-c/16*x*(t > 0)``, ``_t5*gamma/n*x`` with x
        (64, 6, 28, 28) and _t5, gamma (1, 6, 1, 1).

        Python evaluates left to right, so the scalar and broadcast factors combine among
        themselves before touching a full-size array (one pass over it, not one per
        factor), and a mask only ever multiplies a float array (bool * int would make
        int64, and -bool is an error); a product of masks alone is converted first. The
        negation of a sum is printed as the sum of the negated terms (``c - a - b``, not
        ``-(a + b - c)``: one pass fewer over the result).
        """
        coeff, rest = expr.as_coeff_Mul()
        if coeff == -1 and rest.is_Add:
            return self._print_Add(sympy.Add(*(-term for term in rest.args)))
        coeff = sympy.Integer(1)
        factors = []
        for factor in expr.as_ordered_factors():
            if factor.is_Number:
                coeff *= factor
            else:
                factors.append(factor)
        sign = "-" if coeff.is_negative else ""
        coeff = abs(coeff)
        scalar_num, array_num, scalar_den, array_den = [], [], [], []
        if coeff.is_Rational:
            if coeff.p != 1:
                scalar_num.append(sympy.Integer(coeff.p))
            if coeff.q != 1:
                scalar_den.append(sympy.Integer(coeff.q))
        elif coeff != 1:
            scalar_num.append(coeff)
        for factor in factors:
            if factor.is_Pow and factor.exp.is_Rational and factor.exp.is_negative:
                base = factor.base if factor.exp == -1 else sympy.Pow(factor.base, -factor.exp)
                (scalar_den if self._is_scalar(base) else array_den).append(base)
            else:
                # A 0-d mask is still a NumPy bool: it goes with the arrays, last.
                scalar = self._is_scalar(factor) and not self._is_mask(factor)
                (scalar_num if scalar else array_num).append(factor)
        small_num, small_den = self._broadcast_factors(expr, array_num, array_den)
        # The costliest array factor first (see _print_Add), boolean masks last.
        array_num.sort(key=lambda f: (self._is_mask(f), -self._cost(f)))
        level = PRECEDENCE["Mul"]
        text = "*".join(self.parenthesize(f, level) for f in scalar_num + small_num)
        cheap_den = scalar_den + small_den
        if text:
            text += "".join("/" + self.parenthesize(d, level) for d in cheap_den)
            scalar_den = []
        elif len(cheap_den) > 1:  # x/(16*v): one division of the array, not two
            scalar_den = [sympy.Mul(*cheap_den, evaluate=False)]
        else:
            scalar_den = cheap_den
        arrays = [self.parenthesize(f, level) for f in array_num]
        if arrays and self._is_mask(array_num[0]):
            # Only masks: as numbers of the module's dtype (2*mask would be int64,
            # lr*mask float64, -mask an error).
            arrays[0] = self._number(self._print(array_num[0]))
        if arrays:
            text = "*".join(([text] if text else []) + arrays)
        elif not text:
            text = "1"
        text += "".join("/" + self.parenthesize(d, level) for d in scalar_den + array_den)
        return sign + text

    def _size(self, expr) -> int | None:
        """The number of elements of `expr`'s array; None where the oracle has no shape."""
        if self._shapes is None:
            return None
        try:
            return math.prod(self._shapes.of(expr))
        except KeyError:
            return None

    def _broadcast_factors(self, expr, array_num: list, array_den: list) -> tuple[list, list]:
        """Takes out of `array_num` and `array_den` (in place) the factors smaller than the
        product `expr` (not masks), when all of them broadcast together are still smaller:
        their product is then computed on small arrays and applied to the large ones once.
        Returns them (numerators, denominators); two empty lists otherwise."""
        whole = self._size(expr)
        if whole is None:
            return [], []
        small = [f for f in array_num + array_den
                 if not self._is_mask(f) and (self._size(f) or whole) < whole]
        if not small:
            return [], []
        try:
            joint = math.prod(broadcast_shapes(*(self._shapes.of(f) for f in small)))
        except ValueError:
            return [], []
        if joint >= whole:
            return [], []
        chosen = set(small)
        numerators = [f for f in array_num if f in chosen]
        denominators = [f for f in array_den if f in chosen]
        array_num[:] = [f for f in array_num if f not in chosen]
        array_den[:] = [f for f in array_den if f not in chosen]
        return numerators, denominators

    def _number(self, text: str) -> str:
        """A boolean mask's text as numbers of the module's dtype (bool + bool is a
        logical or in NumPy, bool - bool an error)."""
        dtype = self._module_format("numpy." + self._dtype)
        return f"{self._module_format('numpy.asarray')}({_unwrapped(text)}, dtype={dtype})"

    def _negated_number(self, text: str) -> str:
        dtype = self._module_format("numpy." + self._dtype)
        return f"{self._module_format('numpy.negative')}({_unwrapped(text)}, dtype={dtype})"

    def _print_Add(self, expr, order=None):
        """Negative terms as subtractions (``a - b``, never ``a + -b``), the costliest
        positive term first.

        Python evaluates left to right: computing the big term first lets NumPy add the
        others into its temporary in place, instead of keeping a finished array alive
        while the big term allocates more (which for large arrays means fresh pages from
        the OS every step).
        """
        text = ""
        terms = list(self._as_ordered_terms(expr, order=order))
        positive = [t for t in terms if not t.as_coeff_Mul()[0].is_negative]
        if positive:
            # the first of the costliest, preferring numbers to masks: once the first term
            # is a float array, NumPy adds masks to it as 0 and 1
            lead = max(positive, key=lambda t: (not self._is_mask(t), self._cost(t)))
            terms.remove(lead)
            terms.insert(0, lead)
        for term in terms:
            negative = term.as_coeff_Mul()[0].is_negative
            shown = -term if negative else term
            # After " - ", a sum needs parentheses: a - (b + c).
            part = self.parenthesize(shown, PRECEDENCE["Add"], strict=not negative)
            if not text:
                if self._is_mask(shown):
                    bare = self._print(shown)
                    text = self._negated_number(bare) if negative else self._number(bare)
                else:
                    text = f"-{part}" if negative else part
            else:
                text += f" - {part}" if negative else f" + {part}"
        return text

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.base, expr.exp
        if exp.is_Float and float(exp).is_integer() and abs(float(exp)) < 2**53:
            exp = sympy.Integer(int(exp))
        if exp.is_Integer and exp > 0 and self._is_mask(base):
            return self._print(base)  # True**2 would be the integer 1
        if exp.is_Integer:
            level = PRECEDENCE["Pow"]
            if exp == -1:
                return "1/" + self.parenthesize(base, PRECEDENCE["Mul"])
            if exp < 0:
                return f"1/{self.parenthesize(base, level)}**{-exp}"
            return f"{self.parenthesize(base, level)}**{exp}"
        if self._is_scalar(base) and (exp.is_Rational or exp.is_Float):
            # A scalar coefficient: Python arithmetic keeps it a weak Python float (a
            # numpy.float64 from numpy.sqrt would turn float32 arrays into float64).
            return f"{self.parenthesize(base, PRECEDENCE['Pow'])}**{float(exp)!r}"
        return super()._print_Pow(expr, rational=rational)

    # --- training-specific overrides -----------------------------------------------------
    def _print_Max(self, expr):
        """``numpy.maximum(x, 0)``, variable first, instead of ``functools.reduce``."""
        args = sorted(expr.args, key=lambda a: a.is_Number)
        text = self._print(args[-1])
        for arg in reversed(args[:-1]):
            text = f"{self._module_format('numpy.maximum')}({self._print(arg)}, {text})"
        return text

    def _print_Min(self, expr):
        args = sorted(expr.args, key=lambda a: a.is_Number)
        text = self._print(args[-1])
        for arg in reversed(args[:-1]):
            text = f"{self._module_format('numpy.minimum')}({self._print(arg)}, {text})"
        return text

    def _print_Abs(self, expr):
        return f"{self._module_format('numpy.abs')}({self._print(expr.args[0])})"

    def _print_Heaviside(self, expr):
        """relu'(x) = (x > 0): the derivative at 0 is 0 by convention, as in nnabla."""
        return f"({self._print(expr.args[0])} > 0)"

    # --- tensor primitives ----------------------------------------------------------------
    def _receiver(self, expr) -> str:
        """`expr` ready for a method call: parenthesised unless it is a name or a call."""
        text = self._print(expr)
        if precedence(expr) >= PRECEDENCE["Func"] and not expr.is_Number:
            return text
        return f"({text})"

    def _print_ReduceSum(self, expr):
        axes = as_ints(expr.args[1])
        axis = str(axes[0]) if len(axes) == 1 else shape_text(axes)
        keep = ", keepdims=True" if bool(expr.args[2]) else ""
        if self._is_mask(expr.args[0]):  # a count, in the module's dtype
            keep += f", dtype={self._module_format('numpy.' + self._dtype)}"
        x, x_shape = expr.args[0], as_ints(expr.args[3])
        if self._shapes is not None and self._shapes.of(x) != x_shape:
            # x folded into something smaller after the sum was built: count its elements
            x = _unfolded(x, shape_tuple(x_shape))
        elif self._sum_by_products(x, x_shape, axes):
            factors = self._product_pair(x, x_shape)
            options = [f"axes={shape_text(axes)}", f"keepdims={bool(expr.args[2])}"]
            if factors is None:
                return self._kernel_call("reduce_sum", [self._print(x), *options])
            return self._kernel_call("reduce_sum_of_products",
                                     [*(self._print(f) for f in factors), *options])
        return self._sum(x, axis, keep)

    # Sums of at least this many elements over axes around consecutive kept ones (batch
    # normalization's channel sums, a bias's gradient) are BLAS products: the kernels
    # reduce_sum and reduce_sum_of_products (measured there); NumPy's sum below it.
    sums_by_products_from: int | None = 8192

    def _sum_by_products(self, x, shape, axes) -> bool:
        kept = [i for i in range(len(shape)) if i not in axes]
        return (self.sums_by_products_from is not None and self._shapes is not None
                and math.prod(shape) >= self.sums_by_products_from and bool(kept)
                and kept == list(range(kept[0], kept[-1] + 1)) and not self._is_mask(x))

    def _product_pair(self, x, shape) -> tuple | None:
        """(a, b) where `x` is a * b or a**2 (a, b arrays of x's whole shape, not masks)."""
        if x.is_Pow and x.exp == 2:
            pair = (x.base, x.base)
        elif x.is_Mul and len(x.args) == 2:
            pair = tuple(x.args)
        else:
            return None
        if all(not f.is_Number and not self._is_mask(f) and self._shapes.of(f) == shape
               for f in pair):
            return pair
        return None

    def _sum(self, x, axis: str, keep: str) -> str:
        """The sum of `x` over `axis` (printed), `keep` being its extra keyword text."""
        return f"{self._receiver(x)}.sum(axis={axis}{keep})"

    def _print_Dot(self, expr):
        u, v = (self._print(a) for a in expr.args)
        if all(self._is_mask(a) for a in expr.args):  # vdot of two masks is a bool
            u = self._number(u)
        return f"{self._module_format('numpy.vdot')}({u}, {v})"

    def _print_ExpandDims(self, expr):
        axes = as_ints(expr.args[1])
        axis = str(axes[0]) if len(axes) == 1 else shape_text(axes)
        return f"{self._module_format('numpy.expand_dims')}({self._print(expr.args[0])}, {axis})"

    def _print_Reshape(self, expr):
        x, shape = expr.args
        if self._shapes is not None and self._shapes.of(x) == () \
                and math.prod(as_ints(shape)) > 1:
            # x folded into a scalar after the reshape was built (CSE cancelled h - h in a
            # gradient): it stood for an array of that value
            return self._print(_unfolded(x, shape))
        return (f"{self._module_format('numpy.reshape')}({self._print(x)}, "
                f"{shape_text(shape)})")

    def _print_BroadcastTo(self, expr):
        if expr.args[0].is_number:  # a constant spread: an array of the module's dtype
            return self._print(Full(*expr.args))
        return (f"{self._module_format('numpy.broadcast_to')}({self._print(expr.args[0])}, "
                f"{shape_text(expr.args[1])})")

    def _print_MatMul(self, expr):
        a, b = expr.args
        level = PRECEDENCE["Mul"]
        # @ is left-associative at the precedence of *: only the right operand needs
        # parentheses around a product, or around a power that prints as a quotient
        # (x.T @ 1/h would be (x.T @ 1)/h).
        left = self.parenthesize(a, level, strict=True)
        if self._is_mask(a) and self._is_mask(b):  # bool @ bool is a bool
            left = self._number(left)
        right = self.parenthesize(b, level)
        if b.is_Pow and b.exp.is_negative and not right.startswith("("):
            right = f"({right})"
        if self._outer_product(a, b):
            return f"{self._module_format('numpy.dot')}({self._print(a)}, {self._print(b)})"
        return f"{left} @ {right}"

    # NumPy's matmul takes a slow path for matrices whose inner dimension is 1 (a
    # batch-1 weight gradient x.T @ dy: 290 us for (784, 1) @ (1, 256), numpy.dot 46 us;
    # bench/peers.py's mlp-b1): those products are numpy.dot calls.
    outer_products_by_dot = True

    def _outer_product(self, a, b) -> bool:
        if not self.outer_products_by_dot or self._shapes is None:
            return False
        a_shape, b_shape = self._shapes.of(a), self._shapes.of(b)
        return len(a_shape) == 2 and len(b_shape) == 2 and a_shape[1] == 1

    def _print_Slice(self, expr):
        return f"{self._receiver(expr.args[0])}{slice_text(expr, self._shapes)}"

    def _print_Flip(self, expr):
        return (f"{self._module_format('numpy.flip')}({self._print(expr.args[0])}, "
                f"axis={shape_text(expr.args[1])})")

    def _print_Concatenate(self, expr):
        parts = ", ".join(self._print(a) for a in expr.args[:-1])
        return f"{self._module_format('numpy.concatenate')}(({parts}), axis={expr.axis})"

    def _print_Transpose(self, expr):
        perm = as_ints(expr.args[1])
        if perm == (1, 0):
            return f"{self._receiver(expr.args[0])}.T"
        function = self._module_format("numpy.transpose")
        return f"{function}({self._print(expr.args[0])}, {shape_text(perm)})"

    def _print_ReduceMax(self, expr):
        x, axis, keep = expr.args
        if self._shapes is not None and self._shapes.of(x) == ():
            return self._print(x)  # a value folded into a constant: its max is itself
        keep = ", keepdims=True" if bool(keep) else ""
        return f"{self._receiver(x)}.{expr.method}(axis={int(axis)}{keep})"

    _print_ReduceMin = _print_ReduceMax

    def _index_along(self, length: int, axis: int, rank: int) -> str:
        """``numpy.arange(n)`` shaped to broadcast along `axis` of a rank-`rank` array."""
        arange = self._arange(length)
        if axis == rank - 1:
            return arange
        shape = [1] * rank
        shape[axis] = length
        return self._reshaped(arange, shape)

    def _arange(self, length: int) -> str:
        return f"{self._module_format('numpy.arange')}({length})"

    def _reshaped(self, text: str, shape) -> str:
        """`text` (a call) reshaped to `shape`."""
        return f"{text}.reshape({shape_text(shape)})"

    def _print_FirstExtremum(self, expr):
        """A one-hot mask of the first argmax/argmin: where nnabla sends max's gradient."""
        x, axis, is_max = expr.args
        shape = self._shapes.of(x)
        axis = int(axis)
        find = self._module_format("numpy.argmax" if bool(is_max) else "numpy.argmin")
        index = self._index_along(shape[axis], axis, len(shape))
        return f"({index} == {find}({self._print(x)}, axis={axis}, keepdims=True))"

    def _print_Piecewise(self, expr):
        """``a if c else b`` when the conditions are scalars (a solver's coefficients),
        ``numpy.where(c, a, b)`` for arrays."""
        *cases, (last, _) = expr.args
        text = self._print(last)
        scalar = all(self._is_scalar_condition(c) for _, c in cases)
        for value, condition in reversed(cases):
            if scalar:
                text = f"({self._print(value)} if {self._print(condition)} else {text})"
            else:
                where = self._module_format("numpy.where")
                text = f"{where}({self._print(condition)}, {self._print(value)}, {text})"
        return text

    def _is_scalar_condition(self, condition) -> bool:
        return all(self._is_scalar(arg) for arg in condition.args)

    def _print_Relational(self, expr):
        op = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}[expr.rel_op]
        level = PRECEDENCE["Relational"]
        return f"{self.parenthesize(expr.lhs, level)} {op} {self.parenthesize(expr.rhs, level)}"

    def _print_Copy(self, expr):
        return f"{self._receiver(expr.args[0])}.copy()"

    # --- kernels ------------------------------------------------------------------------
    def _print_KernelBase(self, expr):
        """A primitive computed by a kernel (`primitives.KernelBase`): a call of the kernel with
        its arrays, then its options by keyword,
        ``conv_forward(x, conv_W, pad=(1, 1), stride=(1, 1), dilation=(1, 1), group=1)``."""
        arrays = [self._print(expr.args[i]) for i in expr.tensor_args]
        options = [f"{name}={option_text(value)}" for name, value in expr.keywords()]
        return self._kernel_call(expr.kernel, arrays + options)

    def _kernel_call(self, name: str, arguments: list[str]) -> str:
        """``name(arguments)``, recording that the printed code calls the kernel `name`."""
        self.kernels.add(name)
        return f"{name}({', '.join(arguments)})"

    def _print_StopGradient(self, expr):
        return self._print(expr.args[0])

    def _print_AllReduceSum(self, expr):
        """``all_reduce_sum(x, all_reduce, 'group')``: x summed over the processes of the
        group by the function's `all_reduce` argument (see ir.collectives); the group's
        name as its repr() literal."""
        return self._kernel_call("all_reduce_sum", [self._print(expr.args[0]), "all_reduce",
                                                    repr(expr.group)])

    def _print_ProcessShared(self, expr):
        return self._print(expr.args[0])  # (its value is its argument's; see ir.collectives)

    def _print_AsNumber(self, expr):
        mask = expr.args[0]
        if mask.is_Mul:  # _print_Mul gives a product of masks as numbers already
            return f"({self._print(mask)})"  # (it stands where a call would: (...).sum())
        return self._number(self._print(mask))

    def _print_DrawBase(self, expr):
        """``random_<kind>(rng, shape, *numbers, dtype)``: the function's generator draws
        it (see primitives.DrawBase)."""
        numbers = [repr(float(a)) for a in expr.numbers]
        return self._kernel_call(f"random_{expr.kind}", ["rng", shape_text(expr.args[0]),
                                                         *numbers, *self._mask_dtype()])

    def _mask_dtype(self) -> list[str]:
        return [f"numpy.{self._dtype}"]

    def _print_Arange(self, expr):
        start, step, count = expr.args
        return self._kernel_call("arange_accumulated", [repr(float(start)), repr(float(step)),
                                                        str(int(count)), *self._mask_dtype()])

    def _print_Linspace(self, expr):
        start, stop, num = expr.args
        return self._kernel_call("linspace_values", [repr(float(start)), repr(float(stop)),
                                                     str(int(num)), *self._mask_dtype()])

    def _print_OneHot(self, expr):
        t, classes, axis = expr.args
        rank = len(self._shapes.of(t))
        return f"({self._print(t)} == {self._index_along(int(classes), int(axis), rank)})"

    def _print_ValidLabel(self, expr):
        t = self._print(expr.args[0])
        return f"(({t} >= 0) & ({t} < {int(expr.args[1])}))"

    # --- elementwise functions of symcompile.elementwise ---------------------------------
    def _typed(self, value) -> str:
        """A constant in the module's dtype, so that numpy.where keeps float32."""
        return f"{self._module_format('numpy.' + self._dtype)}({self._print(value)})"

    # exp overflows beyond these: ln of the dtype's largest number, rounded down
    _EXP_LIMIT = {"float32": 88.72, "float64": 709.78}

    def _print_Sigmoid(self, expr):
        """``1/(1 + exp(-max(x, -L)))``: nnabla's formula, with L the largest exponent
        whose exp is finite.

        It keeps its relative precision (within about 2 ulps) down to the end of the
        normal range (x = -87.3 in float32). In the tanh form 0.5*tanh(0.5*x) + 0.5,
        1 + tanh(x/2) cancels: in float32 it is 1e-4 off at x = -9, 44 % at -17 and 0
        from -20 on. The bound spares NumPy's "overflow encountered in exp" warning below
        -L, where the result is 1/(1 + exp(L)) instead of 0: 3e-39 in float32, below
        float32's smallest normal number as the true values are. It costs a sixth more
        than the unbounded formula, and a sixth less than the tanh form.
        """
        exp, maximum = self._module_format("numpy.exp"), self._module_format("numpy.maximum")
        limit = self._EXP_LIMIT[self._dtype]
        # parenthesised: it is a quotient, and would divide or be raised to a power wrongly
        return f"(1/(1 + {exp}(-{maximum}({self._print(expr.args[0])}, -{limit!r}))))"

    def _print_Softplus(self, expr):
        return f"{self._module_format('numpy.logaddexp')}(0, {self._print(expr.args[0])})"

    def _print_LeakyRelu(self, expr):
        x, alpha = expr.args
        where, text = self._module_format("numpy.where"), self._print(x)
        return f"{where}({text} > 0, {text}, {self.parenthesize(alpha, 50)}*{self._receiver(x)})"

    def _print_LeakyReluGrad(self, expr):
        x, alpha = expr.args
        where = self._module_format("numpy.where")
        return f"{where}({self._print(x)} > 0, {self._typed(1)}, {self._typed(alpha)})"

    def _print_Elu(self, expr):
        x, alpha = expr.args
        where, expm1 = self._module_format("numpy.where"), self._module_format("numpy.expm1")
        minimum = self._module_format("numpy.minimum")
        text = self._print(x)
        return (f"{where}({text} >= 0, {text}, "
                f"{self.parenthesize(alpha, 50)}*{expm1}({minimum}({text}, 0)))")

    def _print_EluGrad(self, expr):
        x, alpha = expr.args
        where, exp = self._module_format("numpy.where"), self._module_format("numpy.exp")
        minimum = self._module_format("numpy.minimum")
        text = self._print(x)
        return (f"{where}({text} >= 0, {self._typed(1)}, "
                f"{self.parenthesize(alpha, 50)}*{exp}({minimum}({text}, 0)))")

    def _print_Huber(self, expr):
        d, delta = expr.args
        where, absolute = self._module_format("numpy.where"), self._module_format("numpy.abs")
        text, limit = self._print(d), self.parenthesize(delta, 50)
        return (f"{where}({absolute}({text}) < {limit}, {self._receiver(d)}**2, "
                f"{limit}*(2*{absolute}({text}) - {limit}))")

    def _print_IsGreater(self, expr):
        a, b = expr.args
        return f"({self._print(a)} > {self._print(b)})"

    def _print_IsLessEqual(self, expr):
        a, b = expr.args
        return f"({self._print(a)} <= {self._print(b)})"

    def _print_Maximum(self, expr):
        a, b = (self._print(arg) for arg in expr.args)
        return f"{self._module_format('numpy.maximum')}({a}, {b})"

    def _print_Minimum(self, expr):
        a, b = (self._print(arg) for arg in expr.args)
        return f"{self._module_format('numpy.minimum')}({a}, {b})"

    def _print_Absolute(self, expr):
        return f"{self._module_format('numpy.abs')}({self._print(expr.args[0])})"

    def _print_Sign(self, expr):
        x, at_zero = expr.args
        where, text = self._module_format("numpy.where"), self._print(x)
        if int(at_zero) > 0:
            return f"{where}({text} < 0, {self._typed(-1)}, {self._typed(1)})"
        return f"{where}({text} > 0, {self._typed(1)}, {self._typed(-1)})"

    def _print_Truncate(self, expr):
        return f"{self._module_format('numpy.trunc')}({self._print(expr.args[0])})"

    def _print_erf(self, expr):
        """NumPy and the array API standard have no erf: the `erf_values` kernel, or the
        value of a number (the standard's functions take arrays only)."""
        if expr.args[0].is_number:
            return self._print(sympy.Float(math.erf(float(expr.args[0]))))
        return self._kernel_call("erf_values", [self._print(expr.args[0])])

    def _print_Fmod(self, expr):
        x0, x1 = (self._print(a) for a in expr.args)
        return f"{self._module_format('numpy.fmod')}({x0}, {x1})"

    def _print_PRelu(self, expr):
        x, w = expr.args
        return self._where(f"{self._print(x)} >= 0", x, w * x)

    def _print_PReluGrad(self, expr):
        x, w = expr.args
        return self._where(f"{self._print(x)} >= 0", sympy.Integer(1), w)

    def _print_KLTerm(self, expr):
        return f"({self._print(expr.formula())})"

    def _print_Clip(self, expr):
        x, low, high = (self._print(a) for a in expr.args)
        return f"{self._module_format('numpy.clip')}({x}, {low}, {high})"

    # --- nnabla's rounding, signs, comparisons and selections ----------------------------
    def _where(self, condition: str, if_true, if_false) -> str:
        """``numpy.where(condition, a, b)``, numbers in the module's dtype; a string is
        printed code already."""
        a, b = (v if isinstance(v, str) else self._typed(v) if v.is_Number else self._print(v)
                for v in (if_true, if_false))
        return f"{self._module_format('numpy.where')}({condition}, {a}, {b})"

    def _compared(self, a, symbol: str, b) -> str:
        level = PRECEDENCE["Relational"]
        return f"{self.parenthesize(a, level)} {symbol} {self.parenthesize(b, level)}"

    def _print_Floor(self, expr):
        return f"{self._module_format('numpy.floor')}({self._print(expr.args[0])})"

    def _print_Ceil(self, expr):
        return f"{self._module_format('numpy.ceil')}({self._print(expr.args[0])})"

    def _print_Round(self, expr):
        """Halves away from zero: trunc(x), plus sign(x) where |x - trunc(x)| >= 1/2 (exact
        in floats; floor(|x| + 1/2) rounds 0.49999997 up in float32)."""
        x = self._print(expr.args[0])
        trunc, sign = self._module_format("numpy.trunc"), self._module_format("numpy.sign")
        absolute = self._module_format("numpy.abs")
        where = self._module_format("numpy.where")
        return (f"{where}({absolute}({x} - {trunc}({x})) >= 0.5, {trunc}({x}) + {sign}({x}), "
                f"{trunc}({x}))")

    def _print_Signum(self, expr):
        x, alpha = expr.args
        text = self._print(x)
        inner = self._where(f"{text} < 0", sympy.Integer(-1), alpha)
        return self._where(f"{text} > 0", sympy.Integer(1), inner)

    def _print_Binary(self, expr):
        x, low, high = expr.args
        return self._where(f"{self._print(x)} > 0", high, low)

    def _print_InRange(self, expr):
        x, low, high, closed = expr.args
        less = "<=" if bool(closed) else "<"
        condition = f"({self._compared(low, less, x)}) & ({self._compared(x, less, high)})"
        return self._where(condition, sympy.Integer(1), sympy.Integer(0))

    def _print_SoftSign(self, expr):
        # in parentheses: it stands where a function call would (``(...).sum()``)
        return f"({self._print(expr.formula())})"

    _print_TanhShrink = _print_SoftSign

    def _print_HardClip(self, expr):
        x, low, high = (self._print(a) for a in expr.args)
        return f"{self._module_format('numpy.clip')}({x}, {low}, {high})"

    def _print_Selu(self, expr):
        x, scale, alpha = expr.args
        expm1 = self._module_format("numpy.expm1")
        minimum = self._module_format("numpy.minimum")
        text, coeff = self._print(x), self._print(scale * alpha)
        return (f"{self._module_format('numpy.where')}({text} > 0, "
                f"{self.parenthesize(scale, 50)}*{self._receiver(x)}, "
                f"{coeff}*{expm1}({minimum}({text}, 0)))")

    def _print_SeluGrad(self, expr):
        x, scale, alpha = expr.args
        exp, minimum = self._module_format("numpy.exp"), self._module_format("numpy.minimum")
        text, coeff = self._print(x), self._print(scale * alpha)
        return (f"{self._module_format('numpy.where')}({text} > 0, {self._typed(scale)}, "
                f"{coeff}*{exp}({minimum}({text}, 0)))")

    def _nonzero(self, text: str) -> str:
        """`text` where it is not 0, else 1: a divisor that spares NumPy's warning."""
        return self._where(f"{text} == 0", sympy.Integer(1), text)

    def _print_Sinc(self, expr):
        text = self._print(expr.args[0])
        sin = self._module_format("numpy.sin")
        ratio = f"{sin}({text})/{self._nonzero(text)}"
        return self._where(f"{text} == 0", sympy.Integer(1), ratio)

    def _print_SincGrad(self, expr):
        text = self._print(expr.args[0])
        sin, cos = self._module_format("numpy.sin"), self._module_format("numpy.cos")
        x = self._receiver(expr.args[0])
        ratio = f"({x}*{cos}({text}) - {sin}({text}))/{self._nonzero(text)}**2"
        return self._where(f"{text} == 0", sympy.Integer(0), ratio)

    def _print_SincGrad2(self, expr):
        text = self._print(expr.args[0])
        sin, cos = self._module_format("numpy.sin"), self._module_format("numpy.cos")
        x = self._receiver(expr.args[0])
        ratio = (f"((2 - {x}**2)*{sin}({text}) - 2*{x}*{cos}({text}))"
                 f"/{self._nonzero(text)}**3")
        return self._where(f"{text} == 0", sympy.Rational(-1, 3), ratio)

    def _print_Compare(self, expr):
        a, b, _ = expr.args
        return self._number(self._compared(a, expr.symbol, b))

    def _print_Classify(self, expr):
        test = self._module_format(f"numpy.{expr.test}")
        return self._number(f"{test}({self._print(expr.args[0])})")

    def _print_Reset(self, expr):
        x, val, kind = expr.args
        test = self._module_format("numpy." + ("isnan" if int(kind) == 0 else "isinf"))
        return self._where(f"{test}({self._print(x)})", val, x)

    def _print_Select(self, expr):
        condition, x_true, x_false = expr.args
        return self._where(self._compared(condition, "!=", sympy.Integer(0)), x_true, x_false)

    def _print_Full(self, expr):
        dtype = self._module_format("numpy." + self._dtype)
        return (f"{self._module_format('numpy.full')}({shape_text(expr.args[1])}, "
                f"{self._print(expr.args[0])}, dtype={dtype})")


def _unfolded(x, shape):
    """`x`, which simplification folded into something smaller, as the array of `shape`
    it stood for: a number fills an array of the module's dtype (a broadcast Python float
    would be float64), an array is broadcast."""
    return (Full if x.is_number else BroadcastTo)(x, shape)


def _unwrapped(text: str) -> str:
    """`text` without one pair of parentheses around all of it: "(x > 0)" -> "x > 0"."""
    if not (text.startswith("(") and text.endswith(")")):
        return text
    depth = 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and i < len(text) - 1:
            return text  # "(a) + (b)": the first pair closes early
    return text[1:-1]
