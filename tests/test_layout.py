"""The tree is the architecture: each folder is a dependency tier, and the pieces stay small.

Tiers (a folder may import the tiers listed before it, and nothing heavier):
    core      toolkit/*.py top-level helpers (errors, defaults, card, files, equations,
              coefficients):
              stdlib only
    runtime   toolkit/runtime/: + numpy, onnxruntime (protobuf comes with onnxruntime)
    io        toolkit/io/: + numpy, pyarrow (tqdm for progress bars); never torch
    training  toolkit/training/: + torch, io, scipy (the inference's distributions),
              threadpoolctl (numpy's BLAS on one thread while rows are summed)
    export    toolkit/export/: + torch, onnx, onnxscript, runtime, training, io
    report    toolkit/report/: + io, training (checkpoints), runtime, scipy, matplotlib
    top       predict.py, serve/, cli.py: anything above, imported lazily by the CLI
    api       api.py, estimator.py, estimator_inputs.py (the Python API): at import time
              only numpy and scikit-learn (the estimator's base classes) besides the
              standard library and toolkit's core; torch, pyarrow, onnx and onnxruntime
              inside the functions that use them. `import toolkit` itself is stdlib only:
              its public names (toolkit.train, toolkit.LinearRegressor, ...) are imported
              on first use by the package's `__getattr__`.

Checked twice: statically (every `import` in every file of a folder, function bodies
included, since heavy imports are made lazily there) and dynamically (a fresh interpreter
imports the tier and must not have loaded the forbidden modules).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "toolkit"
CORE = {
    "toolkit",
    "toolkit.errors",
    "toolkit.defaults",
    "toolkit.card",
    "toolkit.files",
    "toolkit.equations",
    "toolkit.coefficients",
    "toolkit.columns",
}
# Third-party modules each folder may import; the standard library is always allowed.
THIRD_PARTY = {
    "core": set(),
    "runtime": {"numpy", "onnxruntime", "google"},
    "io": {"numpy", "pyarrow", "tqdm"},
    "training": {"numpy", "pyarrow", "tqdm", "torch", "scipy", "threadpoolctl"},
    "export": {"numpy", "torch", "onnx", "onnxscript", "onnxruntime"},
    "report": {"numpy", "scipy", "matplotlib", "threadpoolctl"},
}
# toolkit packages each folder may import, besides the core modules.
INTERNAL = {
    "core": set(),
    "runtime": {"toolkit.runtime"},
    "io": {"toolkit.io"},
    "training": {"toolkit.io", "toolkit.training"},
    # io: the table models' parity gate encodes raw rows with toolkit.io.encode, the
    # encoder training used (toolkit/export/tables_gate.py).
    "export": {"toolkit.runtime", "toolkit.training", "toolkit.io", "toolkit.export"},
    "report": {"toolkit.io", "toolkit.training", "toolkit.runtime", "toolkit.report"},
}
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400


def _tier(path: Path) -> str | None:
    relative = path.relative_to(PACKAGE)
    if len(relative.parts) == 1:
        name = relative.stem
        return "core" if f"toolkit.{name}" in CORE or name == "__init__" else None
    return relative.parts[0] if relative.parts[0] in THIRD_PARTY else None


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            if node.module == "toolkit":  # `from toolkit import card` names a module
                found += [(node.lineno, f"toolkit.{alias.name}") for alias in node.names]
    return found


def _allowed(tier: str, module: str) -> bool:
    top = module.split(".")[0]
    if top != "toolkit":
        return top in sys.stdlib_module_names or top == "__future__" or top in THIRD_PARTY[tier]
    if module in CORE:
        return True
    return any(module == p or module.startswith(p + ".") for p in INTERNAL[tier])


def _package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("tier", sorted(THIRD_PARTY))
def test_each_folder_imports_only_its_tier_and_those_below(tier):
    offences = []
    for path in _package_files():
        if _tier(path) != tier:
            continue
        for line, module in _imports(path):
            if not _allowed(tier, module):
                offences.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
    assert offences == [], f"{tier} may not import these:\n" + "\n".join(offences)


# The Python API's modules and what they may import when they are imported (module level).
API_MODULES = ("api.py", "estimator.py", "estimator_inputs.py")
API_IMPORT_TIME = {"numpy", "sklearn"}


def test_every_file_in_the_package_belongs_to_a_tier_or_the_top():
    top = {"__main__.py", "cli.py", "cli_report.py", "cli_types.py", "predict.py"}
    top |= {"checkpoint_info.py", *API_MODULES}
    strays = [
        str(path.relative_to(PACKAGE))
        for path in _package_files()
        if _tier(path) is None
        and path.name not in top
        and path.relative_to(PACKAGE).parts[0] != "serve"
    ]
    assert strays == []


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('\\nMODULES', ' '.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    modules = result.stdout.rsplit("\nMODULES ", 1)[1].split()
    return {name.split(".")[0] for name in modules}


def _import_all(folder: str) -> str:
    modules = sorted(
        "toolkit."
        + ".".join(p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
        for p in (PACKAGE / folder).rglob("*.py")
    )
    return "\n".join(f"import {m}" for m in modules)


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("runtime", {"torch", "onnx", "onnxscript", "pyarrow", "click", "pandas"}),
        ("io", {"torch", "onnx", "onnxruntime"}),
        ("training", {"onnx", "onnxscript", "onnxruntime", "click"}),
        # matplotlib only once a page is drawn; torch only once a checkpoint is read
        ("report", {"torch", "onnx", "onnxscript", "click", "matplotlib"}),
    ],
)
def test_importing_a_tier_in_a_fresh_interpreter_loads_nothing_forbidden(folder, forbidden):
    loaded = _loaded_after(_import_all(folder))
    assert loaded & forbidden == set()


def test_toolkit_help_loads_neither_torch_nor_numpy():
    code = (
        "from toolkit.cli import cli\n"
        "for command in ('', 'train', 'export', 'predict', 'info', 'serve', 'report'):\n"
        "    try:\n"
        "        cli.main([*command.split(), '--help'], prog_name='toolkit')\n"
        "    except SystemExit:\n"
        "        pass"
    )
    loaded = _loaded_after(code)
    assert loaded & {"torch", "numpy", "pyarrow", "onnx", "onnxruntime"} == set()


def test_defaults_and_errors_import_with_the_standard_library_alone():
    loaded = _loaded_after("import toolkit.defaults, toolkit.errors, toolkit.card")
    third_party = {
        name
        for name in loaded - set(sys.stdlib_module_names)
        if not name.startswith(("__editable__", "_distutils_hack", "__main__"))
    }
    assert third_party == {"toolkit"}


def test_no_function_over_60_lines():
    long = []
    for path in _package_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} {length}")
    assert long == [], "split these into named pieces:\n" + "\n".join(long)


def test_no_module_over_400_lines():
    big = [
        f"{path.relative_to(PACKAGE)} {n}"
        for path in _package_files()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert big == [], "split these modules:\n" + "\n".join(big)


def test_every_error_class_is_a_toolkit_error_defined_in_errors_py():
    defined_elsewhere = []
    for path in _package_files():
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith(("Error", "Interrupted")):
                defined_elsewhere.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    assert defined_elsewhere == []
    import toolkit.errors as errors

    classes = [
        v for v in vars(errors).values() if isinstance(v, type) and v.__module__ == errors.__name__
    ]
    warned = [c for c in classes if issubclass(c, Warning)]  # warnings issued, not raised
    assert all(issubclass(c, errors.ToolkitError) for c in classes if c not in warned)
    assert all(issubclass(c, UserWarning) for c in warned)


def _module_level_imports(path: Path) -> list[tuple[int, str]]:
    """The imports a module makes when it is imported: not those inside functions (nor
    under `if TYPE_CHECKING:`, which only type checkers run)."""
    tree = ast.parse(path.read_text(), str(path))
    inside = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        or (isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
        for inner in ast.walk(node)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in inside:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_the_python_api_imports_heavy_modules_only_inside_functions():
    offences = []
    for name in API_MODULES:
        for line, module in _module_level_imports(PACKAGE / name):
            top = module.split(".")[0]
            allowed = (
                top in sys.stdlib_module_names
                or top == "__future__"
                or top in API_IMPORT_TIME
                or module in CORE
                or module == "toolkit.estimator_inputs"
            )
            if not allowed:
                offences.append(f"{name}:{line} imports {module} at import time")
    assert offences == []


def test_import_toolkit_is_light_and_its_api_names_load_on_first_use():
    # `import toolkit` is the standard library only; the estimator brings scikit-learn
    # (with what scikit-learn itself imports), still not torch, onnx or onnxruntime.
    heavy = {"torch", "numpy", "pyarrow", "onnx", "onnxruntime", "sklearn", "click"}
    assert _loaded_after("import toolkit") & heavy == set()
    assert _loaded_after("import toolkit\ntoolkit.train") & heavy == set()
    loaded = _loaded_after("import toolkit\ntoolkit.LinearRegressor")
    assert "sklearn" in loaded and loaded & {"torch", "onnx", "onnxruntime"} == set()
