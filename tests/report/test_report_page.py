"""toolkit/report/page.py: one self-contained, escaped HTML file, read without a browser.

The page is parsed with the standard library's HTMLParser: every reference must be a
data: URI or an anchor on the page, each image a PNG that decodes to a positive size,
and text from the data (column names) must arrive escaped. The browser's view of the
same promises is tests/report/test_report_browser.py.
"""

from __future__ import annotations

import base64
import struct
from html.parser import HTMLParser

import pytest
from report_data import fit, heteroskedastic

from toolkit.report import make_report, render
from toolkit.report.page import POLICY


class _Page(HTMLParser):
    """Every tag with its attributes, and the text of <style>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data


def _parsed(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def _png_size(uri: str) -> tuple[int, int]:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix), uri[:40]
    data = base64.b64decode(uri[len(prefix) :], validate=True)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def full_page(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A report with every section: inference, --data diagnostics, loss curves, ONNX."""
    from toolkit.export import export_model

    folder = tmp_path_factory.mktemp("page")
    result = fit(folder, *heteroskedastic(400, d=3, seed=21), solver="lbfgs", epochs=5)
    export_model(result.checkpoint, folder / "m.onnx")
    report = make_report(
        result.checkpoint, result.data, folder / "m.onnx", chunk_rows=128, sample_rows=300
    )
    return render(report, "html")


def test_every_reference_is_inline_and_every_image_a_png(full_page):
    page = _parsed(full_page)
    names = [tag for tag, _ in page.tags]
    assert not {"script", "link", "iframe", "object", "embed", "base"} & set(names)
    assert "url(" not in page.style and "@import" not in page.style
    policy = [a for t, a in page.tags if t == "meta" and a.get("http-equiv")]
    assert policy == [{"http-equiv": "Content-Security-Policy", "content": POLICY}]
    for tag, attrs in page.tags:
        for name in ("src", "href", "srcset", "poster", "data", "action"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith(("data:image/png;base64,", "#")), (tag, value[:60])
    images = [attrs["src"] for tag, attrs in page.tags if tag == "img"]
    # coefficients, predicted vs actual, residuals vs fitted, distribution, order, loss
    assert len(images) == 6
    for uri in images:
        width, height = _png_size(uri)
        assert width > 100 and height > 100


def test_every_section_is_there(full_page):
    ids = {attrs.get("id") for _, attrs in _parsed(full_page).tags}
    assert {"model", "target-0", "loss", "onnx", "glossary"} <= ids
    for heading in ("Coefficients", "Residual diagnostics", "Durbin-Watson", "Jarque-Bera"):
        assert heading in full_page


def test_text_from_the_data_is_escaped(tmp_path):
    x, y = heteroskedastic(60, d=2, seed=22)
    result = fit(tmp_path, x, y, name="odd")
    # Rename the columns to markup: a CSV header may hold anything.
    hostile = ['<img src="https://example.com/x.png">', "a&b"]
    text = result.data.read_text().splitlines()
    text[0] = ",".join(['"' + h.replace('"', '""') + '"' for h in hostile] + ["y"])
    data = tmp_path / "hostile.csv"
    data.write_text("\n".join(text) + "\n")
    from toolkit.training import TrainConfig, train

    train(TrainConfig(data=data, dtype="float64", out=tmp_path / "h.pt"))
    html = render(make_report(tmp_path / "h.pt", data, chunk_rows=100, sample_rows=50), "html")
    assert (
        hostile[0] not in html and "&lt;img src=&quot;https://example.com/x.png&quot;&gt;" in html
    )
    assert "a&amp;b" in html
    for tag, attrs in _parsed(html).tags:
        assert attrs.get("src") is None or attrs["src"].startswith("data:"), tag


def test_without_data_there_are_no_residual_plots_and_the_page_says_so(tmp_path):
    result = fit(tmp_path, *heteroskedastic(80, d=2, seed=23))
    html = render(make_report(result.checkpoint, chunk_rows=100, sample_rows=50), "html")
    images = [a for t, a in _parsed(html).tags if t == "img"]
    assert len(images) == 1  # the coefficient plot
    assert "Residual diagnostics" not in html
    assert "toolkit report --data PATH</code> with the training data" in html
