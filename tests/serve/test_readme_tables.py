"""The README's worked example on tables runs as written and prints what the README shows.

The commands are read from the README's bash block (so the test follows the text), run in
a scratch folder holding a copy of docs/examples/, and checked against the output the
README quotes: the predictions, the one unknown-level warning, and the server's answer
(a `toolkit serve` process on the exported file). That the numbers are right is proven
elsewhere against statsmodels and scikit-learn on the same kind of table
(tests/test_tables_end_to_end.py, tests/training/test_missing_train.py); this test keeps
the README true.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from serving import running

ROOT = Path(__file__).resolve().parents[2]
SECTION = "#### Worked example: from a CSV with text and blanks to a served model"


def _example() -> tuple[list[list[str]], dict[str, object], list[str]]:
    """(the toolkit commands before `serve`, the curl body, the quoted output lines)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(SECTION) :]
    bash = re.search(r"```bash\n(.*?)```", section, re.S).group(1).replace("\\\n", " ")
    commands, body = [], None
    for line in _lines(bash):
        if line.startswith("toolkit serve"):
            continue
        if line.startswith("curl"):
            body = json.loads(shlex.split(line)[-1])
        elif line.startswith("toolkit"):
            commands.append(shlex.split(line))
        elif line.startswith("printf"):
            commands.append(["printf", *shlex.split(line)[1:]])
    quoted = re.findall(r"```text\n(.*?)```", section, re.S)[1].strip().splitlines()
    return commands, body, quoted


def _lines(bash: str) -> list[str]:
    """The block's commands, a quoted text running over lines kept in one."""
    lines, pending = [], ""
    for line in bash.splitlines():
        pending = f"{pending} {line}" if pending else line
        try:
            shlex.split(pending)
        except ValueError:  # an open quote: the command goes on
            continue
        lines.append(pending)
        pending = ""
    return lines


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    if command[0] == "printf":  # `printf FORMAT > FILE`
        fmt, _, target = command[1:]
        (cwd / target).write_text(fmt.encode().decode("unicode_escape"))
        return subprocess.CompletedProcess(command, 0, "", "")
    done = subprocess.run(
        [sys.executable, "-m", "toolkit", *command[1:]],
        cwd=cwd, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, f"{shlex.join(command)}:\n{done.stderr}"
    return done


def test_the_worked_example_runs_as_the_readme_shows(tmp_path: Path) -> None:
    commands, body, quoted = _example()
    shutil.copytree(ROOT / "docs" / "examples", tmp_path / "docs" / "examples")
    outputs = [_run(command, tmp_path) for command in commands]
    predicted = outputs[-1]
    assert predicted.stdout.splitlines() == quoted[:3]
    assert predicted.stderr.strip() == quoted[3]
    model = tmp_path / "models" / "rentals.onnx"
    with running(model, tmp_path) as server, server.client() as client:  # toolkit serve
        answer = client.post("/predict", json=body).json()
    assert answer == json.loads(quoted[4])
    assert np.isclose(answer["predictions"]["rent"], [float(v) for v in quoted[1:3]]).all()
