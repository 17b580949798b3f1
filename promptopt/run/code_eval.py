"""Inference-time Reflexion on code tasks, and `promptopt eval --task humaneval`.

For each problem the model writes a function (`prompts/reflexion_code_write.txt`);
it runs against the visible tests (the docstring's examples) in the sandbox. On
a failure the model reflects on the code and the failing tests
(`prompts/reflexion_code_reflect.txt`), the reflection enters the problem's
episodic memory (the last `memory_size`), and the model tries again from the
last code, the test feedback and the memory (`prompts/reflexion_code_retry.txt`),
up to `attempts` in all. The answer is the first attempt that passes the
visible tests, else the last one; it is scored against the hidden tests as
pass@1 (one answer per problem; the first attempt is greedy, retries are
sampled with a fixed seed).

Every step is one batched `generate` call over all problems still at work,
which is what makes a CPU model usable here. Because each problem's trajectory
is deterministic, the answer after k attempts of a run with more attempts is
the answer a run with k attempts gives, so one run reports pass@1 at every
attempt count up to its own.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from promptopt.core.domain import GenerationRequest, Usage
from promptopt.core.errors import ConfigError
from promptopt.core.paths import read_prompt_template
from promptopt.data.code_tasks import (
    HUMANEVAL,
    CodeProblem,
    TestOutcome,
    extract_code,
    is_code_task,
    load_humaneval,
    run_hidden,
    run_visible,
)
from promptopt.llm.base import LLM, describe
from promptopt.sandbox.runner import Sandbox, SandboxLimits, require_opt_in
from promptopt.strategies.base import Reporter, SilentReporter
from promptopt.strategies.reflection import EpisodicMemory, clean_reflection, fill_placeholders


@dataclass(frozen=True)
class CodeReflexionConfig:
    attempts: int = 1
    """Attempts per problem; 1 is plain generation (no reflexion loop)."""
    memory_size: int = 3
    """Reflections kept per problem."""
    max_tokens: int = 256
    """Longest code reply, in tokens (HumanEval solutions rarely need 150)."""
    reflection_max_tokens: int = 96
    retry_temperature: float = 0.6
    """Retries are sampled (seeded, so reruns are cached): greedy retries of a
    small model mostly copy the failed code it is shown."""
    seed: int = 0
    feedback_tests: int = 3
    """Failing visible tests shown to the model per attempt."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError("--reflexion-attempts must be at least 1")
        if self.memory_size < 1:
            raise ConfigError("the reflexion memory must hold at least 1 reflection")


@dataclass
class Attempt:
    code: str
    visible: str
    """Visible-test status: passed, failed, error, timeout, ... or untested."""
    feedback: str = ""
    reflection: str | None = None
    hidden: bool | None = None
    hidden_status: str = ""


@dataclass
class ProblemRun:
    problem: CodeProblem
    memory: EpisodicMemory
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def done(self) -> bool:
        last = self.attempts[-1] if self.attempts else None
        return last is not None and (last.visible in ("passed", "untested"))

    def answer_after(self, k: int) -> Attempt:
        """The answer a run with `k` attempts gives."""
        return self.attempts[min(k, len(self.attempts)) - 1]


def _code_request(
    text: str, max_tokens: int, temperature: float = 0.0, seed: int = 0
) -> GenerationRequest:
    # Generation ends at the closing fence ("```python" opens with a language
    # tag, so it cannot match).
    return GenerationRequest.chat(
        text.strip(), max_tokens=max_tokens, stop=("\n```\n",), temperature=temperature, seed=seed
    )


def write_prompt(problem: CodeProblem) -> str:
    return fill_placeholders(
        read_prompt_template("reflexion_code_write.txt"), prompt=problem.prompt
    )


def reflect_prompt(problem: CodeProblem, attempt: Attempt) -> str:
    return fill_placeholders(
        read_prompt_template("reflexion_code_reflect.txt"),
        prompt=problem.prompt,
        implementation=attempt.code,
        feedback=attempt.feedback,
    )


def retry_prompt(problem: CodeProblem, attempt: Attempt, memory: EpisodicMemory) -> str:
    return fill_placeholders(
        read_prompt_template("reflexion_code_retry.txt"),
        prompt=problem.prompt,
        implementation=attempt.code,
        feedback=attempt.feedback,
        reflections=memory.render(),
    )


def reflexion_solve(
    problems: list[CodeProblem],
    llm: LLM,
    sandbox: Sandbox,
    config: CodeReflexionConfig,
    reporter: Reporter | None = None,
) -> list[ProblemRun]:
    """Write, test, reflect, retry; then score every attempt on the hidden tests."""
    reporter = reporter or SilentReporter()
    runs = [ProblemRun(p, EpisodicMemory(config.memory_size)) for p in problems]
    for number in range(1, config.attempts + 1):
        active = [r for r in runs if not r.done]
        if not active:
            break
        if number > 1:
            _reflect(active, llm, config, reporter, number)
            requests = [
                _code_request(
                    retry_prompt(r.problem, r.attempts[-1], r.memory),
                    config.max_tokens,
                    config.retry_temperature,
                    seed=config.seed * 1000 + number,
                )
                for r in active
            ]
        else:  # greedy: the plain pass@1 answer
            requests = [_code_request(write_prompt(r.problem), config.max_tokens) for r in active]
        reporter.phase(f"Attempt {number}: writing code for {len(active)} problems", len(active))
        completions = llm.generate(requests)
        reporter.advance(len(active))
        reporter.phase(f"Attempt {number}: visible tests", len(active))
        for run, completion in zip(active, completions, strict=True):
            code = extract_code(completion.texts[0], run.problem.entry_point)
            outcome: TestOutcome = run_visible(
                sandbox, run.problem, code, max_shown=config.feedback_tests
            )
            run.attempts.append(Attempt(code, outcome.status, outcome.feedback))
            reporter.advance()
    _score_hidden(runs, sandbox, reporter)
    return runs


