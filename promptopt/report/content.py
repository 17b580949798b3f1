"""What a report says: the sections of a run report and of a comparison report.

Each section either shows its part or, when the data for it is missing (an
interrupted run, a run from before candidate events, a compare whose run
folders were not copied), says so in a note in its place; nothing here raises
on missing or malformed fields, because a report of a broken run is when a
report is needed most.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from promptopt.report import html as h
from promptopt.report.loading import CompareData, RunData, failed_examples
from promptopt.report.plots import CurveGroup, LeaderboardBar, leaderboard_chart, score_vs_calls

MAX_FAILED_ROWS = 100
MAX_CANDIDATE_ROWS = 20
TEXT_CHARS = 600


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
    task = run.config.get("task") or _get(run.result, "task", "name") or "?"
    report = Report(f"promptopt report: {task}, {run.label}", f"run directory {run.path}")
    report.sections.append(h.section("Summary", _run_summary(run), id="summary"))
    budget = _get(run.config, "budget", "max_calls")
    curve = _curve_section(
        [CurveGroup(str(run.config.get("strategy", "run")), [run.candidates])],
        budget if isinstance(budget, int) else None,
        report,
        [] if run.candidates else [_no_candidates_note(run)],
    )
    report.sections.append(curve)
    report.sections.append(h.section("Best prompt", _best_prompt(run), id="best-prompt"))
    report.sections.append(
        h.section("Candidates (dev)", _candidate_table(run.result), id="leaderboard")
    )
    report.sections.append(
        h.section("Failed test examples", _failed_table(run), id="failed-examples")
    )
    if run.notes:
        report.sections.append(h.section("Missing data", *map(h.note, run.notes), id="notes"))
    return report


def _run_summary(run: RunData) -> str:
    config, result = run.config, run.result
    items: list[tuple[str, object]] = [
        ("task", config.get("task") or _get(result, "task", "name")),
        ("strategy", config.get("strategy") or _get(result, "strategy", "name")),
        ("seed", config.get("seed", _get(result, "seed"))),
        ("target model", _model(config.get("target")) or _get(result, "models", "target", "spec")),
        ("proposer model", _model(config.get("proposer"))),
        ("budget", _budget(config.get("budget"))),
    ]
    if result is None:
        return h.key_values(items) + h.note(
            "No result.json: the search did not finish (or was written by an older promptopt), "
            "so there are no test scores. Resume it with `promptopt search --resume DIR`."
        )
    test = _get(result, "scores", "test")
    base = _get(result, "scores", "baseline_test")
    items += [
        ("test score", _score_n(test)),
        ("baseline test score", _score_n(base)),
        ("difference", _diff(_get(test, "score"), _get(base, "score"))),
        ("dev score", _score_n(_get(result, "scores", "dev") or _get(result, "scores", "pool"))),
        ("stopped by budget", "yes" if result.get("stopped_by_budget") else "no"),
        ("usage (search)", _usage(_get(result, "usage", "search"))),
        ("usage (test scoring)", _usage(_get(result, "usage", "test_eval"))),
        ("time", _timings(result.get("timings"))),
    ]
    return h.key_values([(k, v) for k, v in items if v not in (None, "")])


def _no_candidates_note(run: RunData) -> str:
    return (
        f"{run.label}: no candidate events in events.jsonl (the run predates them, or "
        "scored no candidate before it stopped), so there is no search curve."
    )


def _best_prompt(run: RunData) -> str:
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
            parts.append(h.prompt_block(str(_get(member, "instruction") or "")))
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
    rows = _get(result, "leaderboard")
    if not isinstance(rows, list) or not rows:
        return h.note("No candidate leaderboard: result.json is missing or lists none.")
    shown = [r for r in rows if isinstance(r, dict)][:MAX_CANDIDATE_ROWS]
    table = h.table(
        ["#", "instruction", "dev score", "dev n", "origin"],
        [
            [
                h.Cell(i, "num"),
                h.Cell(_clip(r.get("instruction")), "text"),
                h.Cell(_f(r.get("dev_score")), "num"),
                h.Cell(r.get("dev_n"), "num"),
                r.get("origin"),
            ]
            for i, r in enumerate(shown, 1)
        ],
        highlight=[True],
    )
    more = f" (top {len(shown)} of {len(rows)})" if len(rows) > len(shown) else ""
    return h.para(f"Every candidate the search kept, best first{more}.") + table


def _failed_table(run: RunData) -> str:
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
                h.Cell(_clip(r.get("input")), "text"),
                h.Cell(_clip(r.get("target")), "text"),
                h.Cell(_clip(r.get("prediction")), "text"),
                h.Cell(_f(r.get("score")), "num"),
                h.Cell(_f(baseline.get(r.get("id"))), "num"),
            ]
            for r in shown
        ],
        id="failed-table",
    )
    return intro + table


# -- a comparison -----------------------------------------------------------------------
def compare_report(data: CompareData) -> Report:
    c = data.compare
    report = Report(
        f"promptopt comparison: {c.get('task', '?')}",
        f"compare directory {data.path}",
    )
    leaderboard = [r for r in c.get("leaderboard") or [] if isinstance(r, dict)]
    report.sections.append(h.section("Summary", _compare_summary(c, leaderboard), id="summary"))
    report.sections.append(_leaderboard_section(data, leaderboard, report))
    order = [str(r.get("strategy")) for r in _strategies(leaderboard)]
    for entry, _ in data.runs:
        if str(entry.get("strategy")) not in order:
            order.append(str(entry.get("strategy")))
    groups, notes = [], list(data.notes)
    for strategy in order:
        runs = [run for e, run in data.runs if str(e.get("strategy")) == strategy and run]
        groups.append(CurveGroup(strategy, [r.candidates for r in runs]))
        notes += [_no_candidates_note(r) for r in runs if not r.candidates]
    max_calls = _get(c, "budget", "max_calls")
    report.sections.append(
        _curve_section(groups, max_calls if isinstance(max_calls, int) else None, report, notes)
    )
    best_entry, best_run = _best_run(data, leaderboard)
    if best_run is None:
        missing = h.note(
            "The best run's directory is missing, so its prompt and failed test examples "
            "cannot be shown."
        )
        report.sections.append(h.section("Best prompt", missing, id="best-prompt"))
    else:
        intro = h.para(
            f"From the best strategy's best seed: {best_run.label} "
            f"(test {_f(best_entry.get('test_score'))}, "
            f"baseline {_f(best_entry.get('baseline_test_score'))})."
        )
        report.sections.append(
            h.section(
                "Best prompt",
                intro,
                _best_prompt(best_run),
                _run_summary(best_run),
                id="best-prompt",
            )
        )
        report.sections.append(
            h.section("Failed test examples", _failed_table(best_run), id="failed-examples")
        )
    report.sections.append(h.section("Runs", _runs_table(data), id="runs"))
    return report


def _strategies(leaderboard: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The strategy rows: compare.json also ranks the starting prompt (kind "start"),
    which has no runs or search curve of its own."""
    return [r for r in leaderboard if r.get("kind", "strategy") == "strategy"]


