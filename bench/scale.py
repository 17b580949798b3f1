"""The openai backend under load, against a loopback OpenAI-compatible server with a
fixed latency per request (issue 16's measurement).

1. Throughput: N distinct chat requests x 4 rounds through the model stack
   (`OpenAICompatLLM` <- meter, as a search builds it) with `--concurrency N`, for
   N = 1, 8, 64, 256: requests/s as a ratio to the ideal N / latency.
2. Budget under faults: `promptopt search` (APE on antonyms, `--concurrency 64`,
   `--budget 60`) against the same server failing 20% of requests with 429
   (Retry-After: 0): model calls charged against the budget (overshoot must be 0),
   requests answered twice or charged for something not answered, and requests
   never answered.

The server is tests/llm/fake_openai_server.py (real HTTP in threads, so hundreds of
requests can be in flight; the repository root is put on sys.path for it).
Read-modify-writes bench/results/scale.json, keeping other keys ("grid" comes from
bench/scale_grid.py).

    PROMPTOPT_DATA_DIR=../shared/data python bench/scale.py [--latency 0.3]

On 2 cores the client's and the server's Python threads share the CPU: the ratio
falls where their per-request work, not the latency, becomes the limit.
"""

from __future__ import annotations

import argparse
import json
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


def throughput(server: FakeOpenAIServer, in_flight: int, latency: float) -> dict[str, float]:
    base = OpenAICompatLLM("fake", base_url=server.url, max_concurrency=in_flight, timeout=30)
    llm = layered(base, Usage(), None, None, None)
    requests = [
        GenerationRequest.chat(f"request {in_flight}-{i}", max_tokens=4)
        for i in range(in_flight * ROUNDS)
    ]
    server.max_in_flight = 0
    started = time.perf_counter()
    llm.generate(requests)
    wall = time.perf_counter() - started
    rate = len(requests) / wall
    ideal = in_flight / latency
    return {
        "requests": len(requests),
        "wall_s": round(wall, 2),
        "requests_per_s": round(rate, 1),
        "ideal_per_s": round(ideal, 1),
        "ratio": round(rate / ideal, 3),
        "max_in_flight_seen": server.max_in_flight,
    }


def budget_under_faults(server: FakeOpenAIServer) -> dict[str, Any]:
    server.fault_rates = {429: 0.2}
    server.retry_after = "0"
    server.bodies.clear()
    server.answered.clear()
    with tempfile.TemporaryDirectory(prefix="promptopt-scale-") as tmp:
        run_dir, out = Path(tmp) / "run", Path(tmp) / "best.json"
        command = [
            sys.executable, "-c", "from promptopt.cli import main; main()",
            "search", "--task", "antonyms",
            "--strategy", "ape", "--model", "openai:fake", "--base-url", server.url,
            "--proposer", "openai:fake", "--proposer-base-url", server.url,
            "--concurrency", "64", "--budget", str(BUDGET), "--no-cache",
            "--run-dir", str(run_dir), "--out", str(out),
        ]  # fmt: skip
        env = {**os.environ, "OPENAI_API_KEY": "sk-bench"}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise SystemExit(f"the search failed:\n{done.stderr[-2000:]}")
        export = json.loads(out.read_text())
    usage = export["usage"]
    search_calls = usage["search"]["calls"]
    charged = search_calls + usage["test_eval"]["calls"]
    distinct_sent = {json.dumps(b, sort_keys=True) for b in server.bodies}
    answered = sum(server.answered.values())
    return {
        "budget_calls": BUDGET,
        "search_calls_charged": search_calls,
        "all_calls_charged": charged,
        "requests_sent": len(server.bodies),
        "faults_injected": len(server.bodies) - answered,
        "answers": answered,
        "budget_overshoot_calls": max(0, search_calls - BUDGET),
        "double_charged": sum(n - 1 for n in server.answered.values()) + max(0, charged - answered),
        "unanswered": len(distinct_sent) - len(server.answered),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per request")
    args = parser.parse_args()
    server = FakeOpenAIServer(latency=args.latency)
    server.reply = last_word
    try:
        rates = {}
        for n in IN_FLIGHT:
            rates[str(n)] = throughput(server, n, args.latency)
            row = rates[str(n)]
            print(
                f"{n:>4} in flight: {row['requests_per_s']:7.1f} requests/s, ideal "
                f"{row['ideal_per_s']:7.1f}: ratio {row['ratio']:.3f} "
                f"(server saw {row['max_in_flight_seen']} at once)",
                flush=True,
            )
        faults = budget_under_faults(server)
    finally:
        server.stop()
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
