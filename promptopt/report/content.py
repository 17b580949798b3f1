"""What a report says: the sections of a run report and of a comparison report.

Each section either shows its part or, when the data for it is missing (an
interrupted run, a run from before candidate events, a compare whose run
folders were not copied), says so in a note in its place; nothing here raises
on missing or malformed fields, because a report of a broken run is when a
report is needed most.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from promptopt.report import html as h
from promptopt.report.format import (
    budget_text,
    clip,
    diff_text,
    dig,
    fixed,
    model_text,
    score_n_text,
    timings_text,
    usage_text,
)
from promptopt.report.loading import RunData, failed_examples
from promptopt.report.plots import CurveGroup, score_vs_calls

MAX_FAILED_ROWS = 100
MAX_CANDIDATE_ROWS = 20


@dataclass
class Report:
    title: str
    subtitle: str
    sections: list[str] = field(default_factory=list)
    images: dict[str, bytes] = field(default_factory=dict)
    """PNG files to write beside report.html (they are also embedded in it)."""

    def html(self) -> str:
        return h.page(self.title, self.subtitle, self.sections)


# -- a single run -----------------------------------------------------------------------
def run_report(run: RunData) -> Report:
    task = run.config.get("task") or dig(run.result, "task", "name") or "?"
    report = Report(f"promptopt report: {task}, {run.label}", f"run directory {run.path}")
    report.sections.append(h.section("Summary", run_summary(run), id="summary"))
    budget = dig(run.config, "budget", "max_calls")
    curve = curve_section(
        [CurveGroup(str(run.config.get("strategy", "run")), [run.candidates])],
        budget if isinstance(budget, int) else None,
        report,
        [] if run.candidates else [no_candidates_note(run)],
    )
    report.sections.append(curve)
    report.sections.append(h.section("Best prompt", best_prompt(run), id="best-prompt"))
    report.sections.append(
        h.section("Candidates (dev)", _candidate_table(run.result), id="leaderboard")
    )
    report.sections.append(
        h.section("Failed test examples", failed_table(run), id="failed-examples")
    )
    if run.notes:
        report.sections.append(h.section("Missing data", *map(h.note, run.notes), id="notes"))
    return report


def run_summary(run: RunData) -> str:
    config, result = run.config, run.result
    items: list[tuple[str, object]] = [
        ("task", config.get("task") or dig(result, "task", "name")),
        ("strategy", config.get("strategy") or dig(result, "strategy", "name")),
        ("seed", config.get("seed", dig(result, "seed"))),
        (
            "target model",
            model_text(config.get("target")) or dig(result, "models", "target", "spec"),
        ),
        ("proposer model", model_text(config.get("proposer"))),
        ("budget", budget_text(config.get("budget"))),
    ]
    if result is None:
        return h.key_values(items) + h.note(
            "No result.json: the search did not finish (or was written by an older promptopt), "
            "so there are no test scores. Resume it with `promptopt search --resume DIR`."
        )
    test = dig(result, "scores", "test")
    base = dig(result, "scores", "baseline_test")
    items += [
        ("test score", score_n_text(test)),
        ("baseline test score", score_n_text(base)),
        ("difference", diff_text(dig(test, "score"), dig(base, "score"))),
        ("dev score", score_n_text(dig(result, "scores", "dev") or dig(result, "scores", "pool"))),
        ("stopped by budget", "yes" if result.get("stopped_by_budget") else "no"),
        ("usage (search)", usage_text(dig(result, "usage", "search"))),
        ("usage (test scoring)", usage_text(dig(result, "usage", "test_eval"))),
        ("time", timings_text(result.get("timings"))),
    ]
    return h.key_values([(k, v) for k, v in items if v not in (None, "")])


def no_candidates_note(run: RunData) -> str:
    return (
        f"{run.label}: no candidate events in events.jsonl (the run predates them, or "
        "scored no candidate before it stopped), so there is no search curve."
    )


def best_prompt(run: RunData) -> str:
    result = run.result
    if result is None:
        return h.note("No result.json: the best prompt is not known yet.")
    ensemble = result.get("ensemble")
    if isinstance(ensemble, dict):
        members = ensemble.get("members") or []
        parts = [
            h.para(
                f"An ensemble of {len(members)} prompts, {ensemble.get('samples')} sample(s) "
                f"each, {ensemble.get('vote')} vote."
            )
        ]
        for index, member in enumerate(members, 1):
            demos = len(member.get("demonstrations") or []) if isinstance(member, dict) else 0
            parts.append(h.para(f"Member {index} ({demos} demonstrations):"))
            parts.append(h.prompt_block(str(dig(member, "instruction") or "")))
        return "\n".join(parts)
    prompt = result.get("prompt")
    if not isinstance(prompt, dict):
        return h.note("result.json holds no prompt.")
    demos = len(prompt.get("demonstrations") or [])
    calibrated = (
        " Label scores calibrated by the prompt's label prior." if prompt.get("calibration") else ""
    )
    return "\n".join(
        [
            h.prompt_block(str(prompt.get("instruction") or "")),
            h.para(f"Template: {prompt.get('template')!s}"),
            h.para(f"{demos} demonstration(s).{calibrated}"),
        ]
    )


def _candidate_table(result: dict[str, Any] | None) -> str:
    rows = dig(result, "leaderboard")
    if not isinstance(rows, list) or not rows:
        return h.note("No candidate leaderboard: result.json is missing or lists none.")
    shown = [r for r in rows if isinstance(r, dict)][:MAX_CANDIDATE_ROWS]
    table = h.table(
        ["#", "instruction", "dev score", "dev n", "origin"],
        [
            [
                h.Cell(i, "num"),
                h.Cell(clip(r.get("instruction")), "text"),
                h.Cell(fixed(r.get("dev_score")), "num"),
                h.Cell(r.get("dev_n"), "num"),
                r.get("origin"),
            ]
            for i, r in enumerate(shown, 1)
        ],
        highlight=[True],
    )
    more = f" (top {len(shown)} of {len(rows)})" if len(rows) > len(shown) else ""
    return h.para(f"Every candidate the search kept, best first{more}.") + table


def failed_table(run: RunData) -> str:
    if run.test_examples is None:
        return h.note(
            "No test_examples.json: this run was written before per-example test results "
            "were kept (or did not finish), so failed examples cannot be listed."
        )
    rows = run.test_examples.get("best") or []
    baseline = {r.get("id"): r.get("score") for r in run.test_examples.get("baseline") or []}
    failed = failed_examples(rows)
    if not rows:
        return h.note("test_examples.json lists no test examples.")
    if not failed:
        return h.para(f"The best prompt got all {len(rows)} test examples right.")
    shown = failed[:MAX_FAILED_ROWS]
    more = f"; the first {len(shown)} are shown" if len(failed) > len(shown) else ""
    intro = h.para(
        f"{len(failed)} of {len(rows)} test examples without full credit{more}. "
        "'baseline' is the baseline prompt's score on the same example."
    )
    table = h.table(
        ["id", "input", "target", "prediction", "score", "baseline"],
        [
            [
                r.get("id"),
                h.Cell(clip(r.get("input")), "text"),
                h.Cell(clip(r.get("target")), "text"),
                h.Cell(clip(r.get("prediction")), "text"),
                h.Cell(fixed(r.get("score")), "num"),
                h.Cell(fixed(baseline.get(r.get("id"))), "num"),
            ]
            for r in shown
        ],
        id="failed-table",
    )
    return intro + table


# -- shared -----------------------------------------------------------------------------
def curve_section(
    groups: list[CurveGroup], max_calls: int | None, report: Report, notes: list[str]
) -> str:
    parts = []
    if any(points for g in groups for points in g.runs):
        png = score_vs_calls(groups, max_calls)
        report.images["score_vs_calls.png"] = png
        parts.append(
            h.figure(
                png,
                "candidate dev scores against model calls",
                "Points: each candidate's dev score when it was scored (again when rescored on "
                "more dev examples). Lines: the best dev score so far, each candidate at its "
                "latest estimate, per run. x: model calls the search had spent.",
                id="score-plot",
            )
        )
        if all(p.calls == 0 for g in groups for points in g.runs for p in points):
            notes = notes + [
                "Every candidate was scored at 0 model calls: the run was answered from the "
                "cache by a promptopt that did not count cache hits as calls. Rerun it for "
                "a curve."
            ]
    elif not notes:
        notes = ["No candidate events to plot."]
    parts += [h.note(n) for n in notes]
    return h.section("Search: score against model calls", *parts, id="search-curve")
