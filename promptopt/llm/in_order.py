"""Requests on worker threads, results in request order, and a caller that Ctrl-C
always reaches: the plumbing under the openai backend's batches."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FuturesTimeout
from typing import Any, TypeVar

T = TypeVar("T")

WAIT_SLICE = 0.2
"""Longest time the caller of a batch of requests goes without running Python
code, so without noticing a Ctrl-C."""


def run_in_order(fn: Callable[[T], Any], items: Sequence[T], concurrency: int) -> list[Any]:
    """Apply `fn` to every item with at most `concurrency` in flight, in order.

    Requests run only in daemon worker threads, never in the caller's, and the
    caller waits in short slices: a Ctrl-C reaches it within `WAIT_SLICE` seconds
    whichever thread the kernel delivered the signal to, and never lands inside
    the HTTP stack, which could swallow it while a hung request holds the socket.
    On Ctrl-C or the first error the caller raises at once, items not started are
    dropped, and requests in flight end in the background without holding up the
    exit. (A ThreadPoolExecutor's workers are joined at exit, which kept a
    Ctrl-C'd search alive until every request in flight had timed out.)
    """
    if not items:
        return []
    futures: list[Future[Any]] = [Future() for _ in items]
    queue = iter(range(len(items)))
    lock = threading.Lock()
    failed = threading.Event()  # no new request after the first failure

    def work() -> None:
        while not failed.is_set():
            with lock:
                index = next(queue, None)
            if index is None:
                return
            future = futures[index]
            if not future.set_running_or_notify_cancel():
                continue  # the caller gave up
            try:
                future.set_result(fn(items[index]))
            except BaseException as exc:  # handed to the caller, whatever it is
                failed.set()
                future.set_exception(exc)

    for number in range(min(concurrency, len(items))):
        name = f"promptopt-openai-{number}"
        threading.Thread(target=work, name=name, daemon=True).start()
    try:
        return [_result_in_slices(future) for future in futures]
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def _result_in_slices(future: Future[Any]) -> Any:
    """The future's result, waited for in slices of `WAIT_SLICE` seconds so that
    signal handlers run in between."""
    while True:
        try:
            return future.result(timeout=WAIT_SLICE)
        except FuturesTimeout:
            continue
