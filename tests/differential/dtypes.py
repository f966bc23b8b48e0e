"""The dtypes of `.d`, `.data`, `cast`, `from_numpy_array` and of the functions with
integer outputs: each result is reported with its dtype in its name, so a dtype nnabla
would not give fails the comparison as a wrong value does.

nnabla keeps one array per dtype and `.data` is the one of the dtype used last: assigning
an array (not a scalar) or `cast(dtype)` makes its dtype the current one, functions read
their inputs as float32 without changing it, and F.max/F.min/F.sort's indices are
uint64, F.randint's int32.
"""

from _api import F, nn, np, report


def show(case, value) -> None:
    if isinstance(value, nn.NdArray):
        value = value.data
    value = np.asarray(value)
    report(f"{case}: {value.dtype.name}", value)


def ndarray(values, dtype):
    return nn.NdArray.from_numpy_array(np.array(values, dtype=dtype))


def var(values, dtype, **kwargs):
    return nn.Variable.from_numpy_array(np.array(values, dtype=dtype), **kwargs)


CASES = []


def case(function):
    CASES.append(function)
    return function


@case
def from_numpy_array():
    for dtype in ("int64", "int32", "int16", "int8", "uint8", "uint16", "uint32", "uint64",
                  "float64", "float16", "bool"):
        v = var([1, 0], dtype)
        show(f"Variable.from_numpy_array({dtype}).d", v.d)
        show(f"Variable.from_numpy_array({dtype}).data.data", v.data.data)
        show(f"NdArray.from_numpy_array({dtype}).data", ndarray([1, 0], dtype))
    show("from_numpy_array(float32, grad=int64).g",
         var([1.0, 2.0], "float32", grad=np.array([3, 4], dtype=np.int64)).g)


@case
def assignment():
    show("new Variable .d", nn.Variable((3,)).d)
    for label, value in [("int64 array", np.array([1, 2, 3], dtype=np.int64)),
                         ("uint8 array", np.array([1, 2, 3], dtype=np.uint8)),
                         ("bool array", np.array([True, False, True])),
                         ("float64 array", np.array([1.5, 2.5, 3.5])),
                         ("list of ints", [1, 2, 3]), ("tuple of ints", (1, 2, 3)),
                         ("list of floats", [1.5, 2, 3]), ("int 5", 5), ("float 2.5", 2.5),
                         ("numpy float64 scalar", np.float64(2.5)),
                         ("0-d int64 array", np.array(3)), ("0-d float64 array", np.array(3.5))]:
        v = nn.Variable((3,))
        v.d = value
        show(f"Variable((3,)).d = {label}", v.d)
    v = nn.Variable((2, 3))
    v.d = np.array([1, 2, 3], dtype=np.int64)
    show("Variable((2, 3)).d = int64 (3,) broadcast", v.d)
    v = nn.Variable((3,))
    v.d[...] = np.array([1, 2, 3], dtype=np.int64)
    show("Variable((3,)).d[...] = int64 (in place)", v.d)
    v = nn.Variable((3,))
    v.data.fill(3)
    show("Variable((3,)).data.fill(3)", v.d)
    v = nn.Variable((3,))
    v.g = np.array([1, 2, 3], dtype=np.int64)
    show("Variable((3,)).g = int64", v.g)


@case
def int_variable():
    v = var([1, 2, 3], "int64")
    v.d = 5
    show("int64 var .d = 5", v.d)
    v.d = 2.7
    show("int64 var .d = 2.7", v.d)
    v.d[...] = 7.9
    show("int64 var .d[...] = 7.9", v.d)
    v.data.zero()
    show("int64 var .data.zero()", v.d)
    v.data.fill(4.5)
    show("int64 var .data.fill(4.5)", v.d)
    v.d = np.array([1.5, 2.5, 3.5], dtype=np.float32)
    show("int64 var .d = float32 array", v.d)
    v = var([1, 2, 3], "int64")
    v.d = [7.5, 8.5, 9.5]
    show("int64 var .d = list of floats", v.d)
    v = var([1, 2, 3], "int64")
    v.d = np.array(3.5)
    show("int64 var .d = 0-d float64", v.d)
    v.data.fill(4.5)
    show("then .data.fill(4.5)", v.d)


