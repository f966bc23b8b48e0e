"""User-given names never escape their literal, and long names compile.

Variable names and parameter keys reach a generated module only as whole ``repr()``
literals in its INPUTS / PARAMETERS / STATE constants, or inside sanitised ``#``
comments; every identifier derived from them is a short ASCII identifier. A seeded fuzz
packs thousands of hostile names (quotes, backslashes, line breaks of every kind, NULs,
unicode, emoji, Python payloads that would create a marker file if they ever ran) into a
few graphs, compiles them and runs the modules in a fresh process.
"""

from __future__ import annotations

import ast
import json
import keyword
import os
import random
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import symcompile as nn
import symcompile.functions as F
import symcompile.parametric_functions as PF
import symcompile.solvers as S

SEED = 20240611
GRAPHS = 10  # compiled graphs in the fuzz
INPUTS_PER_GRAPH = 100
PARAMETERS_PER_GRAPH = 100
MAX_IDENTIFIER = 48
CONSTANT_NAMES = ("INPUTS", "PARAMETERS", "STATE")

# --- hostile names ----------------------------------------------------------------------

QUOTES = "'\"\\"
BREAKS = "\n\r\t\x00\x0c\x0b\x1c\x1d\x1e\x85\u2028\u2029"
CONTROLS = "\x1b\x7f\u202e\u2066\ud800\udfff"  # ANSI escape, bidi overrides, lone surrogates
PUNCTUATION = " #/:{}()[],;.=+-*%$@!?`~<>|&^"
UNICODE = ["α", "β", "λ", "中", "文", "é", "e\u0301", "ñ", "Ω", "ß", "ﬁ", "\u00a0", "\u200b",
           "\ufeff"]
EMOJI = ["😀", "🐍", "🔥", "👍🏽", "🇯🇵", "👩‍💻"]
ASCII = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
# Names the generated code itself uses: a user name must never shadow them.
SHADOWS = ["numpy", "np", "os", "DTYPE", "INPUTS", "PARAMETERS", "STATE", "GRADIENTS", "lr",
           "alpha", "beta1", "beta2", "eps", "step", "saved", "g_loss", "_t0", "_t1", "loss",
           "forward", "gradient", "backward", "sgd_step", "adam_step", "refuse_argument",
           "class_labels", "init_state", "__import__", "__builtins__", "self", "None", "True",
           "class", "lambda", "print", "open", "exec", "x", "g_x", "1", "_", "__"]


MARKER = "MARKER"  # created, in the working directory, by any payload that runs
PAYLOADS = [
    f"'); open({MARKER!r}, 'w'); ('",
    f'"); open({MARKER!r}, "w"); ("',
    f"\\'); __import__('os').system('touch {MARKER}') #",
    f"\\\"); __import__('os').system('touch {MARKER}') #",
    f"'''); open({MARKER!r}, 'w') #",
    f'"""); open({MARKER!r}, "w") #',
    f"\nopen({MARKER!r}, 'w')\n",  # a line of its own, at module level or in a function
    f"\n    open({MARKER!r}, 'w')\n",
    f"\r    open({MARKER!r}, 'w')\r",
    f"\r\n        open({MARKER!r}, 'w')  # \r\n",
    f"\u2028    open({MARKER!r}, 'w')\u2028",
    f"\x0c\n    __import__('os').system('touch {MARKER}')\n",
    f"{{open({MARKER!r}, 'w')}}",
    f"' + open({MARKER!r}, 'w').name + '",
    f"\\N{{{MARKER}}}",
    '"""', "'''", "\\", "\\'", '\\"', "\\\\'", "%s%r{0}{x!r}",
]


def hostile_name(rnd: random.Random, length: int) -> str:
    """A name of exactly `length` characters drawn from hostile alphabets and payloads."""
    pieces: list[str] = []
    size = 0
    while size < length:
        roll = rnd.random()
        if roll < 0.12:
            piece = rnd.choice(PAYLOADS)
        elif roll < 0.27:
            piece = rnd.choice(QUOTES)
        elif roll < 0.38:
            piece = rnd.choice(BREAKS)
        elif roll < 0.42:
            piece = rnd.choice(CONTROLS)
        elif roll < 0.55:
            piece = rnd.choice(PUNCTUATION)
        elif roll < 0.67:
            piece = rnd.choice(UNICODE)
        elif roll < 0.74:
            piece = rnd.choice(EMOJI)
        else:
            piece = "".join(rnd.choice(ASCII) for _ in range(rnd.randint(1, 12)))
        pieces.append(piece)
        size += len(piece)
    return "".join(pieces)[:length]


