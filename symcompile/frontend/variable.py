"""nnabla's `Variable`: a node of the training graph with live `.d`/`.g` NumPy arrays.

Building a graph only records it: each `F.*` call adds a `Function` record and returns a
new `Variable`. Values are computed by generated code, which the runtime compiles the
first time `forward()` or `backward()` is called on a variable.
"""

from __future__ import annotations

import numbers
import weakref
from types import SimpleNamespace

import numpy

from symcompile.common import memory
from symcompile.frontend import executor, nnabla_arguments
from symcompile.ir import callsite

DTYPE = numpy.float32
FLOAT = numpy.dtype(DTYPE)  # what functions compute in and write (nnabla's float32)
# Refuse shapes whose arrays could never be allocated, before NumPy tries.
MAX_ELEMENTS = 2**40

_epoch = [0]
_reshapes = [0]  # how many times a leaf's reset_shape changed a shape


def graph_epoch() -> int:
    """A counter that changes whenever a compiled graph may need recompiling."""
    return _epoch[0]


def bump_epoch() -> None:
    _epoch[0] += 1


def normalize_shape(shape, what: str = "Variable") -> tuple[int, ...]:
    """`shape` as a tuple of non-negative ints, or a ValueError saying what is wrong."""
    if isinstance(shape, numbers.Integral):
        shape = (shape,)
    try:
        given = tuple(shape)
    except TypeError:
        raise TypeError(f"{what}: shape must be a tuple of ints, got {shape!r}") from None
    for d in given:
        if not isinstance(d, numbers.Integral) or isinstance(d, bool):
            raise TypeError(f"{what}: shape {shape!r} has the dimension {d!r}, which is not an "
                            f"int; pass whole numbers, e.g. ({', '.join(map(_whole, given))})")
    dims = tuple(int(d) for d in given)
    if any(d < 0 for d in dims):
        raise ValueError(f"{what}: shape {dims} has a negative dimension")
    size = 1
    for d in dims:
        size *= d
    if size > MAX_ELEMENTS:
        raise ValueError(
            f"{what}: shape {dims} has {size} elements, more than symcompile will allocate "
            f"({MAX_ELEMENTS}); check the shape for a typo"
        )
    return dims


def _whole(d) -> str:
    """`d` as the int it most likely meant, for an error message's suggestion."""
    try:
        return str(int(d))
    except (TypeError, ValueError):
        return "?"


class ArrayData(numpy.ndarray):
    """What `.d` and `.g` return: the variable's live array, converting to a Python number
    when it holds one element.

    nnabla's tutorials write ``float(loss.d)`` and ``float(a.d)`` for arrays of shape
    (1, 1), which NumPy 2 refuses for arrays with axes; this view accepts any size-1 array
    (also in ``int()`` and in format specs such as ``f"{loss.d:.4f}"``) and is otherwise
    a plain ndarray sharing the variable's memory. Generated code never sees it: the
    runtime passes the plain arrays, so the loop pays nothing for it.
    """

    def __float__(self) -> float:
        return float(self.item()) if self.size == 1 else super().__float__()

    def __int__(self) -> int:
        return int(self.item()) if self.size == 1 else super().__int__()

    def __format__(self, spec: str) -> str:
        if spec and self.size == 1:
            return format(self.item(), spec)
        return super().__format__(spec)

    def __repr__(self) -> str:
        return repr(self.view(numpy.ndarray))