@case
def cast():
    v = var([1, 2, 3], "int64")
    v.d = np.array([1.5, 2.5, 3.5])
    show("int64 var .d = float64 array", v.d)
    show("then .data.cast(int32) returns", v.data.cast(np.int32))
    show("then .d", v.d)
    v.d[...] = 7.9
    show("then .d[...] = 7.9", v.d)
    v = var([1, 2, 3], "int64")
    c = v.data.cast(np.float32)
    c[0] = 9.5
    show("int64 var cast(float32), written [0] = 9.5: .d", v.d)
    show("cast(float32) again", v.data.cast(np.float32))
    show("cast(int64) back", v.data.cast(np.int64))
    v = var([1.5, 2.5], "float32")
    v.data.cast(np.int32)
    show("float32 var cast(int32) then cast(float32)", v.data.cast(np.float32))
    v = nn.Variable((3,))
    v.data.cast(np.int32)
    show("new Variable .data.cast(int32) then .d", v.d)
    a = ndarray([1, 2], "int64")
    c = a.cast(np.float32)
    show("NdArray int64 .cast(float32) returns", c)
    c[1] = 5.5
    show("then written [1] = 5.5: .data", a.data)
    show("NdArray .dtype after cast", np.zeros(0, a.dtype))


@case
def ndarray_assignment():
    v = nn.Variable((2,))
    v.data = ndarray([1, 2], "int64")
    show("Variable.data = NdArray int64", v.d)
    v = nn.Variable((2,))
    v.data.data = np.array([1, 2], dtype=np.int64)
    show("Variable.data.data = int64", v.d)
    a = nn.NdArray((2,))
    show("NdArray((2,)).data", a.data)
    a.data = np.array([1, 2], dtype=np.int64)
    show("NdArray((2,)).data = int64", a.data)
    a = ndarray([1, 2], "int64")
    a.data = np.array([1.5, 2.5])
    show("NdArray int64 .data = float64", a.data)
    a = ndarray([1.5, 2.5], "float32")
    a.copy_from(ndarray([1, 2], "int64"))
    show("NdArray float32 .copy_from(int64)", a.data)


@case
def ndarray_arithmetic():
    a = ndarray([1, 2], "int64")
    show("NdArray int64 + NdArray int64", a + a)
    show("NdArray int64 + 1", a + 1)
    show("NdArray int64 * 2.5", a * 2.5)
    show("-NdArray int64", -a)
    show("NdArray float64 + 1", ndarray([1, 2], "float64") + 1)
    a += 1
    show("NdArray int64 += 1", a)
    a = ndarray([1, 2], "int64")
    a *= 1.5
    show("NdArray int64 *= 1.5", a)


@case
def graphs():
    x = var([[1, 2], [3, 4]], "int64")
    y = F.mul_scalar(x, 2.0)
    y.forward()
    show("F.mul_scalar(int64 x, 2).d", y.d)
    show("int64 x.d after forward", x.d)
    x.d = np.array([[5, 6], [7, 8]], dtype=np.int64)
    y.forward()
    show("x.d = int64 again: y.d", y.d)
    show("x.d", x.d)
    x = nn.Variable((2, 2))
    x.d = np.random.RandomState(0).randn(2, 2)
    y = F.add_scalar(x, 1.0)
    y.forward()
    show("x.d = float64 randn: F.add_scalar(x, 1).d", y.d)
    show("float64 x.d after forward", x.d)


@case
def labels():
    logits = var([[1.0, 2.0, 3.0], [1.0, 0.0, 0.0]], "float32", need_grad=True)
    t = nn.Variable((2, 1))
    t.d = np.array([[2], [0]], dtype=np.int64)
    loss = F.softmax_cross_entropy(logits, t)
    loss.forward()
    show("softmax_cross_entropy(x, int64 label)", loss.d)
    show("int64 label after forward", t.d)
    logits.grad.zero()
    loss.backward()
    show("int64 label after backward", t.d)
    show("logits.g", logits.g)
    t = var([[2], [0]], "float32")
    loss = F.mean(F.softmax_cross_entropy(logits, t))
    loss.forward()
    show("mean softmax_cross_entropy(x, float32 label)", loss.d)
    show("float32 label after forward", t.d)
    target = var([[0], [0]], "int64")
    error = F.top_n_error(logits, target, n=1)
    error.forward()
    show("top_n_error(x, int64 target)", error.d)
    for dtype in ("int32", "int64"):
        ids = var([[0], [2]], dtype)
        hot = F.one_hot(ids, (3,))
        hot.forward()
        show(f"one_hot({dtype} ids)", hot.d)
        show(f"{dtype} ids after forward", ids.d)


