"""What a comparison report says: the summary, leaderboard, runs and curve sections."""

from __future__ import annotations

from typing import Any

from promptopt.report import html as h
from promptopt.report.content import (
    Report,
    best_prompt,
    curve_section,
    failed_table,
    no_candidates_note,
    run_summary,
)
from promptopt.report.format import (
    budget_text,
    dig,
    fixed,
    is_num,
    num_or,
    one_line,
    short_num,
    signed,
)
from promptopt.report.loading import CompareData, RunData
from promptopt.report.plots import CurveGroup, LeaderboardBar, leaderboard_chart


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
        notes += [no_candidates_note(r) for r in runs if not r.candidates]
    max_calls = dig(c, "budget", "max_calls")
    report.sections.append(
        curve_section(groups, max_calls if isinstance(max_calls, int) else None, report, notes)
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
            f"(test {fixed(best_entry.get('test_score'))}, "
            f"baseline {fixed(best_entry.get('baseline_test_score'))})."
        )
        report.sections.append(
            h.section(
                "Best prompt",
                intro,
                best_prompt(best_run),
                run_summary(best_run),
                id="best-prompt",
            )
        )
        report.sections.append(
            h.section("Failed test examples", failed_table(best_run), id="failed-examples")
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
        ("budget per run", budget_text(c.get("budget"))),
        ("best strategy", best),
        ("start prompt (test)", fixed(start.get("mean")) if start else None),
    ]
    items += [("warning", str(w)) for w in c.get("warnings") or []]
    items += [(f"setting: {k}", one_line(v)) for k, v in settings.items()]
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
        if is_num(score):
            seed_scores.setdefault(str(entry.get("strategy")), []).append(float(score))
    baselines = [
        float(e["baseline_test_score"])
        for e, _ in data.runs
        if is_num(e.get("baseline_test_score"))
    ]
    baseline = sum(baselines) / len(baselines) if baselines else None
    bars = [
        LeaderboardBar(
            strategy=str(r.get("strategy")),
            mean=num_or(r.get("mean")),
            sd=num_or(r.get("sd")),
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
        low, high = signed(vs.get("ci_low")), signed(vs.get("ci_high"))
        diff = f"{signed(vs.get('difference'))} [{low}, {high}]"
        test = f"{vs.get('method', '?')}, n={vs.get('n', '?')}"
        p = short_num(vs.get("p_value"))
        alpha = f" (alpha {short_num(vs.get('alpha'))})" if is_num(vs.get("alpha")) else ""
        sig = ("yes" if vs.get("significant") else "no") + alpha
    else:
        diff, test, p, sig = ("best" if r.get("best") else "—"), "—", "—", "—"
    return [
        h.Cell(index, "num"),
        r.get("strategy"),
        h.Cell(f"{fixed(r.get('mean'))} ± {fixed(r.get('sd'))}", "num"),
        h.Cell(r.get("n_seeds"), "num"),
        h.Cell(fixed(r.get("calls_mean"), 0), "num"),
        h.Cell(fixed(r.get("tokens_mean"), 0), "num"),
        h.Cell(fixed(r.get("wall_s_mean"), 1), "num"),
        h.Cell(fixed(r.get("cost_usd_mean"), 4), "num"),
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
    return f"{signed(vs.get('difference'))}, p={short_num(vs.get('p_value'))}{mark}"


def _best_run(
    data: CompareData, leaderboard: list[dict[str, Any]]
) -> tuple[dict[str, Any], RunData | None]:
    best = next((str(r.get("strategy")) for r in leaderboard if r.get("best")), None)
    if best is None and leaderboard:
        best = str(leaderboard[0].get("strategy"))
    runs = [(e, r) for e, r in data.runs if str(e.get("strategy")) == best]
    if not runs:
        return {}, None
    return max(runs, key=lambda er: num_or(er[0].get("test_score"), -1.0))


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
                h.Cell(f"{fixed(e.get('test_score'))} (n={e.get('test_n')})", "num"),
                h.Cell(fixed(e.get("baseline_test_score")), "num"),
                h.Cell(e.get("calls"), "num"),
                h.Cell(e.get("tokens"), "num"),
                h.Cell(fixed(e.get("wall_s"), 1), "num"),
                h.Cell(fixed(e.get("cost_usd"), 4), "num"),
                "yes" if e.get("stopped_by_budget") else "no",
                e.get("run_dir") + ("" if run else " (missing)") if e.get("run_dir") else "—",
            ]
            for e, run in data.runs
        ],
        id="runs-table",
    )
