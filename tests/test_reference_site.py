"""The documentation: the API reference builds with warnings as errors, and its examples run.

`mkdocs build --strict` renders the reference from the docstrings (mkdocstrings), so a
docstring that no longer matches its signature fails here, in CI (scripts/test runs this).
"""

from __future__ import annotations

import doctest
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[str]:
    return PYTHON_BLOCK.findall(text)


def readme_python_api() -> str:
    """The README's "Python API" section, up to the next section of the same level."""
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Python API\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_the_reference_site_builds_without_a_warning(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    reference = (tmp_path / "reference" / "estimator" / "index.html").read_text()
    # The docstrings made it in: the estimator's methods and parameter table.
    assert "partial_fit" in reference and "fit_intercept" in reference


PAGES = sorted(p.name for p in (ROOT / "docs").glob("*.md"))


@pytest.mark.parametrize("page", [*PAGES, "README.md#python-api"])
def test_the_examples_run_in_order(page, tmp_path):
    text = readme_python_api() if page.startswith("README") else (ROOT / "docs" / page).read_text()
    blocks = python_blocks(text)
    if page == "python-api.md" or page.startswith("README"):
        assert blocks, f"{page} should show the Python API with runnable examples"
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for number, block in enumerate(blocks, start=1):  # the cwd is tmp_path (conftest)
        exec(compile(block, f"{page}, python block {number}", "exec"), namespace)


def test_the_docstring_examples_run():
    import toolkit.estimator

    failed, tried = doctest.testmod(toolkit.estimator, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert tried > 0 and failed == 0