def _compare_summary(c: dict[str, Any], leaderboard: list[dict[str, Any]]) -> str:
    best = next((r.get("strategy") for r in leaderboard if r.get("best")), None)
    start = next((r for r in leaderboard if r.get("kind") == "start"), None)
    settings = c.get("settings") if isinstance(c.get("settings"), dict) else {}
    items: list[tuple[str, object]] = [
        ("task", c.get("task")),
        ("strategies", ", ".join(str(r.get("strategy")) for r in _strategies(leaderboard))),
        ("seeds", ", ".join(str(s) for s in c.get("seeds") or [])),
        ("budget per run", _budget(c.get("budget"))),
        ("best strategy", best),
        ("start prompt (test)", _f(start.get("mean")) if start else None),
    ]
    items += [("warning", str(w)) for w in c.get("warnings") or []]
    items += [(f"setting: {k}", _short(v)) for k, v in settings.items()]
    return h.key_values([(k, v) for k, v in items if v not in (None, "")])


def _leaderboard_section(
    data: CompareData, leaderboard: list[dict[str, Any]], report: Report
) -> str:
    if not leaderboard:
        return h.section(
            "Leaderboard", h.note("compare.json holds no leaderboard."), id="leaderboard"
        )
    seed_scores: dict[str, list[float]] = {}
    for entry, _ in data.runs:
        score = entry.get("test_score")
        if _is_num(score):
            seed_scores.setdefault(str(entry.get("strategy")), []).append(float(score))
    baselines = [
        float(e["baseline_test_score"])
        for e, _ in data.runs
        if _is_num(e.get("baseline_test_score"))
    ]
    baseline = sum(baselines) / len(baselines) if baselines else None
    bars = [
        LeaderboardBar(
            strategy=str(r.get("strategy")),
            mean=_num(r.get("mean")),
            sd=_num(r.get("sd")),
            seed_scores=seed_scores.get(str(r.get("strategy")), []),
            best=bool(r.get("best")),
        )
        for r in _strategies(leaderboard)
    ]
    png = leaderboard_chart(bars, baseline)
    report.images["leaderboard.png"] = png
    caption = "Mean test score per strategy, ± one standard deviation over seeds" + (
        f"; dashed line: the baseline prompt ({baseline:.3f})." if baseline is not None else "."
    )
    figure = h.figure(png, "leaderboard chart", caption, id="leaderboard-plot")
    table = h.table(
        [
            "#",
            "strategy",
            "test mean ± sd",
            "seeds",
            "calls",
            "tokens",
            "wall s",
            "cost $",
            "vs start",
            "vs best: difference [CI]",
            "test",
            "p-value",
            "significant",
        ],
        [_leaderboard_row(i, r) for i, r in enumerate(leaderboard, 1)],
        id="leaderboard-table",
        highlight=[bool(r.get("best")) for r in leaderboard],
    )
    explain = h.para(
        "'vs best' tests each strategy against the best one on the same test examples "
        "(paired, per seed); 'significant' means the difference is unlikely to be seed or "
        "sampling noise at the stated alpha. 'vs start' is the same test against the "
        "starting prompt (its own row, costing no search): the difference, its p-value, "
        "and WORSE or BETTER when significant."
    )
    return h.section("Leaderboard", figure, table, explain, id="leaderboard")


