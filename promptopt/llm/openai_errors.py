"""When an OpenAI-compatible request is tried again, and the one-line error when
it is not.

The backend retries requests itself rather than through the SDK: the SDK cannot
bound a timeout to one retry, and a hung server must fail after about two
timeouts (`TIMEOUT_RETRIES`). Errors name the server without credentials and say
what to change (`--timeout`, `--base-url`, `--concurrency`, the key's variable).
"""

from __future__ import annotations

import math
import os
import random

import openai

from promptopt.core.errors import AuthError, ModelError

TIMEOUT_RETRIES = 1
"""A request that timed out is tried once more, not `max_retries` times: a stuck
connection on a busy API is worth one retry, a hung server is not worth four."""
RETRY_STATUSES = frozenset({408, 409, 429})
"""Besides 5xx: the statuses the OpenAI SDK retries too."""
MAX_RETRY_WAIT = 60.0
"""The longest a server's Retry-After is obeyed before the next try."""


def one_line(text: object, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def retry_wait(error: openai.OpenAIError, attempt: int, max_retries: int) -> float | None:
    """Seconds to wait before trying again after `error` on try `attempt` (from 0),
    or None to give up: connection errors and HTTP 408, 409, 429 and 5xx are
    transient, a timeout is retried at most `TIMEOUT_RETRIES` times."""
    transient = isinstance(error, openai.APIConnectionError) or (
        isinstance(error, openai.APIStatusError)
        and (error.status_code in RETRY_STATUSES or error.status_code >= 500)
    )
    retries = max_retries if transient else 0
    if isinstance(error, openai.APITimeoutError):  # a kind of APIConnectionError
        retries = min(max_retries, TIMEOUT_RETRIES)
    if attempt >= retries:
        return None
    asked = retry_after(error)
    if asked is not None:
        return min(asked, MAX_RETRY_WAIT)
    return min(0.5 * 2**attempt, 8.0) * (1 - 0.25 * random.random())


def retry_after(error: openai.OpenAIError) -> float | None:
    """The wait a response asked for (Retry-After or retry-after-ms), in seconds."""
    headers = getattr(getattr(error, "response", None), "headers", None)
    if headers is None:
        return None
    for header, unit in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            seconds = float(headers.get(header, "")) * unit
        except (TypeError, ValueError):
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None


def model_error(
    exc: openai.OpenAIError,
    tries: int,
    *,
    where: str,
    model_id: str,
    timeout: float,
    api_key_env: str,
) -> ModelError:
    """The one-line error for a request to the server at `where` that failed for
    good after `tries` tries."""
    tried = "once" if tries == 1 else f"{tries} times"
    if isinstance(exc, openai.APITimeoutError):
        return ModelError(
            f"the model server at {where} did not answer within {timeout:g} s "
            f"(tried {tried}): raise --timeout or check the server"
        )
    if isinstance(exc, openai.APIConnectionError):
        return ModelError(f"cannot reach the model server at {where}: start it or fix --base-url")
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        if os.environ.get(api_key_env):
            problem, fix = f"rejected the API key in {api_key_env}", "export a valid key"
        else:
            problem, fix = "wants an API key", f"export it as {api_key_env}"
        return AuthError(f"{where} {problem} (HTTP {exc.status_code}): {fix}")
    if isinstance(exc, openai.NotFoundError):
        return ModelError(
            f"model '{model_id}' (or its endpoint) was not found at {where}: "
            f"check --model and --base-url ({one_line(exc.message)})"
        )
    if isinstance(exc, openai.RateLimitError):
        return ModelError(
            f"{where} kept rate-limiting requests (HTTP 429, tried {tried}): "
            f"lower --concurrency or wait ({one_line(exc.message)})"
        )
    if isinstance(exc, openai.APIStatusError):
        return ModelError(
            f"the model server at {where} refused a request for '{model_id}' "
            f"(HTTP {exc.status_code}, tried {tried}): {one_line(exc.message)}"
        )
    return ModelError(f"the model server at {where} failed for '{model_id}': {one_line(exc)}")
