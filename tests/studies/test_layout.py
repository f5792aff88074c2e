"""The studies package's layout rules, read from its source with `ast`.

- No module over `MAX_MODULE_LINES` lines unless the first paragraph of its
  docstring says why ("Long because ...").
- No function (or method) over `MAX_FUNCTION_LINES` lines.
- Imports flow one way: a module imports only from its own layer or lower
  ones (`LAYERS`, lowest first); `studies/__init__.py` and `__main__.py`
  may import anything; `kbn` never imports `studies`; `studies.science`
  imports no Keras, Keras Tuner, TensorFlow, JAX or `kbn`.

Each rule is checked twice: on hand-made modules that break it (so a
checker that finds nothing fails here), then on the real package.
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
REASON = "long because"
# lowest first; a module may import its own layer or a lower one
LAYERS = (
    ("studies.quiet", "studies.folder"),
    ("studies.science",),
    ("studies.inputs",),
    ("studies.engine",),
    ("studies.outputs",),
    ("studies.surfaces",),
)
TOP = ("studies", "studies.__main__")  # may import any layer
NO_KERAS = ("keras", "keras_tuner", "tensorflow", "jax", "kbn")


def _modules(package_dir):
    """`{dotted name: path}` of every module under `package_dir`."""
    base = package_dir.parent
    found = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _layer(name):
    """The index of `name`'s layer in `LAYERS`, or None (not in a layer)."""
    for index, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return index
    return None


def _imports(name, path):
    """Every module `name` imports (top-level or inside functions), dotted.

    `from P import X` counts as `P.X` (X may be a module), relative imports
    are resolved against `name`'s package.
    """
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found += [f"{base}.{alias.name}" for alias in node.names]
    return found


def _target_layer(imported):
    """The layer of an imported `studies...` name: the longest known prefix.

    `studies.science.tasks` is science; `studies.quiet` is the base layer;
    a bare `studies` (the package, which imports the surfaces) ranks above
    every layer.
    """
    layer = _layer(imported)
    if layer is not None:
        return layer
    return len(LAYERS)  # `studies` itself, or a module outside every layer


def layer_violations(package_dir):
    """`name imports other (layer a < layer b)` lines, one per bad import."""
    problems = []
    for name, path in _modules(package_dir).items():
        if name in TOP:
            continue
        own = _layer(name)
        if own is None:
            problems.append(f"{name} is in no layer (add it to LAYERS)")
            continue
        for imported in _imports(name, path):
            if imported != "studies" and not imported.startswith("studies."):
                continue
            target = _target_layer(imported)
            if target > own:
                problems.append(
                    f"{name} (layer {own}) imports {imported} (layer {target})"
                )
    return problems


def foreign_imports(package_dir, forbidden, prefix):
    """Modules under `package_dir` named `prefix...` importing `forbidden`."""
    problems = []
    for name, path in _modules(package_dir).items():
        if name != prefix and not name.startswith(prefix + "."):
            continue
        for imported in _imports(name, path):
            top = imported.split(".")[0]
            if top in forbidden:
                problems.append(f"{name} imports {imported}")
    return problems


def long_modules(package_dir):
    """Modules over `MAX_MODULE_LINES` whose docstring does not say why."""
    problems = []
    for name, path in _modules(package_dir).items():
        text = path.read_text()
        lines = len(text.splitlines())
        if lines <= MAX_MODULE_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        first_paragraph = docstring.split("\n\n")[0].lower()
        if REASON not in first_paragraph:
            problems.append(f"{name}: {lines} lines, no '{REASON}' at its top")
    return problems


def _docstring_lines(node):
    first = node.body[0]
    is_docstring = isinstance(first, ast.Expr) and isinstance(
        getattr(first, "value", None), ast.Constant
    )
    if is_docstring and isinstance(first.value.value, str):
        return first.end_lineno - first.lineno + 1
    return 0


def long_functions(package_dir):
    """`module:line name (n lines)` of every function over the limit.

    A docstring is the function's manual (Keras style: Args, Returns,
    Raises), so its lines do not count; the code's do.
    """
    problems = []
    for name, path in _modules(package_dir).items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1 - _docstring_lines(node)
                if lines > MAX_FUNCTION_LINES:
                    problems.append(f"{name}:{node.lineno} {node.name} ({lines} lines)")
    return problems


