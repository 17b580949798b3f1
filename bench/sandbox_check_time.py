"""Seconds per HumanEval hidden-test check in the sandbox (canonical and wrong solutions).

Measures what `run_hidden` costs per problem, to compare sandbox designs (one
process per check, or the program and its tests in two processes). Run under
`nice` on a quiet machine:

    PROMPTOPT_DATA_DIR=../shared/data nice -n 19 python bench/sandbox_check_time.py --problems 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from promptopt.code_tasks import load_humaneval, run_hidden
from promptopt.sandbox import Sandbox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    problems = load_humaneval(args.problems)
    raw = {p.task_id: p for p in problems}
    import gzip

    from promptopt.code_tasks import humaneval_file

    canonical: dict[str, str] = {}
    with gzip.open(humaneval_file(), "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row["task_id"] in raw:
                canonical[row["task_id"]] = row["canonical_solution"]
    sandbox = Sandbox(allow_code_execution=True)
    times: list[float] = []
    statuses: dict[str, list[str]] = {}
    for _ in range(args.repeats):
        for problem in problems:
            for kind, code in (
                ("right", canonical[problem.task_id]),
                ("wrong", "    return None\n"),
            ):
                started = time.perf_counter()
                result = run_hidden(sandbox, problem, code)
                times.append(time.perf_counter() - started)
                statuses.setdefault(kind, []).append(result.status)
    print(
        json.dumps(
            {
                "checks": len(times),
                "mean_s": round(statistics.mean(times), 4),
                "median_s": round(statistics.median(times), 4),
                "max_s": round(max(times), 4),
                "right_passed": statuses["right"].count("passed"),
                "wrong_passed": statuses["wrong"].count("passed"),
                "right_statuses": sorted(set(statuses["right"])),
            }
        )
    )


if __name__ == "__main__":
    main()
