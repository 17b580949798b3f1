"""The report's two charts, rendered to PNG bytes with matplotlib's Agg canvas.

Figures are built on `matplotlib.figure.Figure` with an Agg canvas rather than
through pyplot, so rendering needs no display, touches no global backend state
and leaves nothing open when a long-lived process (search, compare) reports.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from promptopt.report.loading import CandidatePoint

PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
)
"""Saturated colours, so each strategy stands out (and a screenshot test can find them)."""


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def best_so_far(points: Sequence[CandidatePoint]) -> list[tuple[int, float]]:
    """(calls, best dev score) after each candidate event, each candidate counted at its
    latest estimate: a prompt that scored 1.0 on 4 dev examples and 0.6 on all of them
    counts as 0.6 from then on. So the line is what the search would have returned had
    it stopped there, not the luckiest small-sample score; it may dip when a leader is
    rescored lower."""
    latest: dict[str, float] = {}
    steps = []
    for point in points:
        latest[point.instruction] = point.dev_score
        steps.append((point.calls, max(latest.values())))
    return steps


@dataclass(frozen=True)
class CurveGroup:
    """One strategy's runs (one per seed), drawn in one colour."""

    name: str
    runs: list[list[CandidatePoint]]


def score_vs_calls(groups: Sequence[CurveGroup], max_calls: int | None = None) -> bytes:
    """Every candidate's dev score as a point and each run's best-so-far as a step
    line, against the model calls spent when the score became known."""
    fig = Figure(figsize=(9, 4.6), dpi=100)
    ax = fig.add_subplot()
    for index, group in enumerate(groups):
        col = colour(index)
        for run_index, points in enumerate(group.runs):
            if not points:
                continue
            ax.scatter(
                [p.calls for p in points],
                [p.dev_score for p in points],
                s=26,
                color=col,
                alpha=0.6,
                linewidths=0,
                label=f"{group.name}: candidates" if run_index == 0 else None,
            )
            steps = best_so_far(points)
            xs = [x for x, _ in steps]
            ys = [y for _, y in steps]
            if max_calls is not None and max_calls > xs[-1]:
                xs.append(max_calls)
                ys.append(ys[-1])
            ax.step(
                xs,
                ys,
                where="post",
                color=col,
                linewidth=2,
                label=f"{group.name}: best so far" if run_index == 0 else None,
            )
    if max_calls is not None:
        ax.axvline(max_calls, color="#555555", linestyle=":", linewidth=1, label="budget")
    scores = [p.dev_score for g in groups for run in g.runs for p in run]
    if scores and min(scores) >= 0.0 and max(scores) <= 1.0:
        ax.set_ylim(-0.03, 1.03)  # the whole score range: runs and reports compare by eye
    ax.set_xlabel("model calls spent")
    ax.set_ylabel("dev score")
    ax.set_title("Candidate dev scores against model calls")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    return _png(fig)


@dataclass(frozen=True)
class LeaderboardBar:
    strategy: str
    mean: float
    sd: float
    seed_scores: list[float]
    best: bool


def leaderboard_chart(bars: Sequence[LeaderboardBar], baseline: float | None) -> bytes:
    """Mean test score per strategy with ± one standard deviation over seeds, each
    seed's score as a dot, and the baseline prompt's test score as a reference line."""
    fig = Figure(figsize=(9, max(2.4, 0.9 + 0.6 * len(bars))), dpi=100)
    ax = fig.add_subplot()
    ys = list(range(len(bars)))[::-1]  # first (best) on top
    for y, (index, bar) in zip(ys, enumerate(bars), strict=True):
        col = colour(index)
        ax.barh(y, bar.mean, height=0.55, color=col, alpha=0.85 if bar.best else 0.55)
        ax.errorbar(bar.mean, y, xerr=bar.sd, fmt="none", ecolor="#222222", capsize=5, lw=1.5)
        ax.scatter(bar.seed_scores, [y] * len(bar.seed_scores), s=16, color="#222222", zorder=3)
    if baseline is not None:
        ax.axvline(baseline, color="#555555", linestyle="--", linewidth=1.5, label="baseline")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_yticks(ys, [f"{b.strategy}{' (best)' if b.best else ''}" for b in bars])
    ax.set_xlabel("test score (mean ± sd over seeds; dots: seeds)")
    ax.set_title("Leaderboard")
    ax.set_xlim(
        0,
        max([1.0] + [b.mean + b.sd for b in bars] + [max(b.seed_scores, default=0) for b in bars]),
    )
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def _png(fig: Figure) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer, metadata={"Software": None})
    return buffer.getvalue()
