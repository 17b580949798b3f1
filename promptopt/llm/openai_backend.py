"""The `openai` backend: the OpenAI API, or with `--base-url` any OpenAI-compatible
server (vLLM, llama.cpp, Ollama).

    openai:<model>

`timeout` (seconds per request), `max_concurrency` (requests in flight),
`max_retries` and the `rpm`/`tpm` limits (requests and tokens per minute) say how
a model is called, not what it answers: a spec records them, but they are not part
of its identity, so a run resumes and a comparison extends with other values, and
they never enter a cache key. The client code (`llm/openai_compat.py`) is
imported only when a model is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from promptopt.core.errors import ConfigError
from promptopt.llm.backend import Backend
from promptopt.llm.base import (
    DEFAULT_TIMEOUT,
    FIRST_TOKEN_LOGPROBS,
    FULL_LOGPROBS,
    LLM,
    model_scope,
    public_url,
)
from promptopt.llm.rate_limits import check_limit


@dataclass(frozen=True)
class OpenAIOptions:
    base_url: str | None = None
    """The server; None = the OpenAI API. May carry a credential, never recorded."""
    api: str = "chat"
    """chat or completions (raw text; full log-probabilities)."""
    max_concurrency: int | None = None
    """Requests in flight at once (`--concurrency`); None: by the server
    (`base.default_concurrency`: 4 on this machine, 32 remote)."""
    timeout: float = DEFAULT_TIMEOUT
    """Seconds each request may take (a run recorded before the option existed has
    no such key and gets this default)."""
    max_retries: int = 3
    """Tries after the first for a request that failed with a connection error, 408,
    409, 429 or 5xx (a timeout is retried once at most)."""
    rpm: int | None = None
    """Requests per minute at most (`--model-option rpm=500`): a paid API tier's limit."""
    tpm: int | None = None
    """Tokens per minute at most (prompt estimate + max_tokens per request)."""

    def __post_init__(self) -> None:
        # Refused when the option is given (`--model-option rpm=0`), before anything runs.
        check_limit("rpm", self.rpm)
        check_limit("tpm", self.tpm)


class OpenAIBackend(Backend):
    name = "openai"
    description = (
        "OpenAI API (needs OPENAI_API_KEY) or any OpenAI-compatible server via --base-url "
        "(vLLM, llama.cpp, Ollama)"
    )
    usage = "'openai:<model>'"
    examples = "openai:gpt-4o-mini | openai:NAME --base-url http://127.0.0.1:8080/v1"
    Options = OpenAIOptions
    call_settings = ("timeout", "max_concurrency", "max_retries", "rpm", "tpm")

    def parse(self, model: str) -> str:
        if not model.strip():
            raise ConfigError("openai needs a model name: write 'openai:<model>'")
        return model

    def record(self, options: OpenAIOptions) -> dict[str, Any]:
        data = super().record(options)
        if options.base_url:
            data["base_url"] = public_url(options.base_url)
        return data

    def scope(self, model: str, options: OpenAIOptions) -> dict[str, str]:
        return model_scope(server=options.base_url)

    def logprob_scope(self, options: OpenAIOptions) -> str:
        return FULL_LOGPROBS if options.api == "completions" else FIRST_TOKEN_LOGPROBS

    def build(self, model: str, options: OpenAIOptions) -> LLM:
        from promptopt.llm.openai_compat import OpenAICompatLLM

        return OpenAICompatLLM(
            model,
            base_url=options.base_url,
            api=options.api,  # type: ignore[arg-type]
            max_concurrency=options.max_concurrency,
            timeout=options.timeout,
            max_retries=options.max_retries,
            rpm=options.rpm,
            tpm=options.tpm,
        )