class Storage:
    """The arrays behind a Variable, shared by all unlinked views of it.

    As nnabla's, the values (and the gradient) have a current dtype, the one used last:
    assigning an array (not a scalar) or `cast(dtype)` makes its dtype the current one,
    and `.d` / `.data` give the array of that dtype. Functions read their inputs as the
    module's float32 without changing it (the runtime passes a float32 copy of an array
    of another dtype), and write their outputs in the dtype they produce: float32 but for
    the integer ones (`produces`) and those giving their input's dtype (`follows`).

    `grad_zeroing` mirrors nnabla's lazy zeroing: `zero_grad()` only sets the flag; the
    array is cleared when it is next read, and `solver.update()` skips a parameter whose
    gradient is still zeroing (nothing wrote it since `zero_grad()`).

    `pending` is work the runtime put off that reads or writes these arrays (a deferred
    backward(), gradients not yet copied into `.g`; see `runtime.deferred`): every access
    below first calls its ``touch(storage, field)``, which does that work, so no one sees
    the difference.
    """

    __slots__ = ("shape", "dtype", "grad_dtype", "_data", "_grad", "_data_view", "_grad_view",
                 "grad_zeroing", "computed", "init", "produces", "follows", "pending",
                 "__weakref__")

    def __init__(self, shape: tuple[int, ...], dtype=DTYPE) -> None:
        self.shape = shape
        self.dtype = numpy.dtype(dtype)  # of the values, the one used last
        self.grad_dtype = FLOAT  # of the gradient, the one used last
        self._data = None
        self._grad = None
        self._data_view = None  # ArrayData views of _data and _grad, for the user
        self._grad_view = None
        self.grad_zeroing = False
        self.computed = False  # an intermediate's value has been computed at least once
        self.init = None  # how a parameter was initialised (see initializer.describe)
        self.produces = FLOAT  # the dtype the function computing this output writes
        self.follows = None  # or the Storage whose dtype it writes (F.identity, F.reshape)
        self.pending = None  # the runtime's put-off work on these arrays (see above)

    def _touch(self, field: str) -> None:
        """Do the put-off work before `field` ("data", "grad", or "zero" for zero_grad)
        is accessed."""
        if self.pending is not None:
            self.pending.touch(self, field)

    def _zeros(self, dtype) -> numpy.ndarray:
        memory.require(self.shape, dtype, "Variable")
        return numpy.zeros(self.shape, dtype)

    @property
    def data(self) -> numpy.ndarray:
        self._touch("data")
        if self._data is None:
            self._data = self._zeros(self.dtype)
        return self._data

    @property
    def grad(self) -> numpy.ndarray:
        """The gradient array, materialising a pending lazy zero first."""
        self._touch("grad")
        if self._grad is None:
            self._grad = self._zeros(self.grad_dtype)
        elif self.grad_zeroing:
            self._grad.fill(0)
        self.grad_zeroing = False
        return self._grad

    @property
    def data_view(self) -> ArrayData:
        """`data` as the user reads it (see ArrayData)."""
        self._touch("data")
        if self._data_view is None:
            self._data_view = self.data.view(ArrayData)
        return self._data_view

    @property
    def grad_view(self) -> ArrayData:
        """`grad` as the user reads it, materialising a pending lazy zero first."""
        grad = self.grad
        if self._grad_view is None:
            self._grad_view = grad.view(ArrayData)
        return self._grad_view

    def cast(self, dtype) -> numpy.ndarray:
        """nnabla's ``NdArray.cast(dtype)`` of the values: `dtype` becomes the current one
        (the values converted, as NumPy's astype) and its live array is returned."""
        self._touch("data")
        dtype = numpy.dtype(dtype)
        if dtype != self.dtype:
            if self._data is not None:
                memory.require(self.shape, dtype, "Variable")
                self._data = self._data.astype(dtype)
            self.dtype = dtype
            self._data_view = None
            bump_epoch()  # (compiled graphs hold the array of the old dtype)
        return self.data

    def cast_grad(self, dtype) -> numpy.ndarray:
        """`cast` of the gradient."""
        self._touch("grad")
        dtype = numpy.dtype(dtype)
        if dtype != self.grad_dtype:
            if self._grad is not None:
                memory.require(self.shape, dtype, "Variable")
                self._grad = self._grad.astype(dtype)
            self.grad_dtype = dtype
            self._grad_view = None
        return self.grad

    def assign(self, field: str, value, what: str) -> None:
        """nnabla's ``.d = value`` (`field` "data") or ``.g = value`` ("grad"): a scalar
        fills the array of the current dtype; an array (or a list) is copied in
        (broadcast) and its dtype becomes the current one. A refused value changes
        nothing."""
        self._touch(field)
        current = self.dtype if field == "data" else self.grad_dtype
        if isinstance(value, numpy.ndarray):
            dtype = value.dtype
        elif value is None or numpy.isscalar(value):
            dtype = current
        else:
            value = numpy.asarray(value)
            dtype = value.dtype
        if dtype == current:
            _assign(self.data if field == "data" else self.grad, value, what)
            if field == "grad":
                self.grad_zeroing = False
            return
        memory.require(self.shape, dtype, what)
        staged = numpy.empty(self.shape, dtype)
        _assign(staged, value, what)
        self._install(field, staged)

    def _install(self, field: str, array: numpy.ndarray) -> None:
        """`array` (of this shape) becomes the values or the gradient, and its dtype the
        current one."""
        self._touch(field)
        if field == "data":
            self._data, self.dtype, self._data_view = array, array.dtype, None
            bump_epoch()  # (compiled graphs hold the array of the old dtype)
        else:
            self._grad, self.grad_dtype, self._grad_view = array, array.dtype, None
            self.grad_zeroing = False

    def write_output(self, value) -> None:
        """What the function computing this output writes: `value` in the dtype the
        function produces."""
        dtype = self.produces if self.follows is None else self.follows.dtype
        if dtype != self.dtype:
            self._install("data", self._zeros(dtype))
        self.data[...] = value
        self.computed = True

    def _float_grad(self) -> None:
        """backward() accumulates a gradient in float32, which becomes its dtype (as in
        nnabla)."""
        if self.grad_dtype != FLOAT:
            self.cast_grad(FLOAT)

    def set_grad(self, value) -> None:
        """Overwrite the gradient: what backward() does to an intermediate's."""
        self._touch("grad")
        self._float_grad()
        if self._grad is None:
            self._grad = self._zeros(self.grad_dtype)
        self._grad[...] = value
        self.grad_zeroing = False

    def accumulate_grad(self, value) -> None:
        """Add `value` to the gradient (assign when it was zeroed): what backward() does."""
        self._touch("grad")
        self._float_grad()
        if self._grad is None:
            self._grad = self._zeros(self.grad_dtype)
            self._grad[...] = value
        elif self.grad_zeroing:
            self._grad[...] = value
        else:
            self._grad += value
        self.grad_zeroing = False

    def zero_grad(self) -> None:
        self._touch("zero")
        self.grad_zeroing = True

    def reset_shape(self, shape: tuple[int, ...]) -> None:
        """A new shape: of the same size the arrays are reshaped in place (every view of
        them sees it), else dropped (zeros when next read)."""
        self._touch("grad")
        size = int(numpy.prod(shape, dtype=numpy.int64))
        for name in ("_data", "_grad"):
            array = getattr(self, name)
            if array is not None:
                setattr(self, name, array.reshape(shape) if array.size == size else None)
        self.shape = shape
        self._data_view = self._grad_view = None


