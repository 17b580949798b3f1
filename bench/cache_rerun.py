"""A rerun of the same search served from cache: new model calls (must be 0) and time ratio.

Runs one APE search twice against a fresh cache directory and prints what each
run charged and how long it took.

    python bench/cache_rerun.py [--task antonyms]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", default="antonyms")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from promptopt.core.paths import cache_root

    models = cache_root() / "models"
    scratch = Path(tempfile.mkdtemp(prefix="promptopt-bench-"))
    (scratch / "cache").mkdir()
    (scratch / "cache" / "models").symlink_to(models, target_is_directory=True)
    os.environ["PROMPTOPT_CACHE_DIR"] = str(scratch / "cache")

    from promptopt.llm.factory import build_llm
    from promptopt.run.search import SearchSpec, run_search

    build_llm(SearchSpec(task=args.task).target)  # load once, outside both timings
    timings, exports = [], []
    for name in ("cold", "warm"):
        spec = SearchSpec(task=args.task, seed=args.seed, run_dir=scratch / name)
        t = time.perf_counter()
        exports.append(run_search(spec))
        timings.append(time.perf_counter() - t)
    for name, export, sec in zip(("cold", "warm"), exports, timings, strict=True):
        s, e = export["usage"]["search"], export["usage"]["test_eval"]
        print(
            f"{name}: {sec:7.1f}s  search calls {s['calls']:4d} ({s['new_calls']:4d} new, "
            f"{s['cache_hits']:4d} from the cache)  test-eval new calls {e['new_calls']:4d}"
        )
    warm = exports[1]["usage"]
    warm_calls = warm["search"]["new_calls"] + warm["test_eval"]["new_calls"]
    print(f"warm/cold time ratio: {timings[1] / timings[0]:.3f}; warm model calls: {warm_calls}")
    print(f"same best prompt: {exports[0]['prompt'] == exports[1]['prompt']}")


if __name__ == "__main__":
    main()
