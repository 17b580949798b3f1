"""Backend for the OpenAI API and any OpenAI-compatible server (vLLM, llama.cpp, Ollama).

Requests run on at most `max_concurrency` threads (`--concurrency`; by default 4
for a server on this machine, 32 for a remote one) and come back in order. Each
request gets `timeout` seconds and is retried by this module, not the SDK (see
`_create`): a server that hangs fails after about two timeouts, and Ctrl-C never
waits for requests in flight (see `in_order.py`). Every call sends `max_tokens`
(llama.cpp ignores `max_completion_tokens`), and `n` samples are `n` separate
calls with seeds `seed, seed + 1, ...` because many servers ignore `n`.

Log-probabilities use the completions endpoint with `echo=True`: the server
scores context + continuation as one prompt, and the continuation's score is
the sum over the echoed tokens that start at or after the end of the context
(located from the end of the prompt, since llama.cpp counts offsets with
special tokens rendered as empty text). Chat contexts are rendered to text by
`chat_template_fn`. llama-cpp-python misaligns echoed log-probabilities by one
token unless the prompt starts with the model's BOS token; that is detected and
reported, and `logprob_prefix` (the BOS text, e.g. "<|im_start|>" for SmolLM2)
is prepended to raw-text contexts to avoid it.

A chat-only API (the OpenAI API's chat models, `api="chat"` without a chat
template) cannot score a given continuation. There, log-probabilities of chat
contexts come from the first token of the reply: one greedy call with
`top_logprobs`, and each continuation gets the probability mass of the listed
tokens that begin it (`logprob_scope = "first_token"`). That picks a label
word (sst2's "positive"/"negative") the way API users classify; it cannot score
a whole answer, so APE's likelihood objective refuses such a model.

The API key is read from an environment variable when the client is built and
is never kept on an attribute of this object (pickling drops the client).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

import openai

from promptopt.core.domain import Completion, GenerationRequest, LogprobRequest, Message
from promptopt.core.errors import ModelError
from promptopt.llm.base import (
    DEFAULT_TIMEOUT,
    FIRST_TOKEN_LOGPROBS,
    FULL_LOGPROBS,
    default_concurrency,
    model_scope,
    public_url,
)
from promptopt.llm.in_order import run_in_order
from promptopt.llm.openai_errors import model_error, one_line, retry_wait
from promptopt.llm.openai_logprobs import (
    first_token_scores,
    offsets_from_tokens,
    sum_continuation_logprobs,
)
from promptopt.llm.rate_limits import RateLimits

ChatTemplateFn = Callable[[tuple[Message, ...]], str]
T = TypeVar("T")

LOCAL_PLACEHOLDER_KEY = "not-needed"
TOP_LOGPROBS = 20
"""The most alternatives the OpenAI API lists per token."""


def _cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """Truncate at the first stop string, for servers that do not honour `stop`."""
    cut = len(text)
    for s in stop:
        if s:
            index = text.find(s)
            if index != -1:
                cut = min(cut, index)
    return text[:cut]


class OpenAICompatLLM:
    """The `LLM` protocol over an OpenAI(-compatible) HTTP API.

    `api` says which endpoint the server is for: with "completions" (or a
    `chat_template_fn`), continuations are scored in full; with "completions" and
    a template, chat requests are rendered and sent to the completions endpoint
    too. With "chat" and no template, chat contexts are scored by their first
    token only (see the module docstring). `logprob_prefix` is prepended to
    raw-text contexts when scoring.
    """

    kind = "openai"
    supports_embeddings_input = False

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        api: Literal["chat", "completions"] = "chat",
        max_concurrency: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        rpm: int | None = None,
        tpm: int | None = None,
        chat_template_fn: ChatTemplateFn | None = None,
        logprob_prefix: str = "",
    ) -> None:
        if api not in ("chat", "completions"):
            raise ModelError(f"unknown api '{api}': use 'chat' or 'completions'")
        if max_concurrency is None:
            max_concurrency = default_concurrency(base_url)
        if max_concurrency < 1:
            raise ModelError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ModelError(f"timeout must be a positive number of seconds, got {timeout}")
        self.model_id = model
        self.base_url = base_url
        self.cache_scope = model_scope(server=base_url)
        self.api_key_env = api_key_env
        self.api = api
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.limits = RateLimits(rpm, tpm)
        self.chat_template_fn = chat_template_fn
        self.logprob_prefix = logprob_prefix
        self.supports_logprobs = True
        self.logprob_scope = (
            FULL_LOGPROBS
            if api == "completions" or chat_template_fn is not None
            else FIRST_TOKEN_LOGPROBS
        )
        self._client = self._make_client()

    # -- construction -------------------------------------------------------

    def _make_client(self) -> openai.OpenAI:
        key = os.environ.get(self.api_key_env) or None
        if key is None:
            if self.base_url is None:
                raise ModelError(
                    f"{self.api_key_env} is not set: export it, or pass --base-url "
                    "for a local server"
                )
            key = LOCAL_PLACEHOLDER_KEY
        kwargs: dict[str, Any] = {
            "api_key": key,
            "timeout": self.timeout,
            "max_retries": 0,  # `_create` retries
        }
        if self.base_url is not None:
            kwargs["base_url"] = self.base_url
        return openai.OpenAI(**kwargs)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_client", None)  # holds the API key
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._client = self._make_client()

    def __repr__(self) -> str:
        base_url = public_url(self.base_url) if self.base_url else None
        return f"OpenAICompatLLM(model={self.model_id!r}, base_url={base_url!r}, api={self.api!r})"

    @property
    def _where(self) -> str:
        """The server, as every message names it: without a credential in the URL."""
        return public_url(self.base_url) if self.base_url else "the OpenAI API"

    def _scrub(self, text: str) -> str:
        """`text` (a server's or the SDK's message) without the URL's credential."""
        if self.base_url and self.base_url != public_url(self.base_url):
            text = text.replace(self.base_url, public_url(self.base_url))
            userinfo = self.base_url.partition("://")[2].partition("@")[0]
            for secret in {userinfo, userinfo.partition(":")[2]} - {""}:
                text = text.replace(secret, "***")
        return text

    @contextmanager
    def _reading(self, endpoint: str) -> Iterator[None]:
        """Interpret a response: one the SDK parsed into the wrong shape (a server
        that answers 200 with something other than the OpenAI schema) is a
        ModelError, not an AttributeError from deep in the parsing."""
        try:
            yield
        except (AttributeError, TypeError, IndexError, KeyError, ValueError) as exc:
            raise ModelError(
                f"the model server at {self._where} sent a {endpoint} response that is not "
                f"in the OpenAI format ({self._scrub(one_line(exc, 120))}): check that "
                "--base-url points at an OpenAI-compatible API (usually ending in /v1)"
            ) from None

    # -- protocol -------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        calls: list[tuple[int, GenerationRequest, int]] = [
            (index, request, request.seed + i)
            for index, request in enumerate(requests)
            for i in range(request.n)
        ]
        results = self._run(lambda call: self._generate_one(call[1], call[2]), calls)
        completions = [Completion(texts=[]) for _ in requests]
        for (index, _, _), (text, prompt_tokens, completion_tokens) in zip(
            calls, results, strict=True
        ):
            completion = completions[index]
            completion.texts.append(text)
            completion.prompt_tokens += prompt_tokens
            completion.completion_tokens += completion_tokens
        return completions

    def logprobs(self, requests: Sequence[LogprobRequest]) -> list[list[float]]:
        if self.logprob_scope == FIRST_TOKEN_LOGPROBS and all(r.text is None for r in requests):
            return self._run(self._first_token_scores, requests)
        calls: list[tuple[int, str, str]] = []
        for index, request in enumerate(requests):
            context = self._context_text(request)
            calls.extend((index, context, continuation) for continuation in request.continuations)
        scores = self._run(lambda call: self._score_one(call[1], call[2]), calls)
        out: list[list[float]] = [[] for _ in requests]
        for (index, _, _), score in zip(calls, scores, strict=True):
            out[index].append(score)
        return out

    # -- one call each ----------------------------------------------------------

    def _generate_one(self, request: GenerationRequest, seed: int) -> tuple[str, int, int]:
        params: dict[str, Any] = {
            "model": self.model_id,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": seed,
        }
        if request.stop:
            params["stop"] = list(request.stop)
        prompt_text = request.text
        if prompt_text is None and self.api == "completions" and self.chat_template_fn:
            prompt_text = self.chat_template_fn(request.messages)
        if prompt_text is None:
            messages = [{"role": m.role, "content": m.content} for m in request.messages]
            response = self._call(self._client.chat.completions.create, messages=messages, **params)
            with self._reading("chat completion"):
                text = (response.choices[0].message.content or "") if response.choices else ""
        else:
            response = self._call(self._client.completions.create, prompt=prompt_text, **params)
            with self._reading("completion"):
                text = (response.choices[0].text or "") if response.choices else ""
        with self._reading("completion"):
            usage = getattr(response, "usage", None)
            prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
            completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
            if not isinstance(text, str):
                raise TypeError(f"the reply text is {type(text).__name__}, not a string")
            return _cut_at_stop(text, request.stop), prompt_tokens, completion_tokens

    def _first_token_scores(self, request: LogprobRequest) -> list[float]:
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        response = self._call(
            self._client.chat.completions.create,
            model=self.model_id,
            messages=messages,
            max_tokens=1,
            temperature=0.0,
            logprobs=True,
            top_logprobs=TOP_LOGPROBS,
        )
        with self._reading("chat completion"):
            choice = response.choices[0] if response.choices else None
            content = getattr(getattr(choice, "logprobs", None), "content", None) or []
            listed = (getattr(content[0], "top_logprobs", None) or []) if content else []
            top = [(str(t.token), float(t.logprob)) for t in listed]
        if not top:
            raise ModelError(
                f"the server at {self._where} returned no top log-probabilities for "
                f"'{self.model_id}': it must support chat completions with logprobs and "
                "top_logprobs, or use --api completions"
            )
        return first_token_scores(top, request.continuations)

    def _context_text(self, request: LogprobRequest) -> str:
        if request.text is not None:
            prefix = self.logprob_prefix
            return request.text if request.text.startswith(prefix) else prefix + request.text
        if self.chat_template_fn is None:
            raise ModelError(
                f"log-probabilities of chat contexts need a completions-capable server and a "
                f"chat template for '{self.model_id}': pass a chat template or use a text context"
            )
        return self.chat_template_fn(request.messages)

    def _score_one(self, context: str, continuation: str) -> float:
        prompt = context + continuation
        response = self._call(
            self._client.completions.create,
            model=self.model_id,
            prompt=prompt,
            echo=True,
            logprobs=1,
            max_tokens=1,  # 0 means "unlimited" on llama.cpp; the generated token is skipped
            temperature=0.0,
        )
        with self._reading("completion"):
            choice = response.choices[0] if response.choices else None
            logprobs = getattr(choice, "logprobs", None)
            token_logprobs = list(getattr(logprobs, "token_logprobs", None) or [])
            tokens = [str(t) for t in getattr(logprobs, "tokens", None) or []]
            offsets = [int(o) for o in getattr(logprobs, "text_offset", None) or []]
            echoed = str(getattr(choice, "text", None) or "")
        if not token_logprobs:
            raise ModelError(
                f"the server at {self._where} returned no prompt log-probabilities for "
                f"'{self.model_id}': it must support completions with echo=True and logprobs"
            )
        if not offsets:
            offsets = offsets_from_tokens(tokens)
        start, end = self._continuation_window(echoed, prompt, continuation, tokens, offsets)
        with self._reading("completion"):
            score = sum_continuation_logprobs(token_logprobs, offsets, start, end)
        if math.isnan(score):
            raise ModelError(f"the server at {self._where} returned NaN log-probabilities")
        return score

    def _continuation_window(
        self,
        echoed: str,
        prompt: str,
        continuation: str,
        tokens: Sequence[str],
        offsets: Sequence[int],
    ) -> tuple[int, int]:
        """Where the continuation sits in the server's offsets, anchored at the prompt's end.

        Servers that render special tokens (BOS, <|im_end|>) as empty text count
        offsets in that rendering, so `len(context)` is not where the continuation
        starts; the generated text after the echoed prompt tells where the prompt
        ends. The continuation itself must be plain text.
        """
        if not tokens or len(tokens) != len(offsets) or not echoed.startswith(prompt):
            return len(prompt) - len(continuation), len(prompt)
        generated = echoed[len(prompt) :]
        if generated and not "".join(tokens).endswith(generated):
            # llama-cpp-python (<= 0.3.x) scores each prompt token with the distribution
            # *after* it when the prompt does not start with BOS, and then drops the
            # generated token: the numbers are unusable.
            raise ModelError(
                f"the server at {self._where} returned prompt log-probabilities shifted by one "
                "token (llama-cpp-python does this when the prompt does not start with the "
                "model's BOS token): set logprob_prefix to the BOS token text, or use a chat "
                "template that starts with it"
            )
        prompt_end = offsets[-1] + len(tokens[-1]) - len(generated)
        return prompt_end - len(continuation), prompt_end

    # -- plumbing -------------------------------------------------------------------

    def _run(self, fn: Callable[[T], Any], items: Sequence[T]) -> list[Any]:
        """`fn` on every item, `max_concurrency` at a time, in order (see `in_order`)."""
        return run_in_order(fn, items, self.max_concurrency)

    def _call(self, create: Callable[..., Any], **params: Any) -> Any:
        """One API call (retried by `_create`); SDK errors, a body that is not
        JSON and one that is not an object become ModelError, without credentials."""
        try:
            response = self._create(create, **params)
        except ModelError as exc:
            raise type(exc)(self._scrub(str(exc))) from exc.__cause__
        if isinstance(response, str | bytes) or not hasattr(response, "choices"):
            # The SDK hands back the body as text when it is not JSON.
            raise ModelError(
                f"the model server at {self._where} answered with something other than an "
                f"OpenAI JSON response ({self._scrub(one_line(response, 80))}): check that "
                "--base-url points at an OpenAI-compatible API (usually ending in /v1)"
            )
        return response

    def _create(self, create: Callable[..., Any], **params: Any) -> Any:
        """One request, retried here rather than by the SDK: connection errors and
        HTTP 408, 409, 429 and 5xx up to `max_retries` times, after the server's
        Retry-After or an exponential backoff, but a timeout only `TIMEOUT_RETRIES`
        times, so `--timeout` bounds how long a hung server holds a search."""
        attempt = 0
        while True:
            self.limits.wait(params)
            try:
                return create(**params)
            except ValueError as exc:  # json.JSONDecodeError: a body that claims JSON but is not
                raise ModelError(
                    f"the model server at {self._where} sent a response that cannot be parsed "
                    f"as JSON ({one_line(exc, 120)}): check that --base-url points at an "
                    "OpenAI-compatible API (usually ending in /v1)"
                ) from exc
            except openai.OpenAIError as exc:
                wait = retry_wait(exc, attempt, self.max_retries)
                if wait is None:
                    raise self._model_error(exc, tries=attempt + 1) from exc
            time.sleep(wait)
            attempt += 1

    def _model_error(self, exc: openai.OpenAIError, tries: int) -> ModelError:
        return model_error(
            exc,
            tries,
            where=self._where,
            model_id=self.model_id,
            timeout=self.timeout,
            api_key_env=self.api_key_env,
        )
