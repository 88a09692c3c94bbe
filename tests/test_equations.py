"""toolkit/equations.py: the text form shared by training's report and `toolkit info`."""

from __future__ import annotations

import subprocess
import sys

from toolkit.equations import equations, number


def test_signs_bias_and_names():
    assert equations(["x1", "x2"], ["y"], [[1.0, 1.0]], [-1.0]) == [
        "y = 1.0000*x1 + 1.0000*x2 - 1.0000"
    ]
    assert equations(["a", "b"], ["u", "v"], [[-2.0, 3.0], [0.5, -0.5]], None) == [
        "u = -2.0000*a + 3.0000*b",
        "v = 0.5000*a - 0.5000*b",
    ]


def test_tiny_and_huge_values_keep_their_digits():
    assert [number(v) for v in (0.0, 1e-3, 9999999.0, 1e-7, 3e8)] == [
        "0.0000",
        "0.0010",
        "9999999.0000",
        "1.0000e-07",
        "3.0000e+08",
    ]


def test_long_equations_show_the_first_terms_and_count_the_rest():
    names = [f"f{i}" for i in range(30)]
    (line,) = equations(names, ["y"], [[1.0] * 30], [0.0], max_terms=5)
    assert line == (
        "y = 1.0000*f0 + 1.0000*f1 + 1.0000*f2 + 1.0000*f3 + ... (26 more terms; see --json)"
        " + 0.0000"
    )


def test_the_module_imports_only_the_standard_library():
    probe = "import sys, toolkit.equations; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert not {"numpy", "torch", "onnxruntime"} & {name.split(".")[0] for name in loaded}
