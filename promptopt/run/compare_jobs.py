"""Run the cells of a comparison (strategy x seed) in parallel: local processes
(`--jobs N`) or Ray tasks (`--ray [ADDRESS]`).

A cell is an ordinary resumable run, and the worker hands nothing back but its exit:
the parent reads the cell's result.json like a reused run's. So a worker that dies is
simply started again and resumes from the cell's journal, and the parent alone writes
compare.json.

Local workers are one spawned process per cell, not a pool and not fork: a forked
child would inherit torch's threads and locks, and a pool that loses a worker marks
every pending task broken without saying which cell died. One process per cell names
the dead cell by its exit code; the cost is one interpreter start per cell.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from multiprocessing.connection import wait
from typing import Any

from promptopt.core.errors import ConfigError
from promptopt.run.compare_spec import CompareSpec, run_dir_name
from promptopt.strategies.base import Reporter, SilentReporter

Cell = tuple[str, int]
CellRunner = Callable[[CompareSpec, str, int, Reporter], dict[str, Any]]
TRIES = 2
"""A cell's worker may die once (killed, out of memory); the second start resumes."""


def _backend_classes() -> list[type]:
    """Backends registered in this process (register_backend or entry points): a spawned
    worker registers them again, so a plugin registered in code reaches the workers."""
    from promptopt.llm.backend import backends

    return [type(b) for b in backends()]


def _worker(spec: CompareSpec, cell: Cell, classes: list[type], run_one: CellRunner) -> None:
    from promptopt.llm.backend import register_backend

    for cls in classes:
        register_backend(cls)
    run_one(spec, cell[0], cell[1], SilentReporter())


def _death(spec: CompareSpec, cell: Cell, how: str) -> ConfigError:
    run_dir = spec.out_dir / "runs" / run_dir_name(*cell)
    return ConfigError(
        f"cell {run_dir_name(*cell)} died twice ({how}): see {run_dir}/ and rerun the same "
        "`promptopt compare` command to resume it"
    )


def run_local(
    spec: CompareSpec,
    cells: list[Cell],
    jobs: int,
    reporter: Reporter,
    run_one: CellRunner,
    on_done: Callable[[Cell], None],
) -> None:
    """Up to `jobs` cells at once, each in its own spawned process; `on_done` runs in this
    process as each cell finishes. Ctrl-C terminates every worker (their journals keep
    what they did) and re-raises."""
    ctx = multiprocessing.get_context("spawn")
    classes = _backend_classes()
    waiting = list(cells)
    running: dict[Cell, Any] = {}
    tries: dict[Cell, int] = {}
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                cell = waiting.pop(0)
                tries[cell] = tries.get(cell, 0) + 1
                again = " (again, resuming)" if tries[cell] > 1 else ""
                reporter.note(f"start {run_dir_name(*cell)}{again}")
                proc = ctx.Process(target=_worker, args=(spec, cell, classes, run_one))
                proc.start()
                running[cell] = proc
            wait([p.sentinel for p in running.values()])
            for cell, proc in list(running.items()):
                if proc.exitcode is None:
                    continue
                del running[cell]
                if proc.exitcode == 0:
                    reporter.note(f"done {run_dir_name(*cell)}")
                    on_done(cell)
                elif tries[cell] >= TRIES:
                    raise _death(spec, cell, f"exit code {proc.exitcode}")
                else:
                    reporter.note(f"{run_dir_name(*cell)} died (exit {proc.exitcode})")
                    waiting.insert(0, cell)
    finally:
        for proc in running.values():
            proc.terminate()
        for proc in running.values():
            proc.join()


def _ray_cell(spec: CompareSpec, cell: Cell, classes: list[type], run_one: CellRunner) -> None:
    """On a Ray worker: refuse to run when this node cannot see the driver's compare
    directory (an unshared --out-dir would leave the driver without the cell's result
    and every retry without its journal)."""
    marker = spec.out_dir / "runs" / ".driver"
    if not marker.is_file():
        raise ConfigError(
            f"this Ray node ({os.uname().nodename}) cannot see {marker}: --out-dir must be "
            "a directory shared by every node, at the same path"
        )
    _worker(spec, cell, classes, run_one)


def run_ray(
    spec: CompareSpec,
    cells: list[Cell],
    address: str | None,
    reporter: Reporter,
    run_one: CellRunner,
    on_done: Callable[[Cell], None],
) -> None:
    """Every cell as a Ray task; Ray reruns a task whose worker died (`max_retries`) and
    the cell's journal makes that a resume. Without an address, a local Ray instance."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'promptopt[ray]' (or drop --ray)") from None
    marker = spec.out_dir / "runs" / ".driver"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(os.uname().nodename + "\n")
    started_here = not ray.is_initialized()
    if started_here:
        num_cpus = os.environ.get("PROMPTOPT_RAY_NUM_CPUS")
        ray.init(
            address=address,
            num_cpus=int(num_cpus) if num_cpus and address is None else None,
            log_to_driver=False,
            include_dashboard=False,
        )
    task = ray.remote(max_retries=TRIES - 1, retry_exceptions=False)(_ray_cell)
    classes = _backend_classes()
    pending = {}
    for cell in cells:
        reporter.note(f"start {run_dir_name(*cell)} (ray)")
        pending[task.remote(spec, cell, classes, run_one)] = cell
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            cell = pending.pop(ready[0])
            try:
                ray.get(ready[0])
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if isinstance(exc.cause, Exception) else exc
                if isinstance(cause, ConfigError):
                    raise cause from None
                raise ConfigError(
                    f"cell {run_dir_name(*cell)} failed on Ray ({type(cause).__name__}: "
                    f"{cause}); rerun the same `promptopt compare` command to resume it"
                ) from None
            except ray.exceptions.WorkerCrashedError:
                raise _death(spec, cell, "Ray worker crashed") from None
            reporter.note(f"done {run_dir_name(*cell)}")
            on_done(cell)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if started_here:
            ray.shutdown()