def _leaderboard_row(index: int, r: dict[str, Any]) -> list[object]:
    vs = r.get("vs_best")
    if isinstance(vs, dict):
        diff = f"{_sf(vs.get('difference'))} [{_sf(vs.get('ci_low'))}, {_sf(vs.get('ci_high'))}]"
        test = f"{vs.get('method', '?')}, n={vs.get('n', '?')}"
        p = _g(vs.get("p_value"))
        alpha = f" (alpha {_g(vs.get('alpha'))})" if _is_num(vs.get("alpha")) else ""
        sig = ("yes" if vs.get("significant") else "no") + alpha
    else:
        diff, test, p, sig = ("best" if r.get("best") else "—"), "—", "—", "—"
    return [
        h.Cell(index, "num"),
        r.get("strategy"),
        h.Cell(f"{_f(r.get('mean'))} ± {_f(r.get('sd'))}", "num"),
        h.Cell(r.get("n_seeds"), "num"),
        h.Cell(_f(r.get("calls_mean"), 0), "num"),
        h.Cell(_f(r.get("tokens_mean"), 0), "num"),
        h.Cell(_f(r.get("wall_s_mean"), 1), "num"),
        h.Cell(_f(r.get("cost_usd_mean"), 4), "num"),
        _vs_start(r),
        diff,
        test,
        h.Cell(p, "num"),
        sig,
    ]


def _vs_start(r: dict[str, Any]) -> str:
    """A strategy against the starting prompt: difference, p-value, and a marker when
    significant (rows of compare.json files from before this test show a dash)."""
    vs = r.get("vs_start")
    if not isinstance(vs, dict):
        return "—"
    mark = {"worse": " WORSE", "better": " BETTER"}.get(str(r.get("vs_start_verdict")), "")
    return f"{_sf(vs.get('difference'))}, p={_g(vs.get('p_value'))}{mark}"


