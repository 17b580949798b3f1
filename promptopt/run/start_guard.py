"""Never worse than the prompt the user starts with.

A search returns the starting prompt (the task's baseline, or `--start`) unless
its best candidate beats it on the dev examples both were scored on by more
than noise. The rule, paired over those examples:

    replace the start only if mean(candidate - start) > 0
    and mean(candidate - start) > MIN_Z x its standard error

With MIN_Z = 1 this is a one-sided paired test at about p < 0.16: on 20 dev
examples scored right/wrong, 2 more right and none more wrong is enough, 3
more right and 1 more wrong is not. It is loose on purpose: dev sets are small
and the gain a search finds is usually several examples, while a stricter test
would keep the start even when the search found something clearly better.
The best candidate's dev score is biased upward (it was selected on dev), which
is why the bar is above zero at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptopt.core.domain import EvalResult, Prompt
from promptopt.core.errors import ConfigError
from promptopt.data.task import Task

MIN_Z = 1.0
RULE = (
    "replace the start only if the paired dev difference is above 0 and above "
    f"{MIN_Z:g} standard error"
)


@dataclass(frozen=True)
class PairedDev:
    """A candidate against the start on the dev examples both were scored on."""

    n: int
    start_mean: float
    candidate_mean: float
    diff: float
    se: float

    @property
    def beats_start(self) -> bool:
        # The tolerance keeps a difference exactly at the bar (1 of 20 gained) from
        # passing by a rounding error.
        return self.n > 0 and self.diff > 1e-9 and self.diff > MIN_Z * self.se + 1e-9

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "start": self.start_mean,
            "candidate": self.candidate_mean,
            "diff": self.diff,
            "se": self.se,
            "beats_start": self.beats_start,
        }


def paired_dev(start: EvalResult, candidate: EvalResult) -> PairedDev:
    start_scores = {r.example_id: r.score for r in start.results}
    pairs = [
        (start_scores[r.example_id], r.score)
        for r in candidate.results
        if r.example_id in start_scores
    ]
    n = len(pairs)
    if n == 0:
        return PairedDev(0, 0.0, 0.0, 0.0, 0.0)
    diffs = [c - s for s, c in pairs]
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    return PairedDev(
        n=n,
        start_mean=sum(s for s, _ in pairs) / n,
        candidate_mean=sum(c for _, c in pairs) / n,
        diff=mean,
        se=math.sqrt(var / n),
    )


def resolve_start(value: str, task: Task) -> tuple[Prompt, str]:
    """`--start FILE|TEXT`: an export's prompt, a text file's instruction, or the text.

    Returns the prompt and a short description of where it came from.
    """
    from promptopt.run.export import load_export

    path = Path(value)
    looks_like_file = path.suffix.lower() in {".json", ".txt", ".md"}
    if looks_like_file and not path.is_file():
        raise ConfigError(f"--start file not found: {value}: pass an export, a text file or text")
    if path.suffix.lower() == ".json":
        export = load_export(path)
        if export.prompt is None:
            raise ConfigError(
                f"{value} holds an ensemble: --start takes a single prompt "
                "(an export of kind prompt, or an instruction)"
            )
        prompt = export.prompt
        if prompt.template != task.template:
            raise ConfigError(
                f"{value} was written for another input template ({prompt.template!r}); "
                f"task '{task.name}' uses {task.template!r}: pass its instruction as text"
            )
        return prompt, f"export {value}"
    if looks_like_file:
        try:
            text = path.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            raise ConfigError(f"{value} is not UTF-8 text: save it as UTF-8") from None
        source = f"file {value}"
    else:
        text, source = value.strip(), "text"
    if not text:
        raise ConfigError("--start is empty: pass an instruction, a text file or an export")
    return Prompt(instruction=text, template=task.template, demo_format=task.demo_format), source
