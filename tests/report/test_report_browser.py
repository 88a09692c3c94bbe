"""The report in a real browser: headless Chromium opens the file and nothing else.

Every request the page makes is routed through the test: only the file itself (file://)
and data: URIs may load; anything else is aborted and recorded, and the test fails. The
page must render every image (naturalWidth > 0), log no error (a Content-Security-Policy
violation is one), and a full-page screenshot is kept as an artifact: in
$TOOLKIT_ARTIFACTS when set (CI uploads it), else in pytest's tmp_path; its path is
printed. Skipped, with the reason, only where playwright or a Chromium is missing
(`pip install playwright` and Debian's `chromium`, or TOOLKIT_TEST_CHROMIUM=path), as
tests/serve/test_docs.py is.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from report_data import fit, heteroskedastic

from toolkit.report import make_report, write_report

BROWSER_TIMEOUT_MS = 20_000
SCREENSHOT = "report.png"


def _artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("TOOLKIT_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def report_file(tmp_path: Path) -> Path:
    """A report with every section: inference, diagnostics, loss curves, ONNX parity."""
    from toolkit.export import export_model

    result = fit(tmp_path, *heteroskedastic(500, d=3, seed=31), solver="lbfgs", epochs=6)
    export_model(result.checkpoint, tmp_path / "m.onnx")
    report = make_report(
        result.checkpoint, result.data, tmp_path / "m.onnx", chunk_rows=128, sample_rows=500
    )
    write_report(report, tmp_path / "report.html", "html")
    return tmp_path / "report.html"


@pytest.mark.slow  # a browser start and a 6-epoch lbfgs fit: ~5-10 s on 2 busy cores
def test_the_report_renders_offline_with_every_image(report_file, tmp_path, chromium):
    executable = chromium
    from playwright.sync_api import sync_playwright

    url = report_file.resolve().as_uri()
    requested: list[str] = []
    outside: list[str] = []
    errors: list[str] = []

    def route(route_: object) -> None:
        target = route_.request.url  # type: ignore[attr-defined]
        if target == url or target.startswith("data:"):
            route_.continue_()  # type: ignore[attr-defined]
        else:
            outside.append(target)
            route_.abort()  # type: ignore[attr-defined]

    screenshot = _artifacts(tmp_path) / SCREENSHOT
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.route("**/*", route)
            page.on("request", lambda request: requested.append(request.url))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url, wait_until="load", timeout=BROWSER_TIMEOUT_MS)
            images = page.evaluate(
                "() => Array.from(document.images, i => [i.complete, i.naturalWidth,"
                " i.naturalHeight, i.getBoundingClientRect().width])"
            )
            title = page.title()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    print(f"\nreport screenshot: {screenshot}")
    assert outside == [], f"requests left the file: {outside}"
    assert all(r == url or r.startswith("data:") for r in requested), requested
    assert errors == []
    assert title.startswith("toolkit report: ")
    assert len(images) == 6  # coefficients, 4 residual figures, loss curves
    for complete, width, height, shown in images:
        assert complete and width > 0 and height > 0 and shown > 0
    assert screenshot.stat().st_size > 10_000
