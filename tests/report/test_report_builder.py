"""The report builder on hand-made run and compare directories (fast, no browser)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from promptopt.cli import app
from promptopt.core.errors import ConfigError
from promptopt.report import write_report
from promptopt.report.loading import CandidatePoint
from promptopt.report.plots import best_so_far
from tests.report.fixtures import NASTY, add_start_row, make_compare, make_run, write_json

PNG = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


class Resources(HTMLParser):
    """Every attribute that can make a browser fetch something, and every tag."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for key, value in attrs:
            if key in ("src", "href", "srcset", "action", "poster", "data"):
                self.urls.append(value or "")


def resources(html: str) -> Resources:
    parser = Resources()
    parser.feed(html)
    return parser


def assert_self_contained(html: str) -> None:
    found = resources(html)
    assert "script" not in found.tags and "link" not in found.tags and "iframe" not in found.tags
    assert all(url.startswith("data:image/png;base64,") for url in found.urls), found.urls
    assert "url(" not in html and "@import" not in html
    assert "Content-Security-Policy" in html


# -- a run ----------------------------------------------------------------------------
def test_run_report_has_chart_prompt_scores_candidates_and_failed_examples(
    tmp_path: Path,
) -> None:
    page = write_report(make_run(tmp_path / "run"))
    assert page == tmp_path / "run" / "report" / "report.html"
    html = page.read_text(encoding="utf-8")
    assert (page.parent / "score_vs_calls.png").read_bytes().startswith(PNG)
    assert not (page.parent / "leaderboard.png").exists()
    assert html.count("data:image/png;base64,") == 1
    assert "Write the opposite (ape)." in html
    assert "0.600 on 10 examples" in html and "0.200 on 10 examples" in html  # test vs baseline
    assert "+0.400" in html
    assert "40 calls, 3200 tokens, 3 cache hits" in html
    assert "5 of 10 test examples without full credit" in html
    assert "guess 1" in html and "guess 2" not in html  # only failed examples
    assert "Missing data" not in html
    assert_self_contained(html)


def test_model_text_is_escaped_everywhere(tmp_path: Path) -> None:
    html = write_report(make_run(tmp_path / "run", nasty=True)).read_text(encoding="utf-8")
    assert "<script" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quotes&quot;" in html
    assert NASTY not in html
    assert_self_contained(html)