def name_pool(rnd: random.Random, count: int) -> list[str]:
    """`count` distinct hostile names: each length from 70 to 110 (around the generated
    code's width of 100) many times, the rest of lengths 1 to 200, plus the names the
    generated code uses itself."""
    lengths = [n for n in range(70, 111) for _ in range(count // 100)]
    names: list[str] = []
    seen: set[str] = set()

    def add(name: str) -> None:
        if name and name not in seen:
            seen.add(name)
            names.append(name)

    for name in SHADOWS + PAYLOADS:
        add(name)
    for length in lengths:
        add(hostile_name(rnd, length))
    while len(names) < count:
        add(hostile_name(rnd, rnd.randint(1, 200)))
    rnd.shuffle(names)
    return names


def as_parameter_key(name: str) -> str:
    """`name` with no empty scope: a '/' that would open one (leading, trailing, doubled)
    becomes '-', so that the registry key is exactly the name given."""
    out: list[str] = []
    for i, char in enumerate(name):
        if char == "/" and (not out or out[-1] == "/" or i == len(name) - 1):
            char = "-"
        out.append(char)
    return "".join(out)


def scopes_of(key: str) -> set[str]:
    parts = key.split("/")
    return {"/".join(parts[:i]) for i in range(1, len(parts))}


# --- building, compiling and reading the fuzz graphs ------------------------------------

@dataclass
class FuzzGraph:
    """One graph of named inputs x_i (2, 1) and parameters w_i (1, 1):
    loss = mean(sum_i x_i * w_i)."""

    inputs: dict[str, np.ndarray]  # raw variable name -> value
    parameters: dict[str, np.ndarray]  # raw parameter key -> value
    pairs: list[tuple[str, str]]  # (input name, parameter key) multiplied together
    solver: str
    loss: object = None
    params: dict = field(default_factory=dict)  # key -> parameter Variable

    @property
    def expected_loss(self) -> float:
        total = sum(self.inputs[x].astype(np.float64) * self.parameters[w].astype(np.float64)
                    for x, w in self.pairs)
        return float(np.mean(total))

    def expected_gradient(self, key: str) -> float:
        x = next(x for x, w in self.pairs if w == key)
        return float(np.mean(self.inputs[x].astype(np.float64)))


def build_graph(inputs: list[str], keys: list[str], rnd: np.random.Generator,
                solver: str, intermediate_names: list[str]) -> FuzzGraph:
    nn.clear_parameters()
    graph = FuzzGraph({}, {}, [], solver)
    terms = []
    for i, (name, key) in enumerate(zip(inputs, keys, strict=True)):
        x = nn.Variable((2, 1))
        x.name = name
        x.d = rnd.uniform(-1, 1, size=(2, 1))
        w = nn.parameter.get_parameter_or_create(key, (1, 1))
        w.d = rnd.uniform(-1, 1, size=(1, 1))
        graph.inputs[name] = x.d.copy()
        graph.parameters[key] = w.d.copy()
        graph.pairs.append((name, key))
        graph.params[key] = w
        term = F.mul2(x, w)
        if i % 10 == 0:  # a few hostile intermediate names too (they reach comments only)
            term.name = intermediate_names[(i // 10) % len(intermediate_names)]
        terms.append(term)
    total = terms[0]
    for term in terms[1:]:
        total = F.add2(total, term)
    graph.loss = F.mean(total)
    assert sorted(nn.get_parameters()) == sorted(keys)  # the keys are the names given
    return graph


def split_into_graphs(names, graphs: int, inputs: int, parameters: int):
    """(input names, parameter keys) per graph, drawn from the iterator `names`: all
    distinct, and no parameter key is also a scope of another key in its graph."""
    used: set[str] = set()
    plan = []
    for _ in range(graphs):
        xs: list[str] = []
        while len(xs) < inputs:
            name = next(names)
            if name not in used:
                used.add(name)
                xs.append(name)
        keys: list[str] = []
        scopes: set[str] = set()
        while len(keys) < parameters:
            key = as_parameter_key(next(names))
            if key in used or key in scopes or scopes_of(key) & set(keys):
                continue
            used.add(key)
            keys.append(key)
            scopes |= scopes_of(key)
        plan.append((xs, keys))
    return plan


def module_constants(tree: ast.Module) -> dict[str, object]:
    """The INPUTS, PARAMETERS and STATE literals as the parsed text holds them."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name) \
                and node.targets[0].id in CONSTANT_NAMES:
            found[node.targets[0].id] = ast.literal_eval(node.value)
    return found


def short_identifier(name: str) -> bool:
    """An ASCII identifier of at most 48 characters, plus a ``_N`` uniqueness suffix."""
    if not (name.isascii() and name.isidentifier() and not keyword.iskeyword(name)):
        return False
    return len(name) <= MAX_IDENTIFIER or re.fullmatch(
        rf".{{1,{MAX_IDENTIFIER}}}_\d+", name) is not None


@dataclass
class Fuzz:
    root: Path  # the working directory while compiling and running the modules
    names: list[str]
    graphs: list[FuzzGraph]
    results: list  # CompileResult per graph
    _trees: dict = field(default_factory=dict)

    @property
    def marker(self) -> Path:
        return self.root / MARKER

    def tree(self, i: int) -> ast.Module:
        """The parsed text of module i (parsed once: the modules are large)."""
        if i not in self._trees:
            self._trees[i] = ast.parse(self.results[i].path.read_text(encoding="utf-8"))
        return self._trees[i]


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory) -> Fuzz:
    """Compile GRAPHS graphs of 200 hostile names each (alternately adam and sgd)."""
    root = tmp_path_factory.mktemp("fuzz")
    rnd = random.Random(SEED)
    total = GRAPHS * (INPUTS_PER_GRAPH + PARAMETERS_PER_GRAPH)
    pool = name_pool(rnd, total + 300)  # spares: a few clash as parameter keys
    intermediate_names = name_pool(rnd, 100)
    values = np.random.default_rng(SEED)
    graphs, results = [], []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SYMCOMPILE_CACHE_DIR", str(root / "cache"))
        patch.chdir(root)
        plan = split_into_graphs(iter(pool), GRAPHS, INPUTS_PER_GRAPH, PARAMETERS_PER_GRAPH)
        for i, (xs, keys) in enumerate(plan):
            solver = "adam" if i % 2 == 0 else "sgd"
            graph = build_graph(xs, keys, values, solver, intermediate_names)
            results.append(nn.compile(graph.loss, name=f"fuzz{i}", output_dir=root / "gen",
                                      solver=solver))
            graphs.append(graph)
            assert not (root / MARKER).exists(), "a name ran as code while compiling"
    nn.clear_parameters()
    given = [n for g in graphs for n in [*g.inputs, *g.parameters]]
    assert len(set(given)) == len(given) >= 2000
    return Fuzz(root, given, graphs, results)


# --- the fuzz ---------------------------------------------------------------------------

def test_fuzz_names_are_hostile_enough(fuzz):
    """The fuzz itself: distinct names of every length 70..110, with every kind of
    dangerous character and whole payloads."""
    lengths = {len(n) for n in fuzz.names}
    assert set(range(70, 111)) <= lengths and min(lengths) == 1 and max(lengths) == 200
    text = "".join(fuzz.names)
    for char in [*QUOTES, *BREAKS, *CONTROLS, "#", "/", ":", "{", "}", "(", ")", " ", "α",
                 "中", "é", "\u0301", "😀"]:
        assert char in text, repr(char)
    for payload in PAYLOADS[:15]:
        assert any(payload in n for n in fuzz.names if n != payload), payload


def test_fuzz_modules_parse_and_hold_only_printable_text(fuzz):
    for i, result in enumerate(fuzz.results):
        text = result.path.read_text(encoding="utf-8")
        assert text == result.source
        assert fuzz.tree(i).body
        lines = text.split("\n")
        assert lines == text.splitlines() + [""]  # no line break Python reads differently
        bad = [line for line in lines if not line.isprintable()]  # \r, \x00, \u2028, ...
        assert not bad, f"{result.path.name}: unescaped characters in {bad[:3]!r}"


def test_fuzz_constants_hold_exactly_the_raw_names(fuzz):
    for i, (graph, result) in enumerate(zip(fuzz.graphs, fuzz.results, strict=True)):
        constants = module_constants(fuzz.tree(i))
        inputs, parameters, state = (constants[k] for k in CONSTANT_NAMES)
        assert sorted(spec["name"] for spec in inputs.values()) == sorted(graph.inputs)
        assert sorted(parameters) == sorted(graph.parameters)
        # the imported module agrees with its text
        assert inputs == result.module.INPUTS and parameters == result.module.PARAMETERS
        assert state == result.module.STATE
        if graph.solver == "adam":
            assert sorted(spec["parameter"] for spec in state.values()) == sorted(
                [k for k in graph.parameters for _ in ("mean", "var")])
        else:
            assert state == {}


def test_fuzz_argument_identifiers_are_short_ascii_identifiers(fuzz):
    for i, result in enumerate(fuzz.results):
        constants = module_constants(fuzz.tree(i))
        identifiers = [*constants["INPUTS"],
                       *(spec["argument"] for spec in constants["PARAMETERS"].values()),
                       *constants["STATE"]]
        assert len(set(identifiers)) == len(identifiers)
        bad = [ident for ident in identifiers if not short_identifier(ident)]
        assert not bad, f"{result.path.name}: {bad}"
        arguments = {a.arg for f in fuzz.tree(i).body if isinstance(f, ast.FunctionDef)
                     for a in f.args.args}
        assert set(identifiers) <= arguments
        assert all(short_identifier(a) for a in arguments)


def test_fuzz_names_appear_only_in_the_constants_and_in_comments(fuzz):
    """Outside INPUTS / PARAMETERS / STATE no string in the code is a raw name, and every
    name the code reads, binds or calls is ASCII (comments are checked for unescaped
    characters above)."""
    for i, (graph, result) in enumerate(zip(fuzz.graphs, fuzz.results, strict=True)):
        # (names of a few characters, such as ":", could equal a piece of an f-string)
        raw = {n for n in [*graph.inputs, *graph.parameters]
               if not n.isidentifier() and len(n) >= 4}
        strings, names = set(), set()
        for function in fuzz.tree(i).body:
            if not isinstance(function, ast.FunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    strings.add(node.value)
                elif isinstance(node, ast.Name):
                    names.add(node.id)
                elif isinstance(node, ast.Attribute):
                    names.add(node.attr)
                elif isinstance(node, (ast.arg, ast.FunctionDef)):
                    names.add(node.arg if isinstance(node, ast.arg) else node.name)
        leaked = raw & strings
        assert not leaked, f"{result.path.name}: names as strings in code: {sorted(leaked)!r}"
        assert all(n.isascii() for n in names), sorted(n for n in names if not n.isascii())


RUN_MODULES = textwrap.dedent("""
    import ast, json, runpy, sys
    import numpy

    # a Python literal, not JSON: JSON would join a lone surrogate pair into one character
    jobs = ast.literal_eval(open(sys.argv[1], encoding="ascii").read())
    report = []
    for job in jobs:
        m = runpy.run_path(job["path"])
        f32 = lambda v: numpy.array(v, dtype=numpy.float32)
        inputs = {key: f32(job["inputs"][spec["name"]]) for key, spec in m["INPUTS"].items()}
        params = {spec["argument"]: f32(job["parameters"][key])
                  for key, spec in m["PARAMETERS"].items()}
        loss = m["forward"](**inputs, **params)
        loss_again, *grads = m["gradient"](**inputs, **params)
        if m["SOLVER"] == "adam":
            m["adam_step"](**inputs, **params, **m["init_state"](), step=1)
        else:
            m["sgd_step"](**inputs, **params, lr=0.5)
        report.append({
            "loss": float(loss), "loss_again": float(loss_again),
            "gradients": {g: float(v.item()) for g, v in zip(m["GRADIENTS"], grads)},
            "updated": {a: float(v.item()) for a, v in params.items()},
        })
    json.dump(report, sys.stdout)
""")


def test_fuzz_modules_run_in_a_fresh_process_and_no_payload_runs(fuzz, tmp_path):
    jobs = [{"path": str(result.path),
             "inputs": {k: v.tolist() for k, v in graph.inputs.items()},
             "parameters": {k: v.tolist() for k, v in graph.parameters.items()}}
            for graph, result in zip(fuzz.graphs, fuzz.results, strict=True)]
    (tmp_path / "jobs.txt").write_text(ascii(jobs), encoding="ascii")
    done = subprocess.run([sys.executable, "-I", "-c", RUN_MODULES, str(tmp_path / "jobs.txt")],
                          capture_output=True, text=True, cwd=fuzz.root, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not fuzz.marker.exists(), "a name ran as code when the module was run"
    for graph, result, out in zip(fuzz.graphs, fuzz.results, json.loads(done.stdout),
                                  strict=True):
        assert out["loss"] == pytest.approx(graph.expected_loss, rel=1e-4, abs=1e-5)
        assert out["loss_again"] == pytest.approx(out["loss"], rel=1e-6, abs=1e-7)
        for key, spec in result.module.PARAMETERS.items():
            argument = spec["argument"]
            gradient = out["gradients"][argument]
            assert gradient == pytest.approx(graph.expected_gradient(key), rel=1e-4,
                                             abs=1e-6), key
            before = float(graph.parameters[key].item())
            if graph.solver == "sgd":
                assert out["updated"][argument] == pytest.approx(before - 0.5 * gradient,
                                                                 rel=1e-5, abs=1e-6), key
            elif abs(gradient) > 1e-3:  # adam's first step: -alpha * sign(g)
                assert out["updated"][argument] == pytest.approx(
                    before - 0.001 * np.sign(gradient), abs=1e-5), key


def test_runtime_path_with_hostile_names(tmp_path, monkeypatch):
    """forward()/backward()/update() without compile(): modules land in the private
    cache; the payloads never run and the numbers are right."""
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / MARKER
    rnd = random.Random(SEED + 1)
    pool = name_pool(rnd, 120)
    intermediate_names = name_pool(rnd, 20)
    values = np.random.default_rng(1)
    for xs, keys in split_into_graphs(iter(pool), 2, 20, 20):
        graph = build_graph(xs, keys, values, "sgd", intermediate_names)
        graph.loss.name = xs[0]  # the root's name names the cached module
        graph.loss.forward()
        assert float(graph.loss.d) == pytest.approx(graph.expected_loss, rel=1e-4, abs=1e-5)
        solver = S.Sgd(lr=0.5)
        solver.set_parameters(nn.get_parameters())
        solver.zero_grad()
        graph.loss.backward()
        for key in keys:
            expected = graph.expected_gradient(key)
            assert float(graph.params[key].g) == pytest.approx(expected, rel=1e-4, abs=1e-6)
        solver.update()
        for key in keys:
            assert float(graph.params[key].d) == pytest.approx(
                graph.parameters[key].item() - 0.5 * graph.expected_gradient(key),
                rel=1e-4, abs=1e-6)
        assert not marker.exists(), "a name ran as code in the runtime path"
    assert list((tmp_path / "cache").glob("*.py"))


# --- identifiers ------------------------------------------------------------------------

def test_composed_and_decomposed_accents_stay_distinct_parameters(tmp_path):
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    x = nn.Variable((2, 1))
    x.name = "x"
    x.d = np.float32([[1.0], [3.0]])  # (float32: passed to the module as x.d)
    w1 = nn.parameter.get_parameter_or_create(composed, (1, 1))
    w2 = nn.parameter.get_parameter_or_create(decomposed, (1, 1))
    w1.d, w2.d = 2.0, 5.0
    loss = F.mean(F.add2(F.mul2(x, w1), F.mul2(F.mul2(x, x), w2)))
    m = nn.compile(loss, name="accents", output_dir=tmp_path).module
    assert list(m.PARAMETERS) == [composed, decomposed]
    first, second = (m.PARAMETERS[k]["argument"] for k in (composed, decomposed))
    assert first != second and short_identifier(first) and short_identifier(second)
    loss_value, *grads = m.gradient(x=x.d.copy(), **{first: w1.d.copy(), second: w2.d.copy()})
    assert float(loss_value) == pytest.approx(np.mean([2 + 5, 6 + 45]))
    by_argument = dict(zip(m.GRADIENTS, grads, strict=True))
    assert float(by_argument[first].item()) == pytest.approx(2.0)  # mean(x)
    assert float(by_argument[second].item()) == pytest.approx(5.0)  # mean(x**2)


@pytest.mark.parametrize("name", ["1" + "a" * 47, "9" * 48, "2024_" + "layer_" * 8 + "W"])
def test_identifier_of_a_name_starting_with_a_digit_is_at_most_48_characters(name):
    from symcompile.ir.naming import identifier

    ident = identifier(name)
    assert ident.isidentifier() and ident.isascii()
    assert len(ident) <= MAX_IDENTIFIER, (ident, len(ident))


# --- verify_module ----------------------------------------------------------------------

def small_module(tmp_path, solver="sgd"):
    x = nn.Variable((4, 2))
    x.name = "x"
    h = F.tanh(PF.affine(x, 3, name="hidden"))
    loss = F.mean(F.pow_scalar(h, 2))
    return nn.compile(loss, name=f"small_{solver}", output_dir=tmp_path, solver=solver)


def constants_of(module, source: str) -> dict:
    """What a generated module's constants must be: the values the imported module
    holds (DTYPE as source text)."""
    from symcompile.backends.verify import Source

    names = [n.targets[0].id for n in ast.parse(source).body if isinstance(n, ast.Assign)]
    return {name: Source("numpy." + np.dtype(module.DTYPE).name) if name == "DTYPE"
            else getattr(module, name) for name in names}


def functions_of(source: str) -> list[str]:
    return [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]


@pytest.fixture
def generated(tmp_path):
    result = small_module(tmp_path, "adam")
    return result.source, constants_of(result.module, result.source), \
        functions_of(result.source)


def test_verify_passes_every_module_symcompile_generates(tmp_path):
    from symcompile.backends.verify import verify_module

    for solver in ("sgd", "adam", None):
        nn.clear_parameters()
        result = small_module(tmp_path / str(solver), solver)
        verify_module(result.source, constants_of(result.module, result.source),
                      functions_of(result.source), imports=("os", "numpy"))
    from symcompile.backends import registry

    for path in sorted((Path(__file__).parent.parent / "generated").glob("*.py")):
        source = path.read_text(encoding="utf-8")
        namespace = {}
        exec(compile(source, str(path), "exec"), namespace)  # noqa: S102 - our own files
        module = type(sys)("golden")
        module.__dict__.update(namespace)
        backend = registry.get("array_api" if "template array_api/" in source else "numpy")
        constants = constants_of(module, source)
        if backend.name == "array_api":  # the dtype's name: the namespace has the dtype
            constants["DTYPE"] = module.DTYPE
        verify_module(source, constants, functions_of(source), imports=backend.imports,
                      lazy_imports=backend.lazy_imports)


def test_verify_refuses_a_constant_that_differs(generated):
    from symcompile.backends.verify import GeneratedCodeError, verify_module

    source, constants, functions = generated
    changed = dict(constants)
    changed["GRAPH_NAME"] = constants["GRAPH_NAME"] + "x"
    with pytest.raises(GeneratedCodeError, match="GRAPH_NAME"):
        verify_module(source, changed, functions, imports=("os", "numpy"))
    tampered = source.replace("'name': 'x'", "'name': 'y'", 1)
    assert tampered != source
    with pytest.raises(GeneratedCodeError, match="INPUTS"):
        verify_module(tampered, constants, functions, imports=("os", "numpy"))
    retyped = dict(constants)  # (4, 2) is not [4, 2], nor 1 the same as 1.0
    retyped["INPUTS"] = {k: {**v, "shape": list(v["shape"])} for k, v in
                         constants["INPUTS"].items()}
    with pytest.raises(GeneratedCodeError, match="INPUTS"):
        verify_module(source, retyped, functions, imports=("os", "numpy"))


def test_verify_refuses_an_extra_top_level_statement(generated):
    from symcompile.backends.verify import GeneratedCodeError, verify_module

    source, constants, functions = generated
    for extra in ("print('hello')\n", "if True:\n    pass\n", "for i in (): pass\n",
                  "INPUTS['x']['name'] = 'y'\n", "class C:\n    pass\n"):
        with pytest.raises(GeneratedCodeError):
            verify_module(source + extra, constants, functions, imports=("os", "numpy"))


def test_verify_refuses_an_import_other_than_the_allowed_ones(generated):
    from symcompile.backends.verify import GeneratedCodeError, verify_module

    source, constants, functions = generated
    for line in ("import subprocess", "import os as o", "from os import system",
                 "import numpy, sys"):
        tampered = source.replace("import numpy\n", f"import numpy\n{line}\n", 1)
        with pytest.raises(GeneratedCodeError, match="(?i)import"):
            verify_module(tampered, constants, functions, imports=("os", "numpy"))
    with pytest.raises(GeneratedCodeError, match="(?i)import"):
        verify_module(source, constants, functions, imports=("numpy",))  # os not allowed


def test_verify_refuses_a_function_reading_an_unknown_name(generated):
    from symcompile.backends.verify import GeneratedCodeError, verify_module

    source, constants, functions = generated
    docstring = '    """The graph\'s outputs."""\n'  # forward()'s: code goes after it
    assert docstring in source
    for statement in ("__import__('os').system('true')", "eval('1')", "globals()",
                      "getattr(numpy, 'load')", "undefined_name + 1"):
        tampered = source.replace(docstring, docstring + f"    {statement}\n", 1)
        with pytest.raises(GeneratedCodeError, match="unknown name"):
            verify_module(tampered, constants, functions, imports=("os", "numpy"))


def test_verify_refuses_dunder_attributes_other_than_name(generated):
    from symcompile.backends.verify import GeneratedCodeError, verify_module

    source, constants, functions = generated
    docstring = '    """The graph\'s outputs."""\n'
    for statement in ("x.__class__", "numpy.__dict__", "type(x).__subclasses__()",
                      "refuse_argument.__globals__"):
        tampered = source.replace(docstring, docstring + f"    {statement}\n", 1)
        with pytest.raises(GeneratedCodeError, match="dunder"):
            verify_module(tampered, constants, functions, imports=("os", "numpy"))
    allowed = source.replace(docstring, docstring + "    type(x).__name__\n", 1)
    verify_module(allowed, constants, functions, imports=("os", "numpy"))


def test_verify_refuses_an_unexpected_or_missing_function(generated):
    from symcompile.backends.verify import GeneratedCodeError, verify_module

    source, constants, functions = generated
    with pytest.raises(GeneratedCodeError, match="unexpected function"):
        verify_module(source + "\n\ndef extra():\n    return 1\n", constants, functions,
                      imports=("os", "numpy"))
    with pytest.raises(GeneratedCodeError, match="lacks"):
        verify_module(source, constants, [*functions, "missing"], imports=("os", "numpy"))


def test_verify_refuses_text_that_is_not_python(generated):
    from symcompile.backends.verify import GeneratedCodeError, verify_module

    source, constants, functions = generated
    with pytest.raises(GeneratedCodeError, match="not valid Python"):
        verify_module(source + "\n'unterminated\n", constants, functions,
                      imports=("os", "numpy"))


# --- source_literals.block --------------------------------------------------------------

LITERAL_PIECES = [*QUOTES, *BREAKS, "#", "/", "{", "}", "(", ")", ":", ",", " ", "α", "中",
                  "é", "e\u0301", "😀", "'''", '"""', "\\N", "\\x", "\\u2028", "'); x('",
                  "abc", "def", "_"]


def random_string(rnd: random.Random) -> str:
    if rnd.random() < 0.1:
        return "".join(rnd.choice("abcdefghij") for _ in range(rnd.randint(60, 140)))
    return "".join(rnd.choice(LITERAL_PIECES) for _ in range(rnd.randint(0, 12)))


def random_value(rnd: random.Random, depth: int = 0):
    roll = rnd.random()
    if depth < 3 and roll < 0.25:
        return {(random_string(rnd) if rnd.random() < 0.8 else rnd.randint(-5, 5)):
                random_value(rnd, depth + 1) for _ in range(rnd.randint(0, 5))}
    if depth < 3 and roll < 0.45:
        return tuple(random_value(rnd, depth + 1) for _ in range(rnd.randint(0, 5)))
    if roll < 0.8:
        return random_string(rnd)
    return rnd.choice([rnd.randint(-10**6, 10**6), rnd.uniform(-1e6, 1e6), 0.0, -0.0, 1e-300,
                       1.5e300, True, False, None, 2**70])


def same(a, b) -> bool:
    """Equal, with equal types all the way down (True is not 1, a list is not a tuple)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and str(a) == str(b)  # -0.0 stays -0.0
    return a == b


def test_block_literals_read_back_exactly():
    from symcompile.backends.source_literals import block

    rnd = random.Random(SEED)
    for i in range(10_000):
        value = random_value(rnd)
        indent = rnd.choice([0, 4, 8])
        used = indent + rnd.randint(0, 60)
        text = block(value, indent=indent, used=used, width=rnd.choice([40, 100]),
                     table=rnd.random() < 0.3)
        assert same(ast.literal_eval(text), value), (i, value, text)
        if i % 10 == 0:  # laid out inside a function, it is still one assignment
            source = f"def f():\n    X = {block(value, indent=4, used=8)}\n    return X\n"
            tree = ast.parse(source)
            assert len(tree.body) == 1 and len(tree.body[0].body) == 2
            assert same(ast.literal_eval(tree.body[0].body[0].value), value)


def test_block_refuses_values_without_a_literal():
    from symcompile.backends.source_literals import block

    for value in (float("nan"), float("inf"), {"a": (1, float("-inf"))}):
        with pytest.raises(ValueError):
            block(value)
    for value in (object(), [1, 2], {1, 2}, b"bytes"):
        with pytest.raises(TypeError):
            block(value)


# --- long names -------------------------------------------------------------------------

LONG_SCOPES = ["transformer_encoder", "layer_11", "multi_head_attention", "query_projection",
               "extra"]
LONG_KEY = "/".join(LONG_SCOPES) + "/affine/W"


def long_named_affine(first_scope: str = "transformer_encoder", x=None):
    """loss = mean(affine(x)**2), its parameters under five nested scopes."""
    if x is None:
        x = nn.Variable((4, 3))
        x.name = "x"
        # (float32: passed to the module as x.d)
        x.d = np.float32(np.arange(12, dtype=np.float64).reshape(4, 3) / 10 - 0.5)
    scopes = [first_scope, *LONG_SCOPES[1:]]

    def nest(depth):
        if depth == len(scopes):
            return PF.affine(x, 2)
        with nn.parameter_scope(scopes[depth]):
            return nest(depth + 1)

    h = nest(0)
    loss = F.mean(F.pow_scalar(h, 2))
    return x, loss


def test_long_parameter_keys_train_with_the_nnabla_loop():
    assert len(LONG_KEY) == 81
    x, loss = long_named_affine()
    params = nn.get_parameters()
    assert list(params) == [LONG_KEY, LONG_KEY[:-1] + "b"]
    W, b = params[LONG_KEY], params[LONG_KEY[:-1] + "b"]
    W.d = np.array([[0.5, -1.0], [0.25, 0.75], [-0.5, 1.5]])
    b.d = [0.1, -0.2]
    xs, w0, b0 = (v.d.astype(np.float64) for v in (x, W, b))
    h = xs @ w0 + b0
    solver = S.Sgd(0.1)
    solver.set_parameters(params)
    loss.forward()
    assert float(loss.d) == pytest.approx(np.mean(h**2), rel=1e-6)
    solver.zero_grad()
    loss.backward()
    g_h = 2 * h / h.size
    np.testing.assert_allclose(W.g, xs.T @ g_h, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(b.g, g_h.sum(axis=0), rtol=1e-5, atol=1e-7)
    solver.update()
    np.testing.assert_allclose(W.d, w0 - 0.1 * (xs.T @ g_h), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(b.d, b0 - 0.1 * g_h.sum(axis=0), rtol=1e-5, atol=1e-7)
    module = loss._compiled.module
    assert list(module.PARAMETERS) == [LONG_KEY, LONG_KEY[:-1] + "b"]
    for spec in module.PARAMETERS.values():
        assert short_identifier(spec["argument"]) and len(spec["argument"]) <= MAX_IDENTIFIER


def test_long_parameter_keys_compile(tmp_path):
    x, loss = long_named_affine()
    result = nn.compile(loss, name="long_names", output_dir=tmp_path)
    m = result.module
    assert list(m.PARAMETERS) == [LONG_KEY, LONG_KEY[:-1] + "b"]
    W_arg = m.PARAMETERS[LONG_KEY]["argument"]
    assert len(W_arg) <= MAX_IDENTIFIER and short_identifier(W_arg)
    assert W_arg.endswith("affine_W")
    params = m.init_parameters(seed=0)
    out = m.forward(x=x.d.copy(), **params)
    xs = x.d.astype(np.float64)
    h = xs @ params[W_arg] + params[m.PARAMETERS[LONG_KEY[:-1] + "b"]["argument"]]
    assert float(out) == pytest.approx(np.mean(h**2), rel=1e-5)


def test_long_names_that_differ_only_early_get_distinct_identifiers(tmp_path):
    x, first = long_named_affine("transformer_encoder")
    _, second = long_named_affine("transformer_encodex", x)  # the same initials
    _, third = long_named_affine("xransformer_encoder", x)
    loss = F.add2(F.add2(first, second), third)
    m = nn.compile(loss, name="three", output_dir=tmp_path).module
    keys = [k for k in m.PARAMETERS if k.endswith("/W")]
    assert len(keys) == 3
    arguments = [m.PARAMETERS[k]["argument"] for k in keys]
    assert len(set(arguments)) == 3 and all(short_identifier(a) for a in arguments)
    params = {spec["argument"]: np.full(spec["shape"], 0.5 + i, np.float32)
              for i, spec in enumerate(m.PARAMETERS.values())}
    xs = x.d.astype(np.float64)
    expected = sum(np.mean((xs @ params[m.PARAMETERS[k]["argument"]]
                            + params[m.PARAMETERS[k[:-1] + "b"]["argument"]]) ** 2)
                   for k in keys)
    assert float(m.forward(x=x.d.copy(), **params)) == pytest.approx(expected, rel=1e-5)


IDENTIFIERS_IN_A_PROCESS = textwrap.dedent("""
    import json, sys
    import symcompile as nn, symcompile.functions as F, symcompile.parametric_functions as PF
    x = nn.Variable((4, 3))
    x.name = "x"
    losses = []
    for first in ("transformer_encoder", "transformer_encodex", "xransformer_encoder"):
        with nn.parameter_scope(first + "/layer_11/multi_head_attention/query_projection"):
            with nn.parameter_scope("extra"):
                losses.append(F.mean(F.pow_scalar(PF.affine(x, 2), 2)))
    loss = F.add2(F.add2(losses[0], losses[1]), losses[2])
    m = nn.compile(loss, name="three", output_dir=sys.argv[1]).module
    print(json.dumps({k: v["argument"] for k, v in m.PARAMETERS.items()}))
""")


def test_shortened_identifiers_are_the_same_in_every_process(tmp_path):
    """Another process, with another hash seed than this one's, names them alike."""
    seed = "4242" if os.environ.get("PYTHONHASHSEED") != "4242" else "7"
    env = dict(os.environ, PYTHONHASHSEED=seed, SYMCOMPILE_CACHE_DIR=str(tmp_path / "c"))
    done = subprocess.run([sys.executable, "-c", IDENTIFIERS_IN_A_PROCESS, str(tmp_path / "o")],
                          env=env, text=True, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    other = json.loads(done.stdout)
    x, first = long_named_affine("transformer_encoder")
    _, second = long_named_affine("transformer_encodex", x)
    _, third = long_named_affine("xransformer_encoder", x)
    here = nn.compile(F.add2(F.add2(first, second), third), name="three",
                      output_dir=tmp_path / "here").module
    mine = {k: v["argument"] for k, v in here.PARAMETERS.items()}
    assert other == mine
    assert len(set(mine.values())) == 6


def test_values_assigned_together_are_named_by_their_own_targets(tmp_path):
    """``x, t = nn.Variable(...), nn.Variable(...)`` names the inputs x and t (t was
    x_2); ``a, (b, c) = ...`` nests, and a starred or unpacked assignment names none."""
    x, t = nn.Variable((4, 3)), nn.Variable((4, 1))
    w, (b, scale) = nn.Variable((3, 2), need_grad=True), (nn.Variable((2,)), nn.Variable((1, 1)))
    pair = nn.Variable((4, 2)), nn.Variable((4, 2))
    y = F.affine(x, w, b) * scale + pair[0] * pair[1]
    m = nn.compile(F.mean(F.softmax_cross_entropy(y, t)), name="pairs",
                   output_dir=tmp_path).module
    assert sorted(m.INPUTS) == ["b", "scale", "t", "w", "x", "x_2", "x_3"]  # (pair: x_2, x_3)
