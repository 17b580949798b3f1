"""A 12-cell `compare` grid (2 strategies x 6 seeds) against a loopback OpenAI-compatible
server with fixed latency: `--jobs 1` vs `--jobs 4` vs `--ray` (local Ray), wall times
and whether the leaderboards are identical. Read-modify-writes the "grid" key of
bench/results/scale.json (other keys kept).

    python bench/scale_grid.py [--latency 0.3] [--seeds 6]

Cells are I/O bound at this latency, so parallel cells can win even on 2 cores.
The server is bench/scale.py's: tests/llm/fake_openai_server.py in its own process.
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

from scale import ServerProcess  # bench/ is this script's sys.path[0]

RESULTS = Path(__file__).parent / "results" / "scale.json"
TIMED = {"wall_s", "wall_s_mean", "cache_hits", "cache_hits_mean"}


def untimed(value: object) -> object:
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k not in TIMED}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def compare(url: str, out: Path, seeds: int, *extra: str) -> tuple[float, list]:
    args = [
        "promptopt", "compare", "--task", "antonyms", "--strategies", "ape,reflexion",
        "--seeds", str(seeds), "--budget", "24", "--dev-size", "5", "--test-size", "8",
        "--model", "openai:loopback", "--proposer", "openai:loopback", "--base-url", url,
        "--proposer-base-url", url, "--concurrency", "8", "--no-cache", "--no-report",
        "--out-dir", str(out),
        "-p", "ape.num_subsamples=2", "-p", "ape.proposals_per_subsample=2", *extra,
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    return wall, untimed(json.loads((out / "compare.json").read_text())["leaderboard"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--seeds", type=int, default=6)
    opts = parser.parse_args()
    server = ServerProcess(opts.latency)
    url = server.url
    os.environ.setdefault("OPENAI_API_KEY", "loopback")
    tmp = Path(tempfile.mkdtemp(prefix="grid-"))
    try:
        jobs1, board1 = compare(url, tmp / "jobs1", opts.seeds)
        jobs4, board4 = compare(url, tmp / "jobs4", opts.seeds, "--jobs", "4")
        ray_s, board_ray = compare(url, tmp / "ray", opts.seeds, "--ray")
    finally:
        server.stop()
    grid = {
        "cells": 2 * opts.seeds,
        "latency_s": opts.latency,
        "jobs1_s": round(jobs1, 2),
        "jobs4_s": round(jobs4, 2),
        "ray_s": round(ray_s, 2),
        "jobs4_speedup": round(jobs1 / jobs4, 2),
        "ray_speedup": round(jobs1 / ray_s, 2),
        "identical": board1 == board4 == board_ray,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(grid, indent=2))
    saved = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    saved["grid"] = grid
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(saved, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
