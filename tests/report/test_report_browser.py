"""The report opened in a real headless browser: it renders the leaderboard and
both charts, and loading it requests nothing from any network."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from promptopt.report import write_report
from tests.report import browser
from tests.report.fixtures import make_compare, make_run

SIZE = (1200, 2600)


@pytest.fixture(scope="module")
def chromium() -> str:
    return browser.chromium_or_skip()


@pytest.fixture(scope="module")
def compare_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(make_compare(tmp_path_factory.mktemp("cmp")))


class Elements(HTMLParser):
    """Every element's tag and attributes, and the text inside each table by id."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.tables: dict[str, str] = {}
        self._table: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.elements.append((tag, values))
        if tag == "table" and values.get("id"):
            self._table = values["id"]
            self.tables[self._table] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._table:
            self.tables[self._table] += data + " "


def parse(html: str) -> Elements:
    parser = Elements()
    parser.feed(html)
    return parser


def coloured_bands(png: Path) -> list[tuple[int, int, int]]:
    """(top, bottom, coloured pixels) of each horizontal band holding saturated pixels.

    The page's own CSS is greys only, so saturated pixels can only come from the
    charts' data (points, lines, bars); gaps under 40 px join one band.
    """
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    coloured = (rgb.max(axis=2) - rgb.min(axis=2)) > 80
    per_row = coloured.sum(axis=1)
    bands, start, last = [], None, -100
    for y in np.flatnonzero(per_row):
        if start is None or y - last > 40:
            if start is not None:
                bands.append((start, last, int(per_row[start : last + 1].sum())))
            start = y
        last = y
    if start is not None:
        bands.append((start, last, int(per_row[start : last + 1].sum())))
    return [b for b in bands if b[1] - b[0] >= 80 and b[2] >= 500]


def test_the_browser_shows_the_leaderboard_table_and_embedded_charts(
    chromium: str, compare_report: Path
) -> None:
    dom = parse(browser.dump_dom(chromium, compare_report))
    board = dom.tables["leaderboard-table"]
    for text in ("ape", "reflexion", "rlprompt", "0.750 ± 0.050", "yes (alpha 0.05)", "0.012"):
        assert text in board
    images = [attrs for tag, attrs in dom.elements if tag == "img"]
    assert len(images) == 2
    assert all(a["src"].startswith("data:image/png;base64,") for a in images)
    assert "failed-table" in dom.tables and "runs-table" in dom.tables


def test_the_screenshot_shows_both_charts_rendered(
    chromium: str, compare_report: Path, tmp_path: Path
) -> None:
    shot = browser.screenshot(chromium, compare_report, tmp_path / "report.png", SIZE)
    rgb = np.asarray(Image.open(shot).convert("RGB"))
    assert rgb.shape[:2] == (SIZE[1], SIZE[0])
    assert (rgb.max(axis=2) < 100).mean() > 0.002, "no text: a blank page"
    bands = coloured_bands(shot)
    assert len(bands) >= 2, f"expected the leaderboard and score charts, found bands {bands}"

    # Control: the same page without its images has no coloured band, so the bands
    # above are the charts, not the page's styling.
    blank = tmp_path / "no-images.html"
    html = compare_report.read_text(encoding="utf-8")
    blank.write_text(re.sub(r"src='data:[^']*'", "src=''", html), encoding="utf-8")
    assert coloured_bands(browser.screenshot(chromium, blank, tmp_path / "blank.png", SIZE)) == []


def test_opening_the_report_requests_nothing(
    chromium: str, compare_report: Path, tmp_path: Path
) -> None:
    assert browser.page_requests(chromium, compare_report, tmp_path / "net.json") == []

    # Control: the detector does see a page's request (no CSP, an external image).
    leaky = tmp_path / "leaky.html"
    html = re.sub(
        r"<meta http-equiv='Content-Security-Policy'[^>]*>", "", compare_report.read_text()
    )
    html = html.replace("<body>", "<body><img src='http://127.0.0.1:9/probe.png'>", 1)
    leaky.write_text(html, encoding="utf-8")
    requested = browser.page_requests(chromium, leaky, tmp_path / "leaky.json")
    assert "http://127.0.0.1:9/probe.png" in requested


def test_a_run_report_renders_its_chart_and_failed_examples(chromium: str, tmp_path: Path) -> None:
    page = write_report(make_run(tmp_path / "run"))
    dom = parse(browser.dump_dom(chromium, page))
    images = [attrs for tag, attrs in dom.elements if tag == "img"]
    assert [a["src"][:22] for a in images] == ["data:image/png;base64,"]
    assert "guess 1" in dom.tables["failed-table"]