class ReshapedStorage(Storage):
    """Another variable's arrays seen in another shape (``reshape(unlink=True)``): every
    read and write goes to them, the lazy zeroing of the gradient and the dtypes
    included, so the two variables cannot disagree."""

    __slots__ = ("base",)

    def __init__(self, base: Storage, shape: tuple[int, ...]) -> None:
        # (not Storage.__init__: it would clear the base's pending zeroing)
        self.shape, self.base = shape, base
        self.computed, self.init, self.pending = True, None, None
        self.produces, self.follows = FLOAT, None

    @property
    def dtype(self) -> numpy.dtype:
        return self.base.dtype

    @property
    def grad_dtype(self) -> numpy.dtype:
        return self.base.grad_dtype

    @property
    def grad_zeroing(self) -> bool:
        return self.base.grad_zeroing

    @grad_zeroing.setter
    def grad_zeroing(self, value: bool) -> None:
        self.base.grad_zeroing = value

    @property
    def data(self) -> numpy.ndarray:
        return self.base.data.reshape(self.shape)

    @property
    def grad(self) -> numpy.ndarray:
        return self.base.grad.reshape(self.shape)

    @property
    def data_view(self) -> ArrayData:
        return self.data.view(ArrayData)

    @property
    def grad_view(self) -> ArrayData:
        return self.grad.view(ArrayData)

    def cast(self, dtype) -> numpy.ndarray:
        self.base.cast(dtype)
        return self.data

    def cast_grad(self, dtype) -> numpy.ndarray:
        self.base.cast_grad(dtype)
        return self.grad

    def _install(self, field: str, array: numpy.ndarray) -> None:
        self.base._install(field, array.reshape(self.base.shape))

    def set_grad(self, value) -> None:
        self.base.set_grad(numpy.reshape(numpy.broadcast_to(value, self.shape),
                                         self.base.shape))

    def accumulate_grad(self, value) -> None:
        self.base.accumulate_grad(numpy.reshape(numpy.broadcast_to(value, self.shape),
                                                self.base.shape))

    def zero_grad(self) -> None:
        self.base.zero_grad()

    def reset_shape(self, shape: tuple[int, ...]) -> None:
        raise ValueError("reset_shape: this variable is a reshaped view of another's arrays "
                         "(reshape(unlink=True)); reset the shape of that variable instead")


