"""The robustness corpus: mutated models end in a clean refusal or a right answer, never worse.

From the exported seed model (y = x1 + x2 - 1), corpus_mutants.py (with corpus_edits.py)
writes seeded mutants: bit flips, byte edits and truncations, files that are not ONNX (a
10 GiB sparse one too), edited dims, element types, operators and attributes,
initializer edits, external-data tricks (absolute paths, .., null bytes, symlink loops,
FIFOs, huge sizes), signature edits (extra inputs and outputs, an output wired to the
input), fixed batch dims, graph tails (Loop with 2**62 trips, Concat, Reshape, constants),
opsets and model-card edits.
corpus_worker.py loads each in a subprocess (several per process, each under a timer),
runs `toolkit info`'s describe and predicts batches of 1, 2 and 5 rows (and a fixed
batch size), reporting one JSON line per mutant.

Asserted: 0 tracebacks (exceptions that are not ToolkitError), 0 crashes (a worker killed
by a signal), 0 hangs, 0 wrong shapes, nothing printed to stdout (where `toolkit predict`
writes its predictions); mutants that still compute the seed's math
(`same`) predict it exactly when they load. Allowed and counted: "different" (a flipped
mantissa bit in a weight is another valid model) and "nonfinite" (a finite weight near
float32's limit overflows to infinity, returned as the Predictor returns any overflow of
finite inputs; NaN or infinite weights themselves are refused at load). Figures are
printed (pytest -s shows them); seed 0's 150: 91 refused (all ModelLoadError), 53
correct, 5 different, 1 nonfinite.

A third as many mutants of a model exported with --explain run through explain() too
(right shapes for every output, or a clean refusal). Environment: TOOLKIT_CORPUS_MUTANTS
(default 150: about 8 s here, plus the seed model's export) runs more, e.g. 2000 (about
25 s) for a longer search; TOOLKIT_CORPUS_SEED (default 0) draws another corpus.
"""

from __future__ import annotations

import collections
import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from corpus_mutants import Mutant, generate

MUTANTS = int(os.environ.get("TOOLKIT_CORPUS_MUTANTS", "150"))
SEED = int(os.environ.get("TOOLKIT_CORPUS_SEED", "0"))
PER_WORKER = 40  # mutants per subprocess: start-up (~0.3 s) is paid once per batch
STALL_SECONDS = 30.0  # no line from a worker for this long: the current mutant hangs
WORKER = Path(__file__).with_name("corpus_worker.py")
ROOT = Path(__file__).resolve().parents[2]
FAILURES = ("traceback", "crash", "hang", "wrong shape", "lost", "stdout noise")


def run_workers(mutants: list[Mutant]) -> dict[int, dict[str, Any]]:
    """Every mutant's result; a worker that dies or stalls is restarted after its mutant."""
    results: dict[int, dict[str, Any]] = {}
    pending = list(mutants)
    while pending:
        batch = pending[:PER_WORKER]
        results.update(_run_worker(batch))
        pending = [m for m in pending if m.index not in results]
    return results


