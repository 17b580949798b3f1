"""Reflexion (Shinn et al. 2023, arXiv 2303.11366) as a prompt search.

Reflexion improves an agent between trials with verbal feedback instead of
weight updates. Here the "agent" is the prompt:

1. Trial: score the current prompt on a seeded minibatch of train examples
   through the shared evaluator.
2. Reflect: the reflector (the proposer model) reads the failures (input,
   expected, got) and writes a short reflection: what went wrong and what to
   change (`prompts/reflexion_reflect.txt`).
3. Memory: the last `memory_size` reflections are kept (the paper's episodic
   memory, 1-3 entries).
4. Act: the actor (the proposer model) writes a revised prompt from the current
   prompt and the memory (`prompts/reflexion_revise.txt`).
5. Evaluate: the revision is scored on dev; the best so far is kept, and the
   next trial starts from it (or from the latest revision).

The search stops at `max_trials`, after `patience` trials in a row without a
better dev score, when the best prompt is perfect on dev, or at the budget
(best so far kept). Every trial, reflection, revision and score is an event in
the run store, so `events.jsonl` reads as the prompt's history; requests are
seeded per trial, so `--resume` replays the run journal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from promptopt.core.domain import (
    Candidate,
    EvalResult,
    Example,
    ExampleResult,
    GenerationRequest,
    Prompt,
)
from promptopt.core.errors import ConfigError
from promptopt.core.paths import read_prompt_template
from promptopt.data.scoring import first_line
from promptopt.strategies.base import SearchContext, SearchResult, check_range, knob, rank
from promptopt.strategies.reflection import EpisodicMemory, clean_reflection, fill_placeholders


@dataclass
class ReflexionConfig:
    max_trials: int = knob(8, "trials (minibatch -> reflection -> revision -> dev score) at most")
    patience: int = knob(3, "stop after this many trials in a row without a better dev score")
    minibatch: int = knob(8, "train examples each trial scores to find failures")
    memory_size: int = knob(3, "reflections kept in the episodic memory (paper: 1-3)")
    failures_shown: int = knob(3, "failed examples the reflector reads per trial")
    revisions: int = knob(
        2, "revised prompts sampled per trial; the usable ones are scored on dev in one batch"
    )
    continue_from: str = knob(
        "best", "'best' (revise the best prompt so far) or 'latest' (the last revision)"
    )
    reflect_temperature: float = knob(0.7, "sampling temperature of the reflector")
    revise_temperature: float = knob(0.7, "sampling temperature of the actor")
    reflect_max_tokens: int = knob(80, "longest reflection, in tokens")
    revise_max_tokens: int = knob(64, "longest revised instruction, in tokens")
    output_chars: int = knob(100, "characters of a wrong output shown to the reflector")

    def __post_init__(self) -> None:
        if self.continue_from not in {"best", "latest"}:
            raise ConfigError(
                f"continue_from must be 'best' or 'latest', not '{self.continue_from}'"
            )
        check_range(
            self,
            (
                "max_trials",
                "patience",
                "minibatch",
                "memory_size",
                "revisions",
                "failures_shown",
                "reflect_max_tokens",
                "revise_max_tokens",
                "output_chars",
            ),
            at_least=1,
        )
        check_range(self, ("reflect_temperature", "revise_temperature"), at_least=0)


# Announcements small chat models put before (or instead of) the instruction.
_PREAMBLE = re.compile(
    r"^(?:(?:sure|okay|ok|certainly|of course)[,!.]?\s*)?"
    r"(?:here(?:'s| is) (?:the |an |my )?(?:improved |revised |new |updated )?"
    r"(?:instruction|version|prompt)[^:]*:"
    r"|(?:the )?(?:improved|revised|new|updated|better|final)\s+(?:instruction|prompt)"
    r"(?:\s+(?:is|would be|could be))?\s*:?"
    r"|instruction\s*:)\s*",
    re.IGNORECASE,
)
_ECHO = re.compile(r"^(?:input|output|expected|got|lessons?|advice|question)\s*:", re.IGNORECASE)
# Replies that talk about the assistant or the instruction instead of being one.
_DESCRIBES = re.compile(
    r"^(?:the (?:assistant|instruction|original|model|ai|answer|output|response|lesson|advice)s?\b"
    r"|in (?:the|this) \w+|this (?:instruction|assistant)|i (?:am|will|would|think|have)\b"
    r"|as an ai)",
    re.IGNORECASE,
)
_WRAP = "\"'`*\u201c\u201d\u2018\u2019 "


def parse_revision(text: str, current: str) -> tuple[str | None, str]:
    """(instruction, "") from an actor's reply, or (None, why it was rejected).

    Strips preambles ("Here is the improved instruction:"), list markers,
    markdown and quotes; takes the first line that is left; rejects empty
    replies, echoed examples or lessons, text about the assistant rather than
    an instruction to it ("The assistant failed to ..."), and the unchanged
    instruction.
    """
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    while lines:
        line = _PREAMBLE.sub("", lines[0]).strip().strip(_WRAP).strip()
        line = re.sub(r"^(?:\d+[.)]|[-*\u2022])\s+", "", line).strip().strip(_WRAP).strip()
        if line and not (line.endswith(":") and len(lines) > 1):
            break
        lines = lines[1:]
    else:
        return None, "empty"
    if _ECHO.match(line):
        return None, "echoed an example or lesson"
    if _DESCRIBES.match(line):
        return None, "describes instead of instructing"
    if len(re.sub(r"[^a-z]", "", line.lower())) < 3:
        return None, "too short"
    if len(line) > 400:
        line = line[:400].rsplit(" ", 1)[0]
    line = line[:1].upper() + line[1:]
    if _key(line) == _key(current):
        return None, "unchanged"
    return line, ""


def _key(instruction: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", instruction.lower()).strip()


def format_failures(
    examples: list[Example], results: EvalResult, limit: int, output_chars: int
) -> list[dict[str, str]]:
    """The wrong answers of a trial as input / expected / got, at most `limit`."""
    by_id = {e.id: e for e in examples}
    failures = []
    for r in results.results:
        if r.score >= 1.0:
            continue
        got = first_line(r.output)[:output_chars] or "(nothing)"
        ex = by_id[r.example_id]
        failures.append({"input": ex.input, "expected": ex.target, "got": got})
        if len(failures) >= limit:
            break
    return failures


def reflection_prompt(instruction: str, failures: list[dict[str, str]]) -> str:
    """The reflector's message: the instruction and its wrong answers."""
    shown = "\n\n".join(
        f"Input: {f['input']}\nExpected: {f['expected']}\nGot: {f['got']}" for f in failures
    )
    template = read_prompt_template("reflexion_reflect.txt")
    return fill_placeholders(template, instruction=instruction, failures=shown).strip()


