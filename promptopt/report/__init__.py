"""`promptopt report`: one self-contained HTML page (plus its PNG charts) for a
search run directory or a compare directory.

    write_report(path)          -> PATH/report/report.html
    write_report(path, out=DIR) -> DIR/report.html

`search` and `compare` call `write_report` at their end; `promptopt report`
calls it for any run or compare directory, including older and interrupted ones.
"""

from __future__ import annotations

from pathlib import Path

from promptopt.report.compare_content import compare_report
from promptopt.report.content import Report, run_report
from promptopt.report.loading import CompareData, load

REPORT_FILE = "report.html"

__all__ = ["REPORT_FILE", "build_report", "write_report"]


def build_report(path: Path) -> Report:
    """The report of a run or compare directory, in memory (raises ConfigError when
    `path` is neither)."""
    data = load(path)
    return compare_report(data) if isinstance(data, CompareData) else run_report(data)


def write_report(path: Path, out: Path | None = None) -> Path:
    """Write report.html and its PNG charts to `out` (default PATH/report/); return
    the HTML file's path."""
    report = build_report(Path(path))
    base = Path(path)
    if base.is_file():
        base = base.parent
    out = Path(out) if out is not None else base / "report"
    out.mkdir(parents=True, exist_ok=True)
    for name, png in report.images.items():
        (out / name).write_bytes(png)
    target = out / REPORT_FILE
    target.write_text(report.html(), encoding="utf-8")
    return target
