"""Python's operators on Variables, mapped to F.* the way nnabla maps them.

They live here, not in `variable.py`, because F builds Variables: the class stays below
the functions, and this module, which needs both, attaches the operators to it.
"""

from __future__ import annotations

import numbers

from symcompile.frontend import functions as F
from symcompile.frontend.variable import ReshapedStorage, Variable


def positive(self):
    return self


def negative(self):
    return F.mul_scalar(self, -1)


def add(self, other):
    if isinstance(other, Variable):
        return F.add2(self, other)
    return F.add_scalar(self, other)


def reflected_add(self, other):
    return F.add_scalar(self, other)


def subtract(self, other):
    if isinstance(other, Variable):
        return F.sub2(self, other)
    return F.add_scalar(self, -other)


def reflected_subtract(self, other):
    return F.r_sub_scalar(self, other)


def multiply(self, other):
    if isinstance(other, Variable):
        return F.mul2(self, other)
    return F.mul_scalar(self, other)


def reflected_multiply(self, other):
    return F.mul_scalar(self, other)


def divide(self, other):
    if isinstance(other, Variable):
        return F.div2(self, other)
    return F.mul_scalar(self, 1.0 / other)


def reflected_divide(self, other):
    return F.r_div_scalar(self, other)


def power(self, other, modulo=None):
    if modulo is not None:
        return NotImplemented
    if isinstance(other, Variable):
        return F.pow2(self, other)
    return F.pow_scalar(self, other)


def reflected_power(self, other):
    return F.r_pow_scalar(self, other)


def matmul(self, other):
    """nnabla's ``@``: 2-D @ 2-D is F.affine; 1-D operands are promoted as in NumPy;
    higher ranks are F.batch_matmul (the smaller operand gets leading axes of 1)."""
    if not isinstance(other, Variable):
        return NotImplemented
    if self.ndim == 0 or other.ndim == 0:
        raise ValueError(f"x @ y: operands must have at least one axis, got shapes "
                         f"{self.shape} and {other.shape}")
    if self.ndim == 1 and other.ndim == 1:
        return F.sum(F.mul2(self, other))
    if self.ndim <= 2 and other.ndim <= 2:
        left = F.reshape(self, (1, -1)) if self.ndim == 1 else self
        right = F.reshape(other, (-1, 1)) if other.ndim == 1 else other
        out = F.affine(left, right)
        if self.ndim == 1:
            return F.reshape(out, (out.shape[-1],))
        if other.ndim == 1:
            return F.reshape(out, out.shape[:-1])
        return out
    left = F.reshape(self, (1,) * (other.ndim - self.ndim) + self.shape) \
        if self.ndim < other.ndim else self
    right = other
    if other.ndim == 1:
        right = F.reshape(other, (1,) * (self.ndim - 2) + (other.shape[0], 1))
    elif other.ndim < self.ndim:
        right = F.reshape(other, (1,) * (self.ndim - other.ndim) + other.shape)
    out = F.batch_matmul(left, right)
    if self.ndim == 1:  # NumPy drops the axis it prepended to a vector
        return F.reshape(out, out.shape[:-2] + out.shape[-1:])
    return F.reshape(out, out.shape[:-1]) if other.ndim == 1 else out


def getitem(self, key):
    """Basic indexing as in NumPy (ints, slices, ``...``, ``None``), as nnabla does it: a
    slice of the selected region (F.slice), reshaped to drop the int-indexed axes and
    insert the new ones. Arrays as indices (advanced indexing) are refused."""
    items = list(key) if isinstance(key, tuple) else [key]
    if sum(item is Ellipsis for item in items) > 1:
        raise IndexError(f"x[{key!r}]: an index can only have a single ellipsis ('...')")
    for item in items:
        if not (item is None or item is Ellipsis or isinstance(item, slice)
                or (isinstance(item, numbers.Integral) and not isinstance(item, bool))):
            raise IndexError(
                f"x[...] on a Variable of shape {self.shape}: only ints, slices, ... and None "
                f"index a Variable (got {item!r}); gather with F.gather or F.one_hot instead")
    used = sum(1 for item in items if item is not None and item is not Ellipsis)
    if used > self.ndim:
        raise IndexError(f"x[{key!r}]: too many indices for a Variable of shape {self.shape} "
                         f"({used} for {self.ndim} axes)")
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items[at:at + 1] = [slice(None)] * (self.ndim - used)
    else:
        items += [slice(None)] * (self.ndim - used)
    slices, shape, axis = [], [], 0
    for item in items:
        if item is None:
            shape.append(1)
            continue
        n = self.shape[axis]
        if isinstance(item, slice):
            slices.append(item)
            shape.append(len(range(*item.indices(n))))
        else:
            if not -n <= item < n:
                raise IndexError(f"x[...]: index {item} is out of range for axis {axis} of "
                                 f"length {n} (shape {self.shape})")
            slices.append(slice(item % n, item % n + 1))
        axis += 1
    out = F._sliced(self, slices)
    return F.reshape(out, tuple(shape)) if tuple(shape) != out.shape else out


def reshape(self, shape, unlink=False):
    """nnabla's ``Variable.reshape``: this variable reshaped (F.reshape, so gradients flow
    through it); with ``unlink=True`` a new leaf whose arrays are views of this one's in
    the new shape (writing one writes the other, as in nnabla), cut from the graph."""
    if not unlink:
        return F.reshape(self, shape)
    target = F._reshape_target(self.shape, shape)
    if self.parent is not None:
        _ = self.d  # an intermediate's values, computed if they are not
    view = Variable(target, need_grad=self.need_grad)
    view._storage = ReshapedStorage(self._storage, target)
    return view


OPERATORS = {
    "__pos__": positive,
    "__neg__": negative,
    "__add__": add,
    "__radd__": reflected_add,
    "__sub__": subtract,
    "__rsub__": reflected_subtract,
    "__mul__": multiply,
    "__rmul__": reflected_multiply,
    "__truediv__": divide,
    "__rtruediv__": reflected_divide,
    "__pow__": power,
    "__rpow__": reflected_power,
    "__matmul__": matmul,
    "__getitem__": getitem,
    "reshape": reshape,
}
for _name, _method in OPERATORS.items():
    setattr(Variable, _name, _method)