def _assign(array: numpy.ndarray, value, what: str = "Variable") -> None:
    """nnabla's `.d = value` / `.g = value`: fill with a scalar, else copy (broadcasting).

    Only real numbers are accepted: None, strings, objects and complex numbers would
    become NaN, raise deep inside NumPy or silently lose their imaginary part."""
    if value is None:
        raise TypeError(f"{what} = None: a variable always holds numbers; assign 0 to zero "
                        f"it, or an array of shape {array.shape}")
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{what} = {value!r}: expected numbers, got a string")
    value = numpy.asarray(value) if not isinstance(value, numpy.ndarray) else value
    if value.dtype.kind not in "biuf":
        raise TypeError(f"{what}: expected real numbers, got an array of dtype {value.dtype}"
                        + (" (complex: pass the real part, value.real)"
                           if value.dtype.kind == "c" else "")
                        + "; convert it with numpy.asarray(value, dtype=numpy.float32)")
    if value.ndim == 0:
        array.fill(value)
        return
    try:
        array[...] = value
    except ValueError:
        raise ValueError(
            f"cannot assign an array of shape {value.shape} to a variable of shape "
            f"{array.shape}; reshape the value to {array.shape}"
        ) from None


class NdArray:
    """nnabla's NdArray: an array on its own (``nn.NdArray(shape)``,
    ``NdArray.from_numpy_array``), or the `.data` / `.grad` of a Variable.

    `.data` is the live NumPy array; `zero()`, `fill()`, `copy_from()`, `cast()`; the
    arithmetic operators give new NdArrays and the in-place ones (``param.data -=
    param.grad * lr``) write into the array. F functions called on NdArrays compute at
    once and return NdArrays (imperative mode; see `functions`)."""

    __slots__ = ("_storage", "_field")

    def __init__(self, shape=(), dtype=None) -> None:
        self._storage = Storage(normalize_shape(shape), DTYPE if dtype is None else dtype)
        self._field = "data"

    @classmethod
    def view(cls, storage: Storage, field: str) -> NdArray:
        """The `field` ("data" or "grad") of `storage`, shared."""
        array = cls.__new__(cls)
        array._storage = storage
        array._field = field
        return array

    @staticmethod
    def from_numpy_array(nparr) -> NdArray:
        """A new NdArray holding a copy of `nparr`, keeping its dtype (as nnabla)."""
        value = numpy.asarray(nparr)
        if value.dtype.kind not in "biuf":
            raise TypeError(f"NdArray.from_numpy_array: expected real numbers, got an array "
                            f"of dtype {value.dtype}")
        array = NdArray(value.shape, value.dtype)
        array.data = value
        return array

    def _array(self) -> numpy.ndarray:
        return getattr(self._storage, self._field)

    def copy_from(self, other) -> None:
        """Copy `other`'s values (an NdArray or an array) into this one, in their dtype
        (which becomes this one's, as in nnabla)."""
        self._storage.assign(self._field,
                             other._array() if isinstance(other, NdArray) else other,
                             "NdArray.copy_from")

    def cast(self, dtype, ctx=None) -> numpy.ndarray:
        """nnabla's cast: the values converted to `dtype`, which becomes the current dtype
        (of `.data` from now on), as the live array (writes go into this NdArray)."""
        if self._field == "grad":
            return self._storage.cast_grad(dtype)
        return self._storage.cast(dtype)

    def _float(self) -> numpy.ndarray:
        """The values as float32, nnabla's functions' (which its operators are)."""
        array = self._array()
        return array if array.dtype == FLOAT else array.astype(FLOAT)

    def _operand(self, other):
        return other._float() if isinstance(other, NdArray) else other

    def _result(self, value) -> NdArray:
        """An operator's result: a new float32 NdArray, as nnabla's operators give."""
        return NdArray.from_numpy_array(numpy.asarray(value, dtype=FLOAT))

    def _float_array(self) -> numpy.ndarray:
        """The live array, cast to float32 first (an in-place operator writes float32,
        which becomes the dtype, as in nnabla)."""
        return self.cast(FLOAT)

    def __add__(self, other):
        return self._result(self._float() + self._operand(other))

    def __radd__(self, other):
        return self._result(self._operand(other) + self._float())

    def __sub__(self, other):
        return self._result(self._float() - self._operand(other))

    def __rsub__(self, other):
        return self._result(self._operand(other) - self._float())

    def __mul__(self, other):
        return self._result(self._float() * self._operand(other))

    def __rmul__(self, other):
        return self._result(self._operand(other) * self._float())

    def __truediv__(self, other):
        return self._result(self._float() / self._operand(other))

    def __rtruediv__(self, other):
        return self._result(self._operand(other) / self._float())

    def __pow__(self, other):
        return self._result(self._float() ** self._operand(other))

    def __neg__(self):
        return self._result(-self._float())

    def __iadd__(self, other):
        self._float_array()[...] += self._operand(other)
        return self

    def __isub__(self, other):
        self._float_array()[...] -= self._operand(other)
        return self

    def __imul__(self, other):
        self._float_array()[...] *= self._operand(other)
        return self

    def __itruediv__(self, other):
        self._float_array()[...] /= self._operand(other)
        return self

    @property
    def data(self) -> ArrayData:
        return getattr(self._storage, f"{self._field}_view")

    @data.setter
    def data(self, value) -> None:
        if self._field == "grad" and numpy.isscalar(value) and value == 0:
            self.zero()
            return
        if isinstance(value, NdArray):
            if value._storage is self._storage and value._field == self._field:
                return  # `x.data -= ...` assigns the updated array back to itself
            value = value._array()
        self._storage.assign(self._field, value, f"NdArray.{self._field}")

    def zero(self) -> None:
        if self._field == "grad":
            self._storage.zero_grad()
        else:
            self._storage.data.fill(0)

    def fill(self, value) -> None:
        getattr(self._storage, self._field).fill(value)

    @property
    def zeroing(self) -> bool:
        """True while a gradient has not been written since it was zeroed."""
        return self._field == "grad" and self._storage.grad_zeroing

    @property
    def shape(self) -> tuple[int, ...]:
        return self._storage.shape

    @property
    def size(self) -> int:
        return int(numpy.prod(self._storage.shape, dtype=numpy.int64))

    @property
    def ndim(self) -> int:
        return len(self._storage.shape)

    @property
    def dtype(self) -> numpy.dtype:
        return self._storage.dtype

    def __repr__(self) -> str:
        return f"<NdArray({self.shape}) at {hex(id(self))}>"


