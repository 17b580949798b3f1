"""The openai backend under load, against a loopback OpenAI-compatible server with a
fixed latency per request (issue 16's measurement).

1. Throughput: N distinct chat requests x 4 rounds through the model stack
   (`OpenAICompatLLM` <- meter, as a search builds it) with `--concurrency N`, for
   N = 1, 8, 64, 256: requests/s as a ratio to the ideal N / latency.
2. Budget under faults: `promptopt search` (APE on antonyms, `--concurrency 64`,
   `--budget 60`, `max_retries=8`: at 20% a request fails 4 tries in a row once in
   625, and a search sends ~200) against the same server failing 20% of requests
   with 429 (Retry-After: 0): model calls charged against the budget (overshoot must be 0),
   requests answered twice or charged for something not answered, and requests
   never answered.

The server is tests/llm/fake_openai_server.py (real HTTP in threads, so hundreds of
requests can be in flight; the repository root is put on sys.path for it), run in a
child process so that its threads do not share this process's interpreter lock.
Read-modify-writes bench/results/scale.json, keeping other keys ("grid" comes from
bench/scale_grid.py).

    PROMPTOPT_DATA_DIR=../shared/data python bench/scale.py [--latency 0.3]

The client's CPU time per request is printed too: one interpreter's requests/s
cannot exceed 1000 / (its CPU ms per request), so where the ideal rate is above
that (256 in flight at 300 ms asks 853 a second), the client's per-request work,
not the latency, is the limit.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from promptopt.core.domain import GenerationRequest, Usage  # noqa: E402
from promptopt.llm.openai_compat import OpenAICompatLLM  # noqa: E402
from promptopt.llm.stack import layered  # noqa: E402
from tests.llm.fake_openai_server import FakeOpenAIServer  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "scale.json"
IN_FLIGHT = (1, 8, 64, 256)
ROUNDS = 4
BUDGET = 60


def last_word(body: dict[str, Any]) -> str:
    """A deterministic answer from the prompt, like tests/plugin_backend.py's parrot."""
    messages = body.get("messages") or [{"content": body.get("prompt", "")}]
    words = str(messages[-1]["content"]).split() or [""]
    return words[-1]


class ServerProcess:
    """The loopback server in a child process; `stats()` reads its counters."""

    def __init__(self, latency: float, fault_rates: dict[int, float] | None = None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(child, latency, fault_rates or {}))
        self._process.start()
        self.url: str = self._conn.recv()

    def stats(self) -> dict[str, Any]:
        self._conn.send("stats")
        return self._conn.recv()

    def stop(self) -> None:
        self._conn.send("stop")
        self._process.join(timeout=10)


def _serve(conn: Any, latency: float, fault_rates: dict[int, float]) -> None:
    server = FakeOpenAIServer(latency=latency)
    server.reply = last_word
    server.fault_rates = fault_rates
    server.retry_after = "0"
    conn.send(server.url)
    while conn.recv() == "stats":
        conn.send(server.stats())
    server.stop()


def throughput(latency: float, in_flight: int) -> dict[str, float]:
    server = ServerProcess(latency)
    base = OpenAICompatLLM("fake", base_url=server.url, max_concurrency=in_flight, timeout=30)
    llm = layered(base, Usage(), None, None, None)
    requests = [
        GenerationRequest.chat(f"request {in_flight}-{i}", max_tokens=4)
        for i in range(in_flight * ROUNDS)
    ]
    try:
        started, cpu = time.perf_counter(), time.process_time()
        llm.generate(requests)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        seen = server.stats()["max_in_flight"]
    finally:
        server.stop()
    rate = len(requests) / wall
    ideal = in_flight / latency
    return {
        "requests": len(requests),
        "wall_s": round(wall, 2),
        "requests_per_s": round(rate, 1),
        "ideal_per_s": round(ideal, 1),
        "ratio": round(rate / ideal, 3),
        "max_in_flight_seen": seen,
        "client_cpu_ms_per_request": round(1000 * cpu / len(requests), 2),
    }


def budget_under_faults(latency: float) -> dict[str, Any]:
    server = ServerProcess(latency, {429: 0.2})
    try:
        export, stats = _search(server)
    finally:
        server.stop()
    usage = export["usage"]
    search_calls = usage["search"]["calls"]
    charged = search_calls + usage["test_eval"]["calls"]
    answered = sum(stats["answered"].values())
    return {
        "budget_calls": BUDGET,
        "search_calls_charged": search_calls,
        "all_calls_charged": charged,
        "requests_sent": len(stats["bodies"]),
        "faults_injected": len(stats["bodies"]) - answered,
        "answers": answered,
        "budget_overshoot_calls": max(0, search_calls - BUDGET),
        "double_charged": sum(n - 1 for n in stats["answered"].values())
        + max(0, charged - answered),
        "unanswered": len(set(stats["bodies"])) - len(stats["answered"]),
    }


def _search(server: ServerProcess) -> tuple[dict[str, Any], dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="promptopt-scale-") as tmp:
        run_dir, out = Path(tmp) / "run", Path(tmp) / "best.json"
        command = [
            sys.executable, "-c", "from promptopt.cli import main; main()",
            "search", "--task", "antonyms",
            "--strategy", "ape", "--model", "openai:fake", "--base-url", server.url,
            "--proposer", "openai:fake", "--proposer-base-url", server.url,
            "--concurrency", "64", "--budget", str(BUDGET), "--no-cache",
            "--model-option", "max_retries=8", "--proposer-option", "max_retries=8",
            "--run-dir", str(run_dir), "--out", str(out),
        ]  # fmt: skip
        env = {**os.environ, "OPENAI_API_KEY": "sk-bench"}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise SystemExit(f"the search failed:\n{done.stderr[-2000:]}")
        return json.loads(out.read_text()), server.stats()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per request")
    args = parser.parse_args()
    rates = {}
    for n in IN_FLIGHT:
        rates[str(n)] = row = throughput(args.latency, n)
        print(
            f"{n:>4} in flight: {row['requests_per_s']:7.1f} requests/s, ideal "
            f"{row['ideal_per_s']:7.1f}: ratio {row['ratio']:.3f} "
            f"(server saw {row['max_in_flight_seen']} at once; client CPU "
            f"{row['client_cpu_ms_per_request']} ms a request)",
            flush=True,
        )
    faults = budget_under_faults(args.latency)
    print(
        f"search at --budget {BUDGET} with 20% 429s: {faults['search_calls_charged']} search "
        f"calls charged ({faults['all_calls_charged']} with the test report), "
        f"{faults['faults_injected']} faults retried; overshoot "
        f"{faults['budget_overshoot_calls']}, double charged {faults['double_charged']}, "
        f"unanswered {faults['unanswered']}",
        flush=True,
    )
    data = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    data.update(
        {
            "latency_s": args.latency,
            "cpus": len(os.sched_getaffinity(0)),
            "ratio_to_ideal": {n: row["ratio"] for n, row in rates.items()},
            "throughput": rates,
            "budget_overshoot_calls": faults["budget_overshoot_calls"],
            "double_charged": faults["double_charged"],
            "unanswered": faults["unanswered"],
            "faults": faults,
        }
    )
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