def revision_prompt(instruction: str, memory: EpisodicMemory) -> str:
    """The actor's message: the current instruction and the memory's reflections."""
    template = read_prompt_template("reflexion_revise.txt")
    return fill_placeholders(template, instruction=instruction, reflections=memory.render()).strip()


# --------------------------------------------------------------------------- the search


@dataclass
class _Board:
    """Dev scores of every instruction scored, in the order first seen."""

    template: str
    scores: dict[str, tuple[float, int]] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)
    seen: dict[tuple[str, str], ExampleResult] = field(default_factory=dict)
    """(instruction, example id) -> result: nothing is asked of the model twice in a
    run (minibatches of the same prompt overlap), which keeps a resumed run's
    replayed charges equal to the original's."""

    def candidates(self) -> list[Candidate]:
        return rank(
            [
                Candidate(Prompt(i, self.template), s, n, self.origin[i])
                for i, (s, n) in self.scores.items()
            ]
        )

    def best(self) -> tuple[str, float]:
        top = self.candidates()[0]
        return top.prompt.instruction, top.dev_score


class Reflexion:
    name = "reflexion"
    Config = ReflexionConfig
    dry_run_note = (
        "reflexion was projected along a path with no improvement, so it stops after "
        "`patience` trials; a run that keeps improving can continue to `max_trials`"
    )

    def search(self, ctx: SearchContext, config: ReflexionConfig) -> SearchResult:
        board = _Board(ctx.task.template)
        ctx.so_far = lambda: SearchResult(board.candidates()) if board.scores else None
        self._run(ctx, config, board)
        return SearchResult(candidates=board.candidates())

    def _run(self, ctx: SearchContext, config: ReflexionConfig, board: _Board) -> None:
        dev = ctx.task.examples("dev")
        train = ctx.task.examples("train")
        if not train or not dev:
            raise ConfigError("reflexion needs train and dev examples: raise --train/--dev size")
        start = ctx.start_prompt.instruction
        self._score_dev(ctx, board, [start], dev, "start", trial=0)
        current = start
        memory = EpisodicMemory(config.memory_size)
        rng = ctx.rng("reflexion-minibatch")
        stale = 0
        for trial in range(1, config.max_trials + 1):
            best, best_score = board.best()
            if best_score >= 1.0:
                ctx.store.event("stopped", reason="perfect on dev", trial=trial - 1)
                return
            if config.continue_from == "best":
                current = best
            batch = rng.sample(train, min(config.minibatch, len(train)))
            ctx.reporter.phase(
                f"Trial {trial}: current prompt on {len(batch)} train examples", total=len(batch)
            )
            trial_result = self._evaluate(ctx, board, current, batch)
            failures = format_failures(
                batch, trial_result, config.failures_shown, config.output_chars
            )
            ctx.store.event(
                "trial",
                trial=trial,
                instruction=current,
                examples=[e.id for e in batch],
                score=trial_result.score,
                failures=failures,
            )
            improved, revised = False, []
            if failures:
                improved, revised = self._reflect_and_revise(
                    ctx, config, board, memory, current, failures, dev, trial
                )
            if config.continue_from == "latest" and revised:
                current = max(revised, key=lambda i: board.scores[i][0])
            if improved:
                stale = 0
            else:
                stale += 1
                if stale >= config.patience:
                    ctx.store.event(
                        "stopped", reason=f"{stale} trials without improvement", trial=trial
                    )
                    return
        ctx.store.event("stopped", reason="max_trials reached", trial=config.max_trials)

    def _reflect_and_revise(
        self,
        ctx: SearchContext,
        config: ReflexionConfig,
        board: _Board,
        memory: EpisodicMemory,
        current: str,
        failures: list[dict[str, str]],
        dev: list[Example],
        trial: int,
    ) -> tuple[bool, list[str]]:
        """One reflection into memory, revisions from it, scored on dev.

        Returns whether the best dev score went up, and the revisions scored.
        """
        ctx.reporter.phase(f"Trial {trial}: reflecting on {len(failures)} failures", total=1)
        request = GenerationRequest.chat(
            reflection_prompt(current, failures),
            max_tokens=config.reflect_max_tokens,
            temperature=config.reflect_temperature,
            stop=("\n\n",),
            seed=ctx.seed * 1000 + 10 * trial,
        )
        raw = ctx.proposer.generate([request])[0].texts[0]
        ctx.reporter.advance()
        reflection = clean_reflection(raw)
        memory.add(reflection)
        ctx.store.event(
            "reflection", trial=trial, raw=raw, reflection=reflection, memory=memory.items
        )
        if not len(memory):
            return False, []
        ctx.reporter.phase(f"Trial {trial}: revising the prompt", total=config.revisions)
        request = GenerationRequest.chat(
            revision_prompt(current, memory),
            max_tokens=config.revise_max_tokens,
            temperature=config.revise_temperature,
            stop=("\n\n",),
            n=config.revisions,
            seed=ctx.seed * 1000 + 10 * trial + 1,
        )
        texts = ctx.proposer.generate([request])[0].texts
        ctx.reporter.advance(config.revisions)
        accepted, rejected = [], []
        for text in texts:
            instruction, why = parse_revision(text, current)
            if instruction is None:
                rejected.append({"raw": text, "reason": why})
            elif instruction in board.scores or instruction in accepted:
                rejected.append({"raw": text, "reason": "already scored"})
            else:
                accepted.append(instruction)
        ctx.store.event("revision", trial=trial, accepted=accepted, rejected=rejected)
        if not accepted:
            return False, []
        _, before = board.best()
        self._score_dev(ctx, board, accepted, dev, f"trial {trial}", trial)
        best, after = board.best()
        if after > before:
            ctx.store.event("improved", trial=trial, instruction=best, score=after)
            return True, accepted
        return False, accepted

    def _evaluate(
        self, ctx: SearchContext, board: _Board, instruction: str, batch: list[Example]
    ) -> EvalResult:
        """A prompt's results on a minibatch, asking the model only for examples not seen."""
        todo = [e for e in batch if (instruction, e.id) not in board.seen]
        if todo:
            fresh = ctx.evaluator.evaluate(
                Prompt(instruction, ctx.task.template), todo, progress=ctx.reporter.advance
            )
            for r in fresh.results:
                board.seen[(instruction, r.example_id)] = r
        results = [board.seen[(instruction, e.id)] for e in batch]
        mean = sum(r.score for r in results) / len(results) if results else 0.0
        return EvalResult(score=mean, n=len(results), results=results)

    def _score_dev(
        self,
        ctx: SearchContext,
        board: _Board,
        instructions: list[str],
        dev: list[Example],
        origin: str,
        trial: int,
    ) -> None:
        ctx.reporter.phase(
            f"Scoring {len(instructions)} prompt(s) on {len(dev)} dev examples",
            total=len(instructions) * len(dev),
        )
        prompts = [Prompt(i, ctx.task.template) for i in instructions]
        results = ctx.evaluator.evaluate_many(prompts, dev, progress=ctx.reporter.advance)
        for instruction, result in zip(instructions, results, strict=True):
            for r in result.results:
                board.seen[(instruction, r.example_id)] = r
            board.scores[instruction] = (result.score, result.n)
            board.origin[instruction] = origin
            ctx.store.event(
                "scored", trial=trial, instruction=instruction, n=result.n, score=result.score
            )
            ctx.record_candidate(instruction, result.score, result.n, origin)
