"""A loopback OpenAI-compatible server that fails on purpose, for fault and scale tests.

Real HTTP on 127.0.0.1 (a free port), so requests go through the `openai` SDK,
its timeouts and our retries exactly as against a real server; only the answers
are scripted. It records every request body, so tests can also check what the
backend sent (seeds, parameters) rather than what a real model would say.

For scale (tests and bench/scale.py): each request is held `latency` seconds in
its own thread (hundreds can be in flight), a seeded share of requests fails
with 429 or 500 (`fault_rates`), and the server counts requests in flight (and
the most at once) and how many times each distinct body was answered.
"""

from __future__ import annotations

import http.server
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

Reply = Callable[[dict[str, Any]], str]

ERROR_BODIES = {
    401: ("Incorrect API key provided", "invalid_request_error", "invalid_api_key"),
    403: ("This key may not use this model", "invalid_request_error", "forbidden"),
    429: ("Rate limit reached for requests", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request", "server_error", None),
}


class _Server(http.server.ThreadingHTTPServer):
    request_queue_size = 1024
    """The listen backlog: the default 5 refuses connections when hundreds arrive at once."""


class FakeOpenAIServer:
    """Answers POST …/chat/completions and …/completions.

    `status` None answers with `reply(body)`; an HTTP status (401, 403, 429, 500)
    answers that error, with `retry_after` as a Retry-After header when set, for
    the first `failures` requests (None: all of them) and normally after that.
    `hang` reads each request after the first `hang_after` and never answers it
    until `stop()` (or `release()`). `authorizations`, when set, are the only
    Authorization headers accepted (a credential in the URL arrives as Basic, an
    API key as Bearer); any other request gets 401. `latency` holds every request
    that long; `fault_rates` ({429: 0.2}) fails that share of requests at random
    (seeded by `fault_seed`), after the latency.
    """

    def __init__(self, latency: float = 0.0, fault_seed: int = 0) -> None:
        self.latency = latency
        self.fault_rates: dict[int, float] = {}
        self._faults = random.Random(fault_seed)
        self.in_flight = 0
        self.max_in_flight = 0
        self.answered: Counter[str] = Counter()
        """How many times each distinct request body was answered with 200."""
        self.status: int | None = None
        self.failures: int | None = None
        self.retry_after: str | None = None
        self.hang = False
        self.hang_after = 0
        self.reply: Reply = lambda body: "ok"
        self.authorizations: set[str] | None = None
        self.bodies: list[dict[str, Any]] = []
        self.times: list[float] = []
        """time.monotonic() of each request's arrival."""
        self._lock = threading.Lock()
        self._released = threading.Event()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True
            """Headers and body go out in two writes: with Nagle's algorithm the body
            waits for the client's delayed ACK, 40 ms a request."""

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with owner._lock:
                    owner.bodies.append(body)
                    owner.times.append(time.monotonic())
                    count = len(owner.bodies)
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                try:
                    self._handle(body, count)
                finally:
                    with owner._lock:
                        owner.in_flight -= 1

            def _handle(self, body: dict[str, Any], count: int) -> None:
                if owner.latency:
                    time.sleep(owner.latency)
                if owner.hang and count > owner.hang_after:
                    owner._released.wait(timeout=120)
                    self.close_connection = True
                    return
                status = owner.status
                allowed = owner.authorizations
                if allowed is not None and self.headers.get("Authorization") not in allowed:
                    self._error(401)
                elif status is not None and (owner.failures is None or count <= owner.failures):
                    self._error(status)
                elif fault := owner._draw_fault():
                    self._error(fault)
                else:
                    with owner._lock:
                        owner.answered[json.dumps(body, sort_keys=True)] += 1
                    self._answer(body, owner.reply(body))

            def _error(self, status: int) -> None:
                message, kind, code = ERROR_BODIES.get(status, ("error", "server_error", None))
                headers = {"Retry-After": owner.retry_after} if owner.retry_after else {}
                self._send(
                    status, {"error": {"message": message, "type": kind, "code": code}}, headers
                )

            def _answer(self, body: dict[str, Any], text: str) -> None:
                chat = self.path.endswith("/chat/completions")
                choice: dict[str, Any] = {"index": 0, "finish_reason": "stop", "logprobs": None}
                if chat:
                    choice["message"] = {"role": "assistant", "content": text}
                else:
                    choice["text"] = text
                self._send(
                    200,
                    {
                        "id": "fake-1",
                        "object": "chat.completion" if chat else "text_completion",
                        "created": 0,
                        "model": body.get("model", "fake"),
                        "choices": [choice],
                        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
                    },
                )

            def _send(
                self, status: int, data: object, headers: dict[str, str] | None = None
            ) -> None:
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _draw_fault(self) -> int | None:
        with self._lock:
            draw = self._faults.random()
        for status, rate in self.fault_rates.items():
            if draw < rate:
                return status
            draw -= rate
        return None

    def stats(self) -> dict[str, Any]:
        """The counters at this moment, as plain data (bench/scale.py reads them)."""
        with self._lock:
            return {
                "bodies": [json.dumps(b, sort_keys=True) for b in self.bodies],
                "answered": dict(self.answered),
                "max_in_flight": self.max_in_flight,
            }

    @property
    def requests(self) -> int:
        with self._lock:
            return len(self.bodies)

    def wait_for_requests(self, count: int, timeout: float) -> bool:
        """Whether `count` requests arrived within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.requests < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def release(self) -> None:
        """Let hung requests go (unanswered) and answer the ones that come next."""
        self.hang = False
        self._released.set()

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