def _run_worker(batch: list[Mutant]) -> dict[int, dict[str, Any]]:
    with tempfile.TemporaryDirectory() as folder:
        listing = Path(folder) / "mutants.json"
        listing.write_text(json.dumps([[m.index, str(m.path)] for m in batch]))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(Path(folder) / "stderr", "w+") as stderr:
            process = subprocess.Popen(
                [sys.executable, str(WORKER), str(listing)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=env,
            )
            results, current, stalled = _read_lines(process)
            code = process.wait()
            stderr.seek(0)
            tail = stderr.read()[-2000:]
    if current is not None:  # began and never ended: the worker died or stalled on it
        if stalled:
            results[current] = {"outcome": "hang", "stage": "worker stalled"}
        elif code < 0:
            results[current] = {"outcome": "crash", "signal": -code, "stderr": tail}
        else:
            results[current] = {"outcome": "traceback", "exit": code, "stderr": tail}
    elif len(results) < len(batch):  # ended early without a mutant in progress
        results.update({m.index: {"outcome": "lost", "exit": code, "stderr": tail} for m in batch})
    return results


def _read_lines(process: subprocess.Popen) -> tuple[dict[int, dict], int | None, bool]:
    """(results, the mutant begun but not ended, whether the worker stalled and was killed)."""
    results: dict[int, dict] = {}
    noise: dict[int | None, list[str]] = {}
    current = None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + STALL_SECONDS
    while True:
        if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
            process.kill()
            return results, current, True
        line = process.stdout.readline()
        if not line:
            return results, current, False
        deadline = time.monotonic() + STALL_SECONDS
        try:
            report = json.loads(line)
        except ValueError:  # printed by something else: the CLI's stdout would carry it too
            noise.setdefault(current, []).append(line[:300])
            continue
        if "begin" in report:
            current = report["begin"]
        else:
            index = report.pop("index")
            if index in noise:
                report = {"outcome": "stdout noise", "printed": noise[index], "was": report}
            results[index] = report
            current = None


def summary(mutants: list[Mutant], results: dict[int, dict[str, Any]]) -> str:
    outcomes = collections.Counter(results[m.index]["outcome"] for m in mutants)
    by_kind: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for m in mutants:
        by_kind[m.kind][results[m.index]["outcome"]] += 1
    errors = collections.Counter(
        results[m.index].get("error") for m in mutants if results[m.index]["outcome"] == "refused"
    )
    lines = [
        f"corpus: {len(mutants)} mutants (seed {SEED}): "
        + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())),
        "refusals by error: " + ", ".join(f"{k} {v}" for k, v in errors.most_common()),
        *(f"  {kind}: {dict(counts)}" for kind, counts in sorted(by_kind.items())),
    ]
    return "\n".join(lines)


def problems(mutants: list[Mutant], results: dict[int, dict[str, Any]]) -> list[str]:
    found = []
    for m in mutants:
        result = results[m.index]
        wrong_math = m.same and result["outcome"] not in ("refused", "correct")
        if result["outcome"] in FAILURES or wrong_math:
            found.append(f"#{m.index} {m.kind} ({m.detail}): {json.dumps(result)[:1500]}")
    return found


@pytest.fixture(scope="module")
def corpus(seed_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list, dict]:
    mutants = generate(seed_onnx, tmp_path_factory.mktemp("corpus"), MUTANTS, SEED)
    return mutants, run_workers(mutants)


def test_every_mutant_is_refused_cleanly_or_predicts_right(corpus):
    mutants, results = corpus
    print("\n" + summary(mutants, results))
    assert len(results) == len(mutants)
    found = problems(mutants, results)
    assert found == [], f"{len(found)} mutant(s) failed:\n" + "\n".join(found)


def test_the_corpus_exercises_both_refusals_and_predictions(corpus):
    mutants, results = corpus
    outcomes = collections.Counter(results[m.index]["outcome"] for m in mutants)
    assert outcomes["refused"] >= len(mutants) // 4
    assert outcomes["correct"] >= len(mutants) // 10
    # Every mutant that still computes the seed's math and loads gives its answer.
    assert all(results[m.index]["outcome"] in ("refused", "correct") for m in mutants if m.same)


# Models exported with --explain (toolkit/runtime/explain.py): their extra outputs, the
# pruned prediction session and explain() must hold to the same rules. The math is not the
# seed's, so "different" is the expected outcome of a model that loads.
EXPLAIN_MUTANTS = max(MUTANTS // 3, 30)


def test_mutants_of_an_explain_model_are_refused_cleanly_or_explain_right(tmp_path):
    from explain_models import exported, make_data, trained

    x, y = make_data(rows=30, features=2, seed=11)
    model = exported(trained(tmp_path / "model", x, y, dtype="float32"))
    mutants = generate(model, tmp_path / "corpus", EXPLAIN_MUTANTS, SEED)
    results = run_workers(mutants)
    print("\n" + summary(mutants, results))
    failed = [
        f"#{m.index} {m.kind} ({m.detail}): {json.dumps(results[m.index])[:1500]}"
        for m in mutants
        if results[m.index]["outcome"] in FAILURES
    ]
    assert failed == []
    outcomes = collections.Counter(results[m.index]["outcome"] for m in mutants)
    assert outcomes["refused"] >= len(mutants) // 4 and outcomes["different"] >= 3