class Function:
    """The record of one `F.*` call: the `parent` of the Variable it returned."""

    __slots__ = ("op", "_inputs", "_outputs", "args", "callsite", "communicator",
                 "__weakref__")

    def __init__(self, op, inputs: tuple, args: dict, site, communicator=None) -> None:
        self.op = op
        # the communicator whose processes its generated code sums values over (sync batch
        # normalization's): run-time company, not an argument (the code depends on args)
        self.communicator = communicator
        self._inputs = tuple(inputs)
        # Weak both ways: a function lives as long as one of its outputs (which holds it
        # as `parent`), and goes as soon as they do, as in nnabla (no reference cycle).
        self._outputs: list[weakref.ref] = []
        self.args = args
        self.callsite = site
        for var in inputs:
            var._references.append(weakref.ref(self))

    @property
    def inputs(self) -> list[Variable]:
        """The input Variables, as a new list (nnabla's)."""
        return list(self._inputs)

    @property
    def outputs(self) -> list[Variable]:
        return [var for var in (ref() for ref in self._outputs) if var is not None]

    def add_output(self, var: Variable) -> None:
        self._outputs.append(weakref.ref(var))
        produces = self.op.output_dtype  # (None: float32)
        if self.args.get("inplace") is False:  # F.reshape's copy: float32
            produces = None
        if produces is not None:  # (a new output: no values yet)
            storage = var._storage
            if produces == "input":
                storage.follows = self._inputs[0]._storage
                storage.dtype = storage.follows.dtype
            else:
                storage.produces = storage.dtype = numpy.dtype(produces)

    @property
    def name(self) -> str:
        """nnabla's function type name, e.g. ``Add2``."""
        return self.op.type_name

    @property
    def info(self) -> SimpleNamespace:
        """nnabla's `Function.info`: the type name, the arguments as nnabla records them
        (every argument of nnabla's function, by its names, floats as float32, lists;
        see `nnabla_arguments`), and no tags. The node's own arguments are `args`."""
        return SimpleNamespace(type_name=self.op.type_name,
                               args=nnabla_arguments.info_arguments(self), tags={})

    def __repr__(self) -> str:
        where = self.callsite.display if self.callsite else "unknown location"
        return f"<Function {self.op.type_name} at {where}>"


