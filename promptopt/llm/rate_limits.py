"""Requests and tokens per minute to an OpenAI-compatible server (`rpm`, `tpm`).

A paid API's tier caps both. A search that sends faster only collects 429s: each
is retried after its Retry-After, which costs the time the limit would have cost
anyway, and enough of them in a row end the run. So with a limit set, each try of
a request (a retry too: the server counts it) first takes one request and its
projected tokens (prompt estimate + max_tokens) from pyrate-limiter's buckets,
waiting in its worker thread until they fit. Without limits nothing waits.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from promptopt.core.errors import ConfigError
from promptopt.llm.tokens import estimate_text_tokens

if TYPE_CHECKING:
    from pyrate_limiter import Limiter

MINUTE_MS = 60_000


def check_limit(name: str, value: int | None) -> int | None:
    """A per-minute limit as given (None: no limit); below 1 is a one-line error."""
    if value is not None and value < 1:
        raise ConfigError(f"{name} must be at least 1 per minute, got {value}: e.g. {name}=500")
    return value


class RateLimits:
    """The per-minute limits of one model, shared by its worker threads."""

    def __init__(
        self, rpm: int | None = None, tpm: int | None = None, window_ms: int = MINUTE_MS
    ) -> None:
        self.rpm = check_limit("rpm", rpm)
        self.tpm = check_limit("tpm", tpm)
        self.window_ms = int(window_ms)
        """The limits' window: a minute, shorter in tests."""
        self._limiters: tuple[Limiter | None, Limiter | None] | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = {**self.__dict__, "_limiters": None}  # limiters hold locks and threads
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    def _built(self) -> tuple[Limiter | None, Limiter | None]:
        """The limiters, made by the first request: every worker thread shares them
        (pyrate-limiter is imported only by a model that has a limit)."""
        from pyrate_limiter import Limiter, Rate

        with self._lock:
            if self._limiters is None:
                made = [
                    Limiter(Rate(limit, self.window_ms)) if limit else None
                    for limit in (self.rpm, self.tpm)
                ]
                self._limiters = (made[0], made[1])
            return self._limiters

    def wait(self, params: dict[str, Any]) -> None:
        """Block until one more request with these create() parameters fits the limits."""
        if self.rpm is None and self.tpm is None:
            return
        requests, tokens = self._built()
        if requests is not None:
            requests.try_acquire("requests", 1)
        if tokens is not None and self.tpm is not None:
            # A request larger than a minute's tokens waits for a whole empty minute.
            tokens.try_acquire("tokens", min(projected(params), self.tpm))


def projected(params: dict[str, Any]) -> int:
    """Tokens one request may use: its prompt, estimated from characters, and at most
    max_tokens more."""
    text = params.get("prompt")
    if text is None:
        text = " ".join(str(m.get("content", "")) for m in params.get("messages", []))
    return estimate_text_tokens(str(text)) + int(params.get("max_tokens") or 0)