def _reflect(
    active: list[ProblemRun],
    llm: LLM,
    config: CodeReflexionConfig,
    reporter: Reporter,
    number: int,
) -> None:
    """One batched call: a reflection on each failed attempt, added to its memory."""
    reporter.phase(f"Attempt {number}: reflecting on {len(active)} failures", len(active))
    requests = [
        GenerationRequest.chat(
            reflect_prompt(r.problem, r.attempts[-1]).strip(),
            max_tokens=config.reflection_max_tokens,
            stop=("\n\n",),
        )
        for r in active
    ]
    for run, completion in zip(active, llm.generate(requests), strict=True):
        reflection = clean_reflection(completion.texts[0])
        run.attempts[-1].reflection = reflection
        run.memory.add(reflection)
    reporter.advance(len(active))


def _score_hidden(runs: list[ProblemRun], sandbox: Sandbox, reporter: Reporter) -> None:
    """Hidden tests for each distinct attempt (pass@1 after k attempts for every k)."""
    reporter.phase("Hidden tests", sum(len(r.attempts) for r in runs))
    for run in runs:
        seen: dict[str, tuple[bool, str]] = {}
        for attempt in run.attempts:
            if attempt.code not in seen:
                result = run_hidden(sandbox, run.problem, attempt.code)
                seen[attempt.code] = (result.passed, result.status)
            attempt.hidden, attempt.hidden_status = seen[attempt.code]
            reporter.advance()


def pass_at_1(runs: list[ProblemRun], attempts: int) -> float:
    if not runs:
        return 0.0
    return sum(bool(r.answer_after(attempts).hidden) for r in runs) / len(runs)


def run_code_eval(
    task: str,
    *,
    allow_code_execution: bool,
    attempts: int = 1,
    model: Any = None,
    test_size: int | None = None,
    use_cache: bool = True,
    reporter: Reporter | None = None,
    llm: LLM | None = None,
    limits: SandboxLimits | None = None,
    config: CodeReflexionConfig | None = None,
) -> dict[str, Any]:
    """`promptopt eval --task humaneval`: pass@1 of the model, with or without the loop.

    `model` is a ModelSpec (default: the embedded model); `llm` bypasses model
    building (tests pass a scripted model). `test_size` takes the first N
    problems, so subsets are fixed and comparable. `config` sets the loop's
    other knobs (token limits, memory size); `attempts` wins over its own.
    """
    if not is_code_task(task):
        raise ConfigError(f"'{task}' is not a code task: code tasks are {HUMANEVAL}")
    require_opt_in(allow_code_execution)
    config = dataclasses.replace(config or CodeReflexionConfig(), attempts=attempts)
    reporter = reporter or SilentReporter()
    sandbox = Sandbox(allow_code_execution=True, limits=limits)
    problems = load_humaneval(test_size)
    usage = Usage()
    if llm is None:
        from promptopt.core.paths import cache_root
        from promptopt.llm.cache_files import open_cache
        from promptopt.llm.factory import build_llm, default_model_spec
        from promptopt.llm.stack import layered

        spec = model or default_model_spec()
        reporter.phase(f"Loading model {spec.model}")
        base = build_llm(spec)
        shared = open_cache(cache_root() / "calls") if use_cache else None
        llm = layered(base, usage, None, shared, None)
        model_info = describe(base)
    else:
        model_info = describe(llm)
    started = time.perf_counter()
    runs = reflexion_solve(problems, llm, sandbox, config, reporter)
    by_attempts = {str(k): pass_at_1(runs, k) for k in range(1, attempts + 1)}
    return {
        "task": task,
        "metric": "pass@1",
        "score": by_attempts[str(attempts)],
        "n": len(runs),
        "attempts": attempts,
        "pass_at_1_by_attempts": by_attempts,
        "problems_with_visible_tests": sum(bool(r.problem.visible) for r in runs),
        "model": model_info,
        "usage": usage.model_calls_dict(),
        "seconds": round(time.perf_counter() - started, 2),
        "sandbox": sandbox.protections(),
        "problems": [
            {
                "task_id": r.problem.task_id,
                "attempts_used": len(r.attempts),
                "visible": [a.visible for a in r.attempts],
                "hidden": [a.hidden for a in r.attempts],
                "reflections": [a.reflection for a in r.attempts if a.reflection],
                "final_code": r.answer_after(attempts).code,
            }
            for r in runs
        ],
    }