def _best_run(
    data: CompareData, leaderboard: list[dict[str, Any]]
) -> tuple[dict[str, Any], RunData | None]:
    best = next((str(r.get("strategy")) for r in leaderboard if r.get("best")), None)
    if best is None and leaderboard:
        best = str(leaderboard[0].get("strategy"))
    runs = [(e, r) for e, r in data.runs if str(e.get("strategy")) == best]
    if not runs:
        return {}, None
    return max(runs, key=lambda er: _num(er[0].get("test_score"), -1.0))


def _runs_table(data: CompareData) -> str:
    if not data.runs:
        return h.note("compare.json lists no runs.")
    return h.table(
        [
            "strategy",
            "seed",
            "test",
            "baseline",
            "calls",
            "tokens",
            "wall s",
            "cost $",
            "stopped by budget",
            "run directory",
        ],
        [
            [
                e.get("strategy"),
                h.Cell(e.get("seed"), "num"),
                h.Cell(f"{_f(e.get('test_score'))} (n={e.get('test_n')})", "num"),
                h.Cell(_f(e.get("baseline_test_score")), "num"),
                h.Cell(e.get("calls"), "num"),
                h.Cell(e.get("tokens"), "num"),
                h.Cell(_f(e.get("wall_s"), 1), "num"),
                h.Cell(_f(e.get("cost_usd"), 4), "num"),
                "yes" if e.get("stopped_by_budget") else "no",
                e.get("run_dir") + ("" if run else " (missing)") if e.get("run_dir") else "—",
            ]
            for e, run in data.runs
        ],
        id="runs-table",
    )


# -- shared -----------------------------------------------------------------------------
def _curve_section(
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


def _model(spec: Any) -> str | None:
    if isinstance(spec, dict):
        return str(spec.get("model") or spec.get("name") or "") or None
    return str(spec) if spec else None


def _budget(budget: Any) -> str:
    if not isinstance(budget, dict):
        return "unlimited"
    parts = []
    if budget.get("max_calls") is not None:
        parts.append(f"{budget['max_calls']} calls")
    if budget.get("max_tokens") is not None:
        parts.append(f"{budget['max_tokens']} tokens")
    return ", ".join(parts) or "unlimited"


def _usage(usage: Any) -> str | None:
    if not isinstance(usage, dict):
        return None
    tokens = _num(usage.get("prompt_tokens"), 0) + _num(usage.get("completion_tokens"), 0)
    calls, hits = usage.get("calls", 0), usage.get("cache_hits", 0)
    if "new_calls" in usage:  # calls count the cache's hits too
        text = (
            f"{calls} calls ({usage['new_calls']} new, {hits} from the cache), {int(tokens)} tokens"
        )
    else:  # an export from before `new_calls`
        text = f"{calls} calls, {int(tokens)} tokens, {hits} cache hits"
    if _is_num(usage.get("cost_usd")):
        text += f", ${usage['cost_usd']:.4f}"
    return text


def _timings(timings: Any) -> str | None:
    if not isinstance(timings, dict):
        return None
    return ", ".join(f"{k.removesuffix('_s')} {_f(v, 1)} s" for k, v in timings.items())


def _score_n(value: Any) -> str | None:
    if not isinstance(value, dict) or not _is_num(value.get("score")):
        return None
    return f"{value['score']:.3f} on {value.get('n')} examples"


def _diff(a: Any, b: Any) -> str | None:
    return f"{a - b:+.3f}" if _is_num(a) and _is_num(b) else None


def _clip(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS] + " …"


def _short(value: Any) -> str:
    """A setting on one line: nested settings as key=value, unset ones left out."""
    if isinstance(value, dict):
        return _clip(", ".join(f"{k}={_short(v)}" for k, v in value.items() if v is not None))
    return _clip(value if isinstance(value, str) else json.dumps(value))


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _num(value: Any, default: float = 0.0) -> float:
    return float(value) if _is_num(value) else default


def _f(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if _is_num(value) else "—"


def _sf(value: Any) -> str:
    return f"{value:+.3f}" if _is_num(value) else "—"


def _g(value: Any) -> str:
    return f"{value:.3g}" if _is_num(value) else "—"


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data
