"""A search strategy written the way a third-party package would write one: this one
file, registered by an entry point in the group `promptopt.strategies`, and
nothing in promptopt edited.

`suffixes` tries the starting instruction with each of a few answer-format
sentences appended, scores every candidate on dev through the shared evaluator,
and ranks them: a real (if small) search that budgets, caches and resumes like
the built-in ones because it only asks `ctx.evaluator` for scores.
"""

from __future__ import annotations

from dataclasses import dataclass

from promptopt.core.domain import Candidate, Prompt
from promptopt.strategies.base import CallBound, SearchContext, SearchResult, knob

SUFFIXES = ("Answer with one word.", "Answer in capitals.", "Be brief.")


@dataclass
class SuffixesConfig:
    suffixes: int = knob(2, "answer-format sentences tried after the starting instruction")


class Suffixes:
    """Answer-format sentences appended to the starting instruction, best on dev kept."""

    name = "suffixes"
    Config = SuffixesConfig

    def project(self, config: SuffixesConfig, dev_n: int) -> CallBound:
        return CallBound(target_calls=(config.suffixes + 1) * dev_n, writer_calls=0)

    def search(self, ctx: SearchContext, config: SuffixesConfig) -> SearchResult:
        start = ctx.start_prompt
        dev = ctx.task.examples("dev")
        scored: list[Candidate] = []
        ctx.so_far = lambda: SearchResult(list(scored)) if scored else None
        texts = [start.instruction] + [
            f"{start.instruction} {suffix}".strip() for suffix in SUFFIXES[: config.suffixes]
        ]
        for text in texts:
            prompt = Prompt(instruction=text, template=ctx.task.template)
            result = ctx.evaluator.evaluate(prompt, dev, progress=ctx.reporter.advance)
            origin = "start" if text == start.instruction else "suffix"
            ctx.record_candidate(text, result.score, result.n, origin)
            scored.append(Candidate(prompt, result.score, result.n, origin))
        scored.sort(key=lambda c: c.dev_score, reverse=True)
        return SearchResult(candidates=scored)