X = np.array([[3.0, 1.0, 2.0], [0.5, 4.0, -1.0]], dtype=np.float32)


@case
def integer_outputs():
    def run(label, build):
        x = nn.Variable.from_numpy_array(X)
        out = build(x)
        for k, y in enumerate(out if isinstance(out, (tuple, list)) else [out]):
            y.forward()
            show(f"{label}[{k}]", y.d)

    run("F.max(only_index)", lambda x: F.max(x, axis=1, only_index=True))
    run("F.max(with_index)", lambda x: F.max(x, axis=1, with_index=True))
    run("F.min(only_index)", lambda x: F.min(x, axis=1, only_index=True))
    run("F.min(with_index)", lambda x: F.min(x, axis=1, with_index=True))
    run("F.sort(only_index)", lambda x: F.sort(x, axis=1, only_index=True))
    run("F.sort(with_index)", lambda x: F.sort(x, axis=1, with_index=True))
    run("F.top_k_data(with_index)", lambda x: F.top_k_data(x, 2, with_index=True))
    run("F.max(only_index) + 1", lambda x: F.max(x, axis=1, only_index=True) + 1)
    run("F.one_hot(F.max(only_index))",
        lambda x: F.one_hot(F.reshape(F.max(x, axis=1, only_index=True), (2, 1)), (3,)))
    run("F.identity(int64)", lambda x: F.identity(var([1, 2], "int64")))
    run("F.reshape(int64)", lambda x: F.reshape(var([1, 2], "int64"), (2, 1)))
    run("F.transpose(int64)", lambda x: F.transpose(var([[1, 2]], "int64"), (1, 0)))
    run("F.add_scalar(int64, 0.5)", lambda x: F.add_scalar(var([1, 2], "int64"), 0.5))
    run("F.confusion_matrix", lambda x: F.confusion_matrix(x, var([[2], [1]], "float32")))
    run("F.shape", lambda x: F.shape(x))
    r = F.randint(0, 10, shape=(4,), seed=1)
    r.forward()
    show("F.randint in [0, 10)", (r.d >= 0) & (r.d < 10) & (r.d == np.round(r.d)))
    report(f"F.randint dtype: {r.d.dtype.name}", [])


@case
def imperative():
    a = ndarray([[1, 2]], "int64")
    show("F.relu(NdArray int64)", F.relu(a))
    show("NdArray int64 after F.relu", a)
    show("F.identity(NdArray int64)", F.identity(a))
    show("F.max(NdArray, only_index)",
         F.max(nn.NdArray.from_numpy_array(X), axis=1, only_index=True))
    with nn.auto_forward():
        x = nn.Variable.from_numpy_array(X)
        index = F.max(x, axis=1, only_index=True)
        show("auto_forward F.max(only_index)", index.d)
        show("auto_forward F.sort(only_index)", F.sort(x, only_index=True).d)
        show("auto_forward F.max(only_index) + 1", (index + 1).d)
        r = F.randint(0, 5, shape=(3,), seed=3)
        report(f"auto_forward F.randint dtype: {r.d.dtype.name}", [])


@case
def gradients():
    v = var([1.0, 2.0], "float32", need_grad=True)
    v.g = np.array([1, 1], dtype=np.int64)
    show("float32 var .g = int64", v.g)
    y = F.mul_scalar(v, 3.0)
    y.forward()
    y.backward()
    show("then backward (accumulates)", v.g)
    v = var([1, 2], "int64", need_grad=True)
    y = F.mul_scalar(v, 3.0)
    y.forward()
    v.grad.zero()
    y.backward()
    show("int64 var need_grad: .g after backward", v.g)
    show("int64 var need_grad: .d after backward", v.d)
    v = var([1.0, 2.0], "float32", need_grad=True)
    y = F.mul_scalar(v, 3.0)
    y.forward()
    y.g = np.array([1, 2], dtype=np.int64)
    v.grad.zero()
    y.backward(grad=None)
    show("y.g = int64, backward(grad=None): v.g", v.g)
    show("y.g", y.g)


for function in CASES:
    try:
        function()
    except Exception as error:  # (reported, so that the other cases still run)
        report(f"{function.__name__} raised {type(error).__name__}", [])
