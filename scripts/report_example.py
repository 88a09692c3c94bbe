"""The README's report example, end to end, and its screenshot (docs/report.png).

Writes a seeded table of 5,000 house sales whose price noise grows with the area
(heteroskedastic, so the HC standard errors differ from the classical ones), then runs
the real commands and prints the text report:

    toolkit train  --data houses.csv --target price_k --solver sgd --dtype float64 --out houses.pt
    toolkit export houses.onnx --checkpoint houses.pt
    toolkit report --checkpoint houses.pt --data houses.csv --model houses.onnx --out report.html
    toolkit report --checkpoint houses.pt --data houses.csv --format text

and, where playwright and a Chromium are installed, screenshots the page's first target
section in headless Chromium (1000 px wide, palette PNG) to --screenshot.

    .venv/bin/python scripts/report_example.py                       # in a temporary folder
    .venv/bin/python scripts/report_example.py --out-dir /tmp/houses --screenshot docs/report.png
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ROWS = 5_000
SEED = 2024


def write_houses(path: Path) -> None:
    """area_m2, rooms, age_years, distance_km -> price_k (thousands), noise ~ area."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    rng = np.random.default_rng(SEED)
    area = rng.uniform(40, 220, ROWS).round(1)
    rooms = np.clip(np.round(area / 32 + rng.normal(0, 0.8, ROWS)), 1, 8)
    age = rng.uniform(0, 80, ROWS).round(0)
    distance = rng.exponential(8, ROWS).round(2)
    noise = rng.normal(0, 1, ROWS) * (5 + 0.25 * area)
    price = 60 + 3.1 * area + 9.5 * rooms - 0.8 * age - 4.2 * distance + noise
    table = {
        "area_m2": area,
        "rooms": rooms,
        "age_years": age,
        "distance_km": distance,
        "price_k": price.round(1),
    }
    pa_csv.write_csv(pa.table(table), path)


def toolkit(*args: str, cwd: Path) -> str:
    """Run the toolkit command line of this checkout; its stdout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "toolkit", *args]
    print("$ toolkit " + " ".join(args), file=sys.stderr)
    return subprocess.run(
        command, cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


def screenshot(page: Path, out: Path) -> bool:
    """The first target section of the page as a palette PNG; False without a browser."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return False
    chromium = os.environ.get("TOOLKIT_TEST_CHROMIUM") or shutil.which("chromium")
    if not chromium:
        return False
    from PIL import Image

    raw = out.with_suffix(".raw.png")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            view = browser.new_page(viewport={"width": 1000, "height": 1000})
            view.route(
                "**/*",
                lambda r: (
                    r.continue_() if r.request.url.startswith(("file:", "data:")) else r.abort()
                ),
            )
            view.goto(page.resolve().as_uri(), wait_until="load")
            box = view.locator("#target-0").bounding_box()
            assert box is not None
            clip = {"x": 0, "y": box["y"] - 10, "width": 1000, "height": 1380}
            view.screenshot(path=str(raw), clip=clip, full_page=True)
        finally:
            browser.close()
    Image.open(raw).convert("RGB").quantize(colors=96).save(out, optimize=True)
    raw.unlink()
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, help="work here and keep the files")
    parser.add_argument("--screenshot", type=Path, help="write the page's screenshot here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="report-example-") as tmp:
        work = args.out_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        write_houses(work / "houses.csv")
        data = ["--data", "houses.csv"]
        toolkit("train", *data, "--target", "price_k", "--solver", "sgd", "--dtype", "float64",
                "--out", "houses.pt", "--quiet", cwd=work)  # fmt: skip
        toolkit("export", "houses.onnx", "--checkpoint", "houses.pt", cwd=work)
        report = ["report", "--checkpoint", "houses.pt", *data]
        toolkit(*report, "--model", "houses.onnx", "--out", "report.html", "--quiet", cwd=work)
        print(toolkit(*report, "--format", "text", cwd=work))
        if args.screenshot is not None:
            target = args.screenshot.resolve()
            if screenshot(work / "report.html", target):
                print(f"screenshot: {target} ({target.stat().st_size:,} bytes)", file=sys.stderr)
            else:
                print("no screenshot: needs playwright and a Chromium", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