def test_out_puts_the_report_elsewhere(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    page = write_report(run, tmp_path / "elsewhere")
    assert page == tmp_path / "elsewhere" / "report.html"
    assert (tmp_path / "elsewhere" / "score_vs_calls.png").is_file()
    assert not (run / "report").exists()


def test_a_run_from_before_candidate_events_and_test_examples_gets_notes(tmp_path: Path) -> None:
    page = write_report(make_run(tmp_path / "old", candidates=False, examples=False))
    html = page.read_text(encoding="utf-8")
    assert "no candidate events in events.jsonl" in html
    assert "No test_examples.json" in html
    assert "data:image" not in html and not (page.parent / "score_vs_calls.png").exists()
    assert "Write the opposite (ape)." in html  # what is there is still shown
    assert_self_contained(html)


def test_an_interrupted_run_with_only_config_and_events_gets_a_report(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", result=False, examples=False)
    html = write_report(run).read_text(encoding="utf-8")
    assert "No result.json: the search did not finish" in html
    assert "data:image/png" in html  # its candidates so far are still plotted
    assert "best prompt is not known yet" in html


def test_torn_and_malformed_files_become_notes(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    with (run / "events.jsonl").open("a") as handle:
        handle.write('{"event": "candidate", "dev_score": 0.5}\n{"t": 9, "ev')  # no calls; torn
    (run / "result.json").write_text("{not json", encoding="utf-8")
    write_json(run / "test_examples.json", {"best": "oops"})
    html = write_report(run).read_text(encoding="utf-8")
    assert "1 candidate event(s) carry no call count" in html
    assert "result.json is unreadable or torn" in html
    assert "test_examples.json is not in the expected shape" in html


def test_all_candidates_from_the_cache_are_explained(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    lines = (run / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) | {"calls": 0} for line in lines]
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    html = write_report(run).read_text(encoding="utf-8")
    assert "Every candidate was scored at 0 model calls" in html


def test_an_ensemble_export_shows_its_members(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", strategy="boosted")
    result = json.loads((run / "result.json").read_text())
    prompt = result.pop("prompt")
    result["kind"] = "ensemble"
    result["ensemble"] = {
        "members": [prompt, prompt | {"demonstrations": [{}]}],
        "vote": "plurality",
        "samples": 3,
    }
    write_json(run / "result.json", result)
    html = write_report(run).read_text(encoding="utf-8")
    assert "An ensemble of 2 prompts, 3 sample(s) each, plurality vote." in html
    assert "Member 2 (1 demonstrations)" in html


# -- a comparison ---------------------------------------------------------------------
def test_compare_report_has_both_charts_and_the_leaderboard_with_significance(
    tmp_path: Path,
) -> None:
    page = write_report(make_compare(tmp_path / "cmp"))
    html = page.read_text(encoding="utf-8")
    for name in ("leaderboard.png", "score_vs_calls.png"):
        assert (page.parent / name).read_bytes().startswith(PNG)
    assert html.count("data:image/png;base64,") == 2
    board = html[html.index("id='leaderboard-table'") :]
    board = board[: board.index("</table>")]
    assert board.index("ape") < board.index("reflexion") < board.index("rlprompt")
    assert "-0.200 [-0.300, -0.100]" in board and "no (alpha 0.05)" in board
    assert "-0.400 [-0.500, -0.300]" in board and "yes (alpha 0.05)" in board
    assert "0.012" in board and "bootstrap, n=30" in board
    assert "From the best strategy&#x27;s best seed: ape seed 2 (test 0.800" in html
    assert "id='failed-table'" in html and "id='runs-table'" in html
    assert_self_contained(html)


def test_compare_with_missing_run_dirs_and_no_candidate_events(tmp_path: Path) -> None:
    cmp = make_compare(
        tmp_path / "cmp", missing_runs=("ape-seed2", "rlprompt-seed0"), candidates=False
    )
    html = write_report(cmp).read_text(encoding="utf-8")
    assert "run directory of ape seed 2 (runs/ape-seed2) is missing" in html
    assert "runs/rlprompt-seed0 (missing)" in html
    assert "best run&#x27;s directory is missing" in html  # ape seed 2 is the best run
    assert html.count("data:image/png;base64,") == 1  # the leaderboard chart only
    assert "no candidate events in events.jsonl" in html


def test_compare_report_shows_the_start_row_and_the_tests_against_it(tmp_path: Path) -> None:
    cmp = add_start_row(make_compare(tmp_path / "cmp"), warnings=("start scores <differ>",))
    page = write_report(cmp)
    html = page.read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 2  # the start has no curve of its own
    board = html[html.index("id='leaderboard-table'") :]
    board = board[: board.index("</table>")]
    assert "start (baseline)" in board and "vs start" in board
    # each seed: the best prompt is right on t2, t4, t6, t8 where the start is wrong, the
    # start right on t5 alone: 12 against 3 over three seeds, 2 P(X >= 12 | 15) = 0.0352
    assert "+0.300, p=0.0352 BETTER" in board
    summary = html[html.index("id='summary'") : html.index("id='leaderboard'")]
    assert "ape, reflexion, rlprompt" in summary and "0.200" in summary
    assert "start scores &lt;differ&gt;" in summary  # the warning, escaped
    assert_self_contained(html)


def test_a_compare_json_file_stands_for_its_folder(tmp_path: Path) -> None:
    cmp = make_compare(tmp_path / "cmp", strategies=("ape",), seeds=(0,))
    assert write_report(cmp / "compare.json") == cmp / "report" / "report.html"


def test_an_empty_leaderboard_is_a_note(tmp_path: Path) -> None:
    write_json(tmp_path / "compare.json", {"format": "promptopt.compare", "task": "t"})
    html = write_report(tmp_path).read_text(encoding="utf-8")
    assert "compare.json holds no leaderboard" in html and "compare.json lists no runs" in html


# -- bad input ------------------------------------------------------------------------
def test_a_folder_that_is_neither_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither a search run directory .* nor a compare"):
        write_report(tmp_path)
    write_json(tmp_path / "compare.json", {"format": "something else"})
    with pytest.raises(ConfigError, match="not a promptopt comparison"):
        write_report(tmp_path)


@pytest.mark.parametrize("name", ["missing", "empty"])
def test_cli_bad_path_is_one_line_and_exit_2(tmp_path: Path, name: str) -> None:
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["report", str(tmp_path / name)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and ": pass " in lines[0]


def test_cli_writes_the_report_and_prints_where(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    result = runner.invoke(app, ["report", str(run), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert str(tmp_path / "out" / "report.html") in result.output.replace("\n", "")
    assert (tmp_path / "out" / "report.html").is_file()


# -- the chart's line -----------------------------------------------------------------
def test_best_so_far_counts_each_candidate_at_its_latest_estimate() -> None:
    def point(calls: int, score: float, name: str) -> CandidatePoint:
        return CandidatePoint(calls, score, 4, "proposed", name)

    steps = best_so_far(
        [point(5, 0.2, "a"), point(5, 1.0, "b"), point(9, 0.5, "b"), point(12, 0.7, "c")]
    )
    assert steps == [(5, 0.2), (5, 1.0), (9, 0.5), (12, 0.7)]
