"""The one evaluator every strategy and `eval` use to score prompts.

Scoring many prompts at once goes out as one batch, which is what makes CPU
inference fast; caching, budgets and accounting live in the LLM layers below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from promptopt.core.domain import (
    EvalResult,
    Example,
    ExampleResult,
    GenerationRequest,
    LogprobRequest,
    Message,
    Prompt,
)
from promptopt.core.errors import ConfigError, ModelError
from promptopt.data.task import Task
from promptopt.evaluation.prompting import render_messages
from promptopt.llm.base import FULL_LOGPROBS, LLM, generate_with_progress, logprob_scope

ProgressFn = Callable[[int], None]


class Evaluator:
    """Scores prompts for one task with one target model, greedily.

    Decoding is greedy, so the request seed is fixed: the same prompt on the same
    example is one cache entry whatever the search's seed.
    """

    def __init__(self, llm: LLM, task: Task) -> None:
        self.llm = llm
        self.task = task
        if task.scoring_mode == "logprob" and not llm.supports_logprobs:
            raise ModelError(
                f"task '{task.name}' scores labels by log-probability, which model "
                f"'{llm.model_id}' does not give: use a model with log-probabilities "
                "or a task with scoring_mode: generate"
            )

    def evaluate(
        self, prompt: Prompt, examples: Sequence[Example], progress: ProgressFn | None = None
    ) -> EvalResult:
        return self.evaluate_many([prompt], examples, progress)[0]

    def evaluate_many(
        self,
        prompts: Sequence[Prompt],
        examples: Sequence[Example],
        progress: ProgressFn | None = None,
    ) -> list[EvalResult]:
        """Score every prompt on every example in one batched pass."""
        pairs = [(p, ex) for p in prompts for ex in examples]
        if not pairs:
            return [EvalResult(score=0.0, n=0) for _ in prompts]
        if self.task.scoring_mode == "logprob":
            outputs = self._label_by_logprob(pairs)
        else:
            outputs = self._generate(pairs, progress)
        results = []
        for k in range(len(prompts)):
            chunk = outputs[k * len(examples) : (k + 1) * len(examples)]
            per_example = []
            for ex, (raw, prediction) in zip(examples, chunk, strict=True):
                score = self.task.scorer.score(prediction, ex)
                per_example.append(ExampleResult(ex.id, raw, prediction, float(score)))
            mean = sum(r.score for r in per_example) / len(per_example)
            results.append(EvalResult(score=mean, n=len(per_example), results=per_example))
        return results

    def label_logprobs(
        self, prompts: Sequence[Prompt], examples: Sequence[Example]
    ) -> list[list[list[float]]]:
        """log p(label word) for every prompt, example and label: [prompt][example][label].

        RLPrompt's reward reads the whole label distribution, not just the argmax.
        """
        words = tuple(self.task.label_words or ())
        if not words:
            raise ModelError(f"task '{self.task.name}' has no label words")
        if not self.llm.supports_logprobs:
            raise ModelError(f"model '{self.llm.model_id}' gives no log-probabilities")
        requests = [
            LogprobRequest(continuations=words, messages=self._messages(p, ex))
            for p in prompts
            for ex in examples
        ]
        values = self.llm.logprobs(requests)
        n = len(examples)
        return [values[k * n : (k + 1) * n] for k in range(len(prompts))]

    def likelihood_many(
        self, prompts: Sequence[Prompt], examples: Sequence[Example]
    ) -> list[EvalResult]:
        """APE's log-probability objective: mean log p(target | prompt, input).

        Scores how strongly a prompt makes the model expect the right answer,
        which separates candidates that all get zero accuracy on a weak model.
        """
        if not self.llm.supports_logprobs:
            raise ModelError(
                f"model '{self.llm.model_id}' gives no log-probabilities: "
                "use the accuracy objective or a model that gives them"
            )
        if logprob_scope(self.llm) != FULL_LOGPROBS:
            raise ModelError(
                f"model '{self.llm.model_id}' gives only first-token log-probabilities "
                "(a chat API): use the accuracy objective, or --api completions on a "
                "server that scores prompts"
            )
        pairs = [(p, ex) for p in prompts for ex in examples]
        requests = [
            LogprobRequest(continuations=(ex.target,), messages=self._messages(p, ex))
            for p, ex in pairs
        ]
        values = [v[0] for v in self.llm.logprobs(requests)]
        results = []
        for k in range(len(prompts)):
            chunk = values[k * len(examples) : (k + 1) * len(examples)]
            per_example = [
                ExampleResult(ex.id, ex.target, ex.target, v)
                for ex, v in zip(examples, chunk, strict=True)
            ]
            mean = sum(chunk) / len(chunk) if chunk else 0.0
            results.append(EvalResult(score=mean, n=len(chunk), results=per_example))
        return results

    def sample_many(
        self,
        prompts: Sequence[Prompt],
        examples: Sequence[Example],
        n: int,
        temperature: float,
        seed: int,
        progress: ProgressFn | None = None,
    ) -> list[list[list[tuple[str, str]]]]:
        """`n` sampled answers of every prompt on every example, in one batched call.

        Returns, per prompt, per example, `n` pairs (raw output, extracted
        prediction). Sampling always generates text, also for tasks scored by
        log-probability: their scorer's extraction reads the label from it.
        Every sample is its own cache entry (request seed and sample index), so
        the same call with the same seed is answered from the cache. At
        temperature 0 (greedy, one sample) the seed is ignored, as in `evaluate`.
        """
        if n < 1:
            raise ValueError("sample_many needs n >= 1")
        if n > 1 and temperature <= 0:
            raise ValueError("several samples need a temperature above 0")
        pairs = [(p, ex) for p in prompts for ex in examples]
        if not pairs:
            return [[] for _ in prompts]
        gen = self.task.generation
        requests = [
            GenerationRequest(
                messages=self._messages(p, ex),
                max_tokens=gen.max_tokens,
                temperature=temperature,
                stop=tuple(gen.stop),
                n=n,
                seed=seed if temperature > 0 else 0,
            )
            for p, ex in pairs
        ]
        completions = generate_with_progress(self.llm, requests, progress)
        extract = self.task.scorer.extract
        flat = [[(t, extract(t)) for t in c.texts] for c in completions]
        k = len(examples)
        return [flat[i * k : (i + 1) * k] for i in range(len(prompts))]

    def _messages(self, prompt: Prompt, example: Example) -> tuple[Message, ...]:
        return render_messages(prompt, example.input)

    def _generate(
        self, pairs: list[tuple[Prompt, Example]], progress: ProgressFn | None
    ) -> list[tuple[str, str]]:
        gen = self.task.generation
        requests = [
            GenerationRequest(
                messages=self._messages(p, ex),
                max_tokens=gen.max_tokens,
                temperature=0.0,
                stop=tuple(gen.stop),
                seed=0,
            )
            for p, ex in pairs
        ]
        completions = generate_with_progress(self.llm, requests, progress)
        return [(c.texts[0], self.task.scorer.extract(c.texts[0])) for c in completions]

    def _label_by_logprob(self, pairs: list[tuple[Prompt, Example]]) -> list[tuple[str, str]]:
        """The label word with the highest log-probability, less the prompt's
        calibration prior if it has one.

        Prompts that differ only in calibration send the same requests, so each
        distinct request is asked once: scoring a prompt calibrated and not costs
        the calls of one.
        """
        words = tuple(self.task.label_words or ())
        for prompt, _ in pairs:
            if prompt.calibration and len(prompt.calibration) != len(words):
                raise ConfigError(
                    f"the prompt's calibration has {len(prompt.calibration)} values but task "
                    f"'{self.task.name}' has {len(words)} labels: it was made for another "
                    "task; search again or drop its 'calibration'"
                )
        requests = [
            LogprobRequest(continuations=words, messages=self._messages(p, ex)) for p, ex in pairs
        ]
        unique = list(dict.fromkeys(requests))
        answers = dict(zip(unique, self.llm.logprobs(unique), strict=True))
        out = []
        for (prompt, _), request in zip(pairs, requests, strict=True):
            prior = prompt.calibration or (0.0,) * len(words)
            values = [v - p for v, p in zip(answers[request], prior, strict=True)]
            best = max(range(len(words)), key=lambda i: values[i])
            out.append((words[best], words[best]))
        return out