# ------------------------------------------- the checkers on hand-made code


def _write(root, files):
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "studies"


def test_the_layer_checker_finds_an_upward_import(tmp_path):
    package = _write(
        tmp_path,
        {
            "studies/__init__.py": "from studies.surfaces import api\n",
            "studies/quiet.py": "import os\n",
            "studies/science/__init__.py": "",
            "studies/science/tasks.py": "from studies import quiet\n",
            # upward, lazily inside a function: still a violation
            "studies/science/bad.py": (
                "def f():\n    from studies.engine import tuner\n"
            ),
            "studies/engine/__init__.py": "",
            "studies/engine/tuner.py": (
                "from studies.science import tasks\nfrom . import oracle\n"
            ),
            "studies/engine/oracle.py": "from ..outputs import plots\n",
            "studies/outputs/__init__.py": "",
            "studies/outputs/plots.py": "import studies\n",
            "studies/surfaces/__init__.py": "",
            "studies/surfaces/api.py": "from studies.engine import tuner\n",
            "studies/stray.py": "",
        },
    )
    assert sorted(layer_violations(package)) == [
        "studies.engine.oracle (layer 3) imports studies.outputs.plots (layer 4)",
        "studies.outputs.plots (layer 4) imports studies (layer 6)",
        "studies.science.bad (layer 1) imports studies.engine.tuner (layer 3)",
        "studies.stray is in no layer (add it to LAYERS)",
    ]


def test_the_size_checkers_find_a_long_function_and_module(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    filler = "x = 1\n" * MAX_MODULE_LINES
    package = _write(
        tmp_path,
        {
            "studies/__init__.py": "",
            # def line + 60 body lines: 61 lines, one over
            "studies/science/long.py": f"def long():\n{body}",
            # def line + 59 body lines: exactly the limit
            "studies/science/fits.py": "class A:\n    def fits(self):\n"
            + "".join(f"        y{i} = {i}\n" for i in range(59)),
            # a 30-line docstring and 59 code lines: the docstring is not code
            "studies/science/documented.py": 'def documented():\n    """Doc.\n'
            + "    more\n" * 28
            + '    """\n'
            + "".join(f"    z{i} = {i}\n" for i in range(58)),
            "studies/engine/big.py": f'"""Big."""\n{filler}',
            "studies/engine/excused.py": (
                f'"""Excused. Long because it is a table.\n\nMore."""\n{filler}'
            ),
            "studies/engine/late.py": (
                f'"""Late.\n\nLong because said too late."""\n{filler}'
            ),
        },
    )
    assert long_functions(package) == ["studies.science.long:1 long (61 lines)"]
    assert long_modules(package) == [
        f"studies.engine.big: {MAX_MODULE_LINES + 1} lines, no '{REASON}' at its top",
        f"studies.engine.late: {MAX_MODULE_LINES + 3} lines, no '{REASON}' at its top",
    ]


def test_the_foreign_import_checker_finds_keras_in_science(tmp_path):
    package = _write(
        tmp_path,
        {
            "studies/science/fine.py": "import numpy as np\nimport math\n",
            "studies/science/keras_user.py": "def f():\n    import keras.ops\n",
            "studies/engine/hypermodel.py": "import keras\n",
        },
    )
    assert foreign_imports(package, NO_KERAS, "studies.science") == [
        "studies.science.keras_user imports keras.ops"
    ]


# ----------------------------------------------------------- the real code


def test_imports_flow_one_way():
    assert layer_violations(ROOT / "studies") == []


def test_science_needs_no_keras():
    assert foreign_imports(ROOT / "studies", NO_KERAS, "studies.science") == []


def test_kbn_never_imports_studies():
    assert foreign_imports(ROOT / "kbn", ("studies",), "kbn") == []


def test_no_module_is_long_without_a_reason():
    assert long_modules(ROOT / "studies") == []


def test_no_function_is_long():
    assert long_functions(ROOT / "studies") == []