class Variable:
    """A graph node holding an N-d array (`.d`) and its gradient (`.g`), as in nnabla.

    Args:
        shape: The shape of the array.
        need_grad: Whether `backward()` computes a gradient for this variable
            (nnabla's default: False).
    """

    def __init__(self, shape=(), need_grad=None) -> None:
        shape = normalize_shape(shape)
        self._storage = Storage(shape)
        self._need_grad = None if need_grad is None else bool(need_grad)
        self._name = ""
        self._parent: Function | None = None
        self._callsite = callsite.capture()
        self._observed = False  # an intermediate whose .d the user reads
        self._grad_observed = False  # an intermediate whose .g the user reads
        self._compiled = None  # runtime's per-root cache
        self._persistent = False
        self._references: list[weakref.ref] = []  # the Functions that read this variable
        self._shapes_checked = _reshapes[0]

    # --- construction -----------------------------------------------------------------
    @staticmethod
    def from_numpy_array(data, grad=None, need_grad=None) -> Variable:
        """A leaf Variable holding a copy of `data` (and `grad`, if given), keeping the
        dtype of each (as nnabla; functions read it as float32)."""
        data = numpy.asarray(data)
        var = Variable(data.shape, need_grad=need_grad)
        var._callsite = callsite.capture()
        var.d = data
        if grad is not None:
            var.g = grad
        return var

    def get_unlinked_variable(self, need_grad=None) -> Variable:
        """A new leaf Variable sharing this one's arrays, cut from the graph."""
        var = Variable.__new__(Variable)
        var._storage = self._storage
        var._need_grad = self.need_grad if need_grad is None else bool(need_grad)
        var._name = self._name
        var._parent = None
        var._callsite = callsite.capture()
        var._observed = False
        var._grad_observed = False
        var._compiled = None
        var._persistent = self._persistent
        var._references = []
        var._shapes_checked = _reshapes[0]
        return var

    def unlinked(self, need_grad=None) -> Variable:
        """Deprecated alias of `get_unlinked_variable` (kept as nnabla keeps it)."""
        return self.get_unlinked_variable(need_grad)

    def __eq__(self, other) -> bool:
        """nnabla's equality: the same arrays (a variable equals its unlinked copies)."""
        if not isinstance(other, Variable):
            return NotImplemented
        return self._storage is other._storage

    def __hash__(self) -> int:
        return id(self._storage)

    @property
    def function_references(self) -> list[Function]:
        """The functions that take this variable as an input and whose outputs are still
        alive, the latest first (nnabla's order)."""
        functions = [ref() for ref in self._references]
        self._references = [ref for ref, f in zip(self._references, functions, strict=True)
                            if f is not None]
        return [f for f in reversed(functions) if f is not None]

    def reset_shape(self, shape, force=False) -> None:
        """Give this leaf a new shape, as nnabla's `reset_shape`: of the same size, the
        values are kept (read in C order); of another size (with `force=True`) the arrays
        are cleared. Graphs built on it take the new shape at their next forward() or
        backward(), when the shapes of their intermediates are inferred again."""
        shape = normalize_shape(shape)
        if self._parent is not None:
            raise ValueError(
                f"reset_shape: {self._label} is the output of {self._parent.name}, whose "
                "shape follows from its inputs; reset the shape of the inputs, or use "
                "F.reshape for another view of it")
        size = int(numpy.prod(shape, dtype=numpy.int64))
        if size != self.size and not force:
            raise ValueError(
                f"reset_shape: {self._label} has {self.size} elements {self.shape}, the new "
                f"shape {shape} has {size}; pass force=True to resize it (its values and "
                "gradient are then cleared)")
        self._storage.reset_shape(shape)
        _reshapes[0] += 1
        bump_epoch()

    def rewire_on(self, var: Variable) -> None:
        """nnabla's `rewire_on`: the graph that reads this variable is put on top of `var`.
        This variable becomes `var`'s output (the same function, sharing its arrays) and
        `var` is left without a parent."""
        if not isinstance(var, Variable):
            raise TypeError(f"rewire_on: expected a Variable, got {type(var).__name__}")
        if var.shape != self.shape:
            raise ValueError(
                f"rewire_on: {self._label} has shape {self.shape} but {var._label} has shape "
                f"{var.shape}; a variable can only be rewired on one of its own shape")
        parent = var._parent
        self._storage = var._storage
        self._parent = parent
        if parent is not None:
            parent._outputs = [weakref.ref(self) if ref() is var else ref
                               for ref in parent._outputs]
        var._parent = None
        bump_epoch()

    def _refresh_shapes(self) -> None:
        """Infer the shapes of this graph's intermediates again after a leaf's
        `reset_shape` (once per reset: a counter says whether one happened since)."""
        if self._shapes_checked == _reshapes[0]:
            return
        order: list[Function] = []
        self.visit(order.append)
        for func in order:
            shape = func.op.infer_shape(tuple(v.shape for v in func._inputs), func.args)
            for out in func.outputs:
                if out.shape != shape:
                    old = out._storage
                    out._storage = Storage(shape, old.dtype)
                    out._storage.produces, out._storage.follows = old.produces, old.follows
        self._shapes_checked = _reshapes[0]

    def apply(self, **kwargs) -> Variable:
        """Set attributes (e.g. ``need_grad=True``) and return self, as nnabla's `apply`."""
        for key, value in kwargs.items():
            setattr(self, key, value)
        return self

    # --- properties ---------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._storage.shape

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        size = 1
        for d in self.shape:
            size *= d
        return size

    def size_from_axis(self, axis: int = -1) -> int:
        """The product of the axes from `axis` on (-1, the default: the whole size)."""
        if axis == -1:
            axis = 0
        elif axis < 0:
            axis += self.ndim
        size = 1
        for d in self.shape[axis:]:
            size *= d
        return size

    @property
    def dtype(self) -> numpy.dtype:
        return self._storage.dtype

    @property
    def need_grad(self) -> bool:
        """Leaves: the flag given (False by default). Outputs of functions: True when any
        input needs a gradient, unless set to False explicitly."""
        if self._need_grad is not None:
            if self._parent is None or not self._need_grad:
                return self._need_grad
        if self._parent is None:
            return False
        return any(v.need_grad for v in self._parent._inputs)

    @need_grad.setter
    def need_grad(self, value) -> None:
        self._need_grad = bool(value)
        bump_epoch()

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = str(value)
        bump_epoch()

    @property
    def parent(self) -> Function | None:
        return self._parent

    @property
    def persistent(self) -> bool:
        """nnabla's flag that keeps an intermediate's values and gradient: here every
        forward() and backward() then keeps its `.d` and `.g` up to date."""
        return self._persistent

    @persistent.setter
    def persistent(self, value) -> None:
        self._persistent = bool(value)
        if self._persistent and self._parent is not None:
            self._observe(gradient=True)

    def _observe(self, gradient: bool = False) -> None:
        """Reading an intermediate: from now on every forward() keeps its `.d` up to date
        and, with `gradient`, every backward() its `.g` (nnabla keeps both)."""
        if self._observed and (self._grad_observed or not gradient):
            return
        self._observed = True
        first_gradient = gradient and not self._grad_observed
        self._grad_observed = self._grad_observed or gradient
        bump_epoch()
        if first_gradient:
            executor.current().recompute_gradient(self)

    @property
    def d(self) -> ArrayData:
        """The values, as a live NumPy array (writes go straight into the variable)."""
        storage = self._storage
        if self._parent is not None:
            self._observe()
            if not storage.computed:
                # computed for this read only, as the forward() that should have computed
                # it did: its masks, and no second update of running statistics
                executor.current().recompute_value(self)
        return storage.data_view

    @d.setter
    def d(self, value) -> None:
        storage = self._storage
        if type(value) is numpy.ndarray and type(storage) is Storage:
            # the loop's `x.d = batch`: an array of the current dtype and the very shape is
            # copied into the existing buffer (as nnabla does, and as `assign` would), with
            # nothing else to decide (`assign` checks, broadcasts and converts the others)
            if storage.pending is not None:
                storage.pending.touch(storage, "data")
            array = storage._data
            if array is not None and value.dtype == storage.dtype \
                    and value.shape == array.shape and value.dtype.kind in "biuf":
                array[...] = value  # (faster than numpy.copyto for small arrays)
                storage.computed = True
                return
        if isinstance(value, NdArray):
            value = value._array()
        self._storage.assign("data", value, f"{self._label}.d")
        self._storage.computed = True

    @property
    def g(self) -> ArrayData:
        """The gradient, as a live NumPy array. `backward()` accumulates into the `.g` of
        leaves and overwrites that of intermediates, as nnabla does."""
        if self._parent is not None:
            self._observe(gradient=True)
        return self._storage.grad_view

    @g.setter
    def g(self, value) -> None:
        if self._parent is not None:
            self._observe(gradient=True)
        if numpy.isscalar(value) and value == 0:
            self._storage.zero_grad()
            return
        self._storage.assign("grad", value, f"{self._label}.g")

    @property
    def _label(self) -> str:
        return self._name or "Variable"

    @property
    def data(self) -> NdArray:
        return NdArray.view(self._storage, "data")

    @data.setter
    def data(self, value) -> None:
        """``x.data = ndarray`` (and ``x.data -= ...``): the values copied in."""
        self.data.data = value

    @classmethod
    def of_array(cls, array: NdArray) -> Variable:
        """A leaf Variable whose values are `array`'s (shared), for F on NdArrays."""
        var = cls(array.shape)
        var._storage = array._storage
        return var

    @property
    def grad(self) -> NdArray:
        if self._parent is not None:
            self._observe(gradient=True)
        return NdArray.view(self._storage, "grad")

    # --- execution ------------------------------------------------------------------------
    def forward(self, clear_buffer=False, clear_no_need_grad=False,
                function_pre_hook=None, function_post_hook=None) -> None:
        """Compute this variable (and the intermediates the user reads) with generated code.

        `clear_buffer` and `clear_no_need_grad` are accepted for compatibility; generated
        code keeps no buffers the user cannot see, so there is nothing to clear.
        """
        _refuse_hooks("forward", function_pre_hook, function_post_hook)
        if self._parent is None:
            return
        self._refresh_shapes()
        executor.current().forward(self)

    def backward(self, grad=1, clear_buffer=False, communicator_callbacks=None,
                 function_pre_hook=None, function_post_hook=None) -> None:
        """Accumulate d(self)/d(leaf), seeded with `grad`, into `.g` of every need_grad leaf.

        `grad=1` seeds every element with 1; `grad=None` uses this variable's `.g`.
        """
        _refuse_hooks("backward", function_pre_hook, function_post_hook)
        if communicator_callbacks is not None:
            raise NotImplementedError("backward(communicator_callbacks=...) is not supported")
        if self._parent is None:
            return
        self._refresh_shapes()
        executor.current().backward(self, grad)

    def visit(self, f) -> None:
        """Call `f(function)` for every function in the graph, inputs before outputs."""
        seen: set[int] = set()
        order: list[Function] = []
        stack = [(self._parent, False)] if self._parent is not None else []
        while stack:
            func, expanded = stack.pop()
            if id(func) in seen:
                continue
            if expanded:
                seen.add(id(func))
                order.append(func)
                continue
            stack.append((func, True))
            for var in reversed(func._inputs):
                if var._parent is not None and id(var._parent) not in seen:
                    stack.append((var._parent, False))
        for func in order:
            f(func)

    def __repr__(self) -> str:
        return f"<Variable({self.shape}, need_grad={self.need_grad}) at {hex(id(self))}>"


def _refuse_hooks(method: str, pre, post) -> None:
    if pre is not None or post is not None:
        raise NotImplementedError(
            f"{method}(function_pre_hook/function_post_hook) is not supported: symcompile "
            "runs one fused generated function, not one nnabla function at a time"
        )
