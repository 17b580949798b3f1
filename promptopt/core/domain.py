"""Plain data shared by every layer: examples, prompts, model requests, results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Example:
    """One task item.

    `target` is what the scorer compares against; `aliases` are other accepted
    answers; `demo_output` is what a demonstration shows (e.g. a worked GSM8K
    solution) when it differs from the bare target.
    """

    id: str
    input: str
    target: str
    aliases: tuple[str, ...] = ()
    demo_output: str | None = None

    @property
    def shown_output(self) -> str:
        return self.demo_output if self.demo_output is not None else self.target

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "input": self.input,
            "target": self.target,
            "aliases": list(self.aliases),
            "demo_output": self.demo_output,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Example:
        return cls(
            id=str(data["id"]),
            input=data["input"],
            target=data["target"],
            aliases=tuple(data.get("aliases", ())),
            demo_output=data.get("demo_output"),
        )


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class GenerationRequest:
    """A batch-first generation request: chat `messages` or a raw `text` prompt.

    `n` samples at `temperature` > 0 are distinct samples, each cached under its
    own sample index.
    """

    messages: tuple[Message, ...] = ()
    text: str | None = None
    max_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    n: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if bool(self.messages) == (self.text is not None):
            raise ValueError("GenerationRequest needs exactly one of messages or text")

    @classmethod
    def chat(cls, user: str, system: str | None = None, **params: Any) -> GenerationRequest:
        messages = ((Message("system", system),) if system else ()) + (Message("user", user),)
        return cls(messages=messages, **params)


@dataclass(frozen=True)
class LogprobRequest:
    """Log-probability of each continuation given a context (chat or raw text)."""

    continuations: tuple[str, ...]
    messages: tuple[Message, ...] = ()
    text: str | None = None


@dataclass
class Completion:
    """The n sampled texts for one request, with token counts and cache origin."""

    texts: list[str]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False


@dataclass
class Usage:
    """The model work of a run: every request the model or the shared call cache answered.

    `calls` and the tokens count both alike (what the budget counts, so a rerun with
    the same seed and budget walks the same search, from the cache); `cache_hits`
    and the `cached_*` tokens are the part the cache answered, which costs nothing.
    `new_*` is the rest: what the model was asked for, and what is priced.
    """

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    held_back_calls: int = 0
    """Calls of the budget kept for a later phase of the same search (the
    demonstration stage): the budget counts them as spent until they are released."""

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def new_calls(self) -> int:
        return self.calls - self.cache_hits

    @property
    def new_prompt_tokens(self) -> int:
        return self.prompt_tokens - self.cached_prompt_tokens

    @property
    def new_completion_tokens(self) -> int:
        return self.completion_tokens - self.cached_completion_tokens

    def add(self, calls: int, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        """Work done for the run, by the model or the cache."""
        self.calls += calls
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens

    def add_cached(self, calls: int, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        """Mark that much of the work (added with `add`) as answered by the cache."""
        self.cache_hits += calls
        self.cached_prompt_tokens += prompt_tokens
        self.cached_completion_tokens += completion_tokens

    def minus(self, other: Usage) -> Usage:
        """What is left of this usage without `other`, a share of it."""
        return Usage(
            calls=self.calls - other.calls,
            prompt_tokens=self.prompt_tokens - other.prompt_tokens,
            completion_tokens=self.completion_tokens - other.completion_tokens,
            cache_hits=self.cache_hits - other.cache_hits,
            cached_prompt_tokens=self.cached_prompt_tokens - other.cached_prompt_tokens,
            cached_completion_tokens=self.cached_completion_tokens - other.cached_completion_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "calls": self.calls,
            "new_calls": self.new_calls,
            "cache_hits": self.cache_hits,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "new_prompt_tokens": self.new_prompt_tokens,
            "new_completion_tokens": self.new_completion_tokens,
        }

    def model_calls_dict(self) -> dict[str, int]:
        """Only what the model was asked for, and the cache's hits beside it: what an
        `eval` report records (no budget there; its `calls` are cache misses)."""
        return {
            "calls": self.new_calls,
            "prompt_tokens": self.new_prompt_tokens,
            "completion_tokens": self.new_completion_tokens,
            "cache_hits": self.cache_hits,
        }


@dataclass(frozen=True)
class Budget:
    """Hard caps for a search; None means unlimited."""

    max_calls: int | None = None
    max_tokens: int | None = None


DEMO_FORMATS = ("chat", "text")
"""How demonstrations reach the model: `chat` turns (the instruction as the system
message, each demonstration a user/assistant pair, then the query) or one `text`
block (instruction, demonstrations and query in one user message)."""


@dataclass(frozen=True)
class Prompt:
    """Instruction + optional demonstrations + the task's input template.

    `demo_format` only matters when there are demonstrations: a prompt without
    them is one user message either way, so its scores and cache entries do not
    depend on it.

    `calibration` only matters for tasks scored by label log-probabilities: one
    log prior per label word, subtracted before the argmax (empty: none). A small
    model under a given prompt often prefers one label whatever the input; the
    prior is that preference, measured by the search on unlabeled train inputs
    (see promptopt.evaluation.calibration), and is part of the prompt so `eval` reproduces
    the search's decisions without measuring it again.
    """

    instruction: str
    template: str
    demonstrations: tuple[Example, ...] = ()
    demo_format: str = "chat"
    calibration: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.demo_format not in DEMO_FORMATS:
            raise ValueError(
                f"demo_format must be one of {', '.join(DEMO_FORMATS)}, not '{self.demo_format}'"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "instruction": self.instruction,
            "template": self.template,
            "demonstrations": [d.to_dict() for d in self.demonstrations],
            "demo_format": self.demo_format,
            "calibration": list(self.calibration),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Prompt:
        """Exports written before `demo_format` existed rendered demonstrations as
        text, so that is what a missing key means."""
        return cls(
            instruction=data["instruction"],
            template=data["template"],
            demonstrations=tuple(Example.from_dict(d) for d in data.get("demonstrations", ())),
            demo_format=data.get("demo_format", "text"),
            calibration=tuple(float(v) for v in data.get("calibration", ())),
        )


@dataclass
class ExampleResult:
    example_id: str
    output: str
    prediction: str
    score: float


@dataclass
class EvalResult:
    """Per-example outputs and their mean score for one prompt on one split."""

    score: float
    n: int
    results: list[ExampleResult] = field(default_factory=list)

    def to_dict(self, with_examples: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {"score": self.score, "n": self.n}
        if with_examples:
            data["examples"] = [r.__dict__ for r in self.results]
        return data


@dataclass
class Candidate:
    """A prompt a strategy considered, with what is known of its dev score."""

    prompt: Prompt
    dev_score: float
    dev_n: int
    origin: str = ""


VOTE_RULES = ("plurality", "weighted")


@dataclass(frozen=True)
class Ensemble:
    """Several prompts answering together: `samples` answers from each member at
    `temperature` (sampled with `seed`), combined by a plurality vote over all of
    them, or a vote weighted by `weights` (one per member) under `vote: weighted`.
    """

    members: tuple[Prompt, ...]
    vote: str = "plurality"
    samples: int = 1
    temperature: float = 0.0
    weights: tuple[float, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("an ensemble needs at least one member prompt")
        if self.vote not in VOTE_RULES:
            raise ValueError(f"vote must be one of {', '.join(VOTE_RULES)}, not '{self.vote}'")
        if self.samples < 1:
            raise ValueError("an ensemble needs at least one sample per member")
        if self.samples > 1 and self.temperature <= 0:
            raise ValueError("several samples per member need a temperature above 0")
        if self.weights and len(self.weights) != len(self.members):
            raise ValueError("an ensemble needs one weight per member (or none)")

    def member_weights(self) -> tuple[float, ...]:
        """The weight of each member's votes: 1 each unless the vote is weighted."""
        if self.vote == "weighted" and self.weights:
            return self.weights
        return tuple(1.0 for _ in self.members)

    def to_dict(self) -> dict[str, Any]:
        return {
            "members": [m.to_dict() for m in self.members],
            "vote": self.vote,
            "samples": self.samples,
            "temperature": self.temperature,
            "weights": list(self.weights),
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ensemble:
        return cls(
            members=tuple(Prompt.from_dict(m) for m in data["members"]),
            vote=data.get("vote", "plurality"),
            samples=int(data.get("samples", 1)),
            temperature=float(data.get("temperature", 0.0)),
            weights=tuple(float(w) for w in data.get("weights", ())),
            seed=int(data.get("seed", 0)),
        )
