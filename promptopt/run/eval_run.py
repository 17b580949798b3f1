"""`promptopt eval`: re-score an exported prompt or ensemble on the held-out test split.

Evaluation is split in two steps, `prepare_eval` (read the export, load the
task and its test split: no model) and `score_prepared` (load the model and
score), so that the CLI can check a baseline's example ids against the test
split before it spends any model time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptopt.core.domain import Example, Usage
from promptopt.core.errors import ConfigError, DataError, PromptoptError
from promptopt.core.paths import cache_root
from promptopt.data.task import (
    Task,
    check_requested_sizes,
    load_task,
    looks_like_path,
    require_examples,
    task_from_data_file,
)
from promptopt.evaluation.context_window import refuse_oversized, window_of, window_on_disk
from promptopt.evaluation.ensemble import evaluate_ensemble
from promptopt.evaluation.evaluator import Evaluator
from promptopt.llm.base import describe
from promptopt.llm.cache_files import open_cache
from promptopt.llm.factory import ModelSpec, build_llm, default_model_spec
from promptopt.llm.stack import layered
from promptopt.run.export import Export, load_export, locate_recorded
from promptopt.strategies.base import Reporter, SilentReporter


@dataclass
class PreparedEval:
    """One export on one task, with the test examples it will be scored on."""

    prompt_path: Path
    export: Export
    task: Task
    test: list[Example]
    model: ModelSpec
    window_checked: bool = False
    """Whether every test example was found to fit the model's context window from
    its files on disk; if not, `score_prepared` checks once the model is loaded."""

    @property
    def example_ids(self) -> list[str]:
        return [example.id for example in self.test]


def prepare_eval(
    prompt_path: Path,
    *,
    task: str | None = None,
    model: ModelSpec | None = None,
    test_size: int | None = None,
) -> PreparedEval:
    """Use the split sizes and data seed the prompt was found with, so scores compare.

    Refuses, before any model is loaded, a test split of no examples and (when the
    model's files are on disk) a test example too long for its context window.
    """
    check_requested_sizes({"test": test_size})
    export = load_export(prompt_path)
    recorded = export.task
    sizes = dict(recorded.sizes)
    if test_size is not None:
        sizes["test"] = test_size
    data_seed = recorded.data_seed
    task_ref = task or recorded.ref or recorded.name
    if task_ref is None:
        raise ConfigError(f"{prompt_path} names no task: pass --task NAME or --task FILE.yaml")
    data_file = recorded.data_file
    if task is None and data_file:
        loaded = task_from_data_file(
            _recorded_file(data_file["path"], prompt_path, "data file", DataError),
            input_field=data_file["input_field"],
            target_field=data_file["target_field"],
            scorer=data_file["metric"],
            sizes=sizes or None,
            seed=data_seed,
        )
    else:
        if task is None and looks_like_path(task_ref):
            task_ref = str(_recorded_file(task_ref, prompt_path, "task file", ConfigError))
        loaded = load_task(task_ref, sizes=sizes or None, seed=data_seed)
    if model is None:
        spec = (export.models.get("target") or {}).get("spec")
        model = ModelSpec(**spec) if spec else default_model_spec()
    require_examples(loaded, ("test",))
    window = window_on_disk(model)
    if window is not None:
        refuse_oversized(window, loaded, export.prompts(), ("test",), "the exported prompt")
    return PreparedEval(
        prompt_path, export, loaded, loaded.examples("test"), model, window is not None
    )


def _recorded_file(
    recorded: str, export_path: Path, what: str, error: type[PromptoptError]
) -> Path:
    """A task or data file the export names, found from any directory (`locate_recorded`)."""
    path = locate_recorded(recorded, export_path)
    if path.exists():
        return path
    looked = "" if path.is_absolute() else f" (looked in {Path.cwd()} and {export_path.parent})"
    fixes = [] if path.is_absolute() else ["run eval from the directory the search ran in"]
    fixes.append("put the file back")
    if what == "task file":
        fixes.append("pass --task with its path")
    fix = ", ".join(fixes[:-1]) + f" or {fixes[-1]}" if len(fixes) > 1 else fixes[0]
    raise error(f"{what} {recorded} named by {export_path} not found{looked}: {fix}")


def score_prepared(
    prepared: PreparedEval,
    *,
    use_cache: bool = True,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Score on test through the shared call cache: an unchanged rerun makes no calls."""
    reporter = reporter or SilentReporter()
    export, loaded, test = prepared.export, prepared.task, prepared.test
    shared = open_cache(cache_root() / "calls") if use_cache else None  # corrupt: fail now
    reporter.phase(f"Loading model {prepared.model.model}")
    base = build_llm(prepared.model)
    if not prepared.window_checked and (window := window_of(base)) is not None:
        refuse_oversized(window, loaded, export.prompts(), ("test",), "the exported prompt")
    usage = Usage()
    llm = layered(base, usage, None, shared, None)
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    if export.ensemble is not None:
        ensemble = export.ensemble
        reporter.phase(
            f"Scoring the ensemble on {loaded.name} test ({len(ensemble.members)} prompts x "
            f"{ensemble.samples} samples x {len(test)} examples)",
            total=len(ensemble.members) * len(test),
        )
        scored = evaluate_ensemble(Evaluator(llm, loaded), ensemble, test, reporter.advance)
        result = scored.result
        members = scored.to_dict()["members"]
        for row, before in zip(members, export.scores.members_test, strict=False):
            row["exported_score"] = before.score
        extra = {"kind": "ensemble", "members": members}
    else:
        prompt = export.prompts()[0]
        reporter.phase(f"Scoring on {loaded.name} test ({len(test)} examples)", total=len(test))
        result = Evaluator(llm, loaded).evaluate(prompt, test, progress=reporter.advance)
        extra = {"kind": "prompt"}
    return {
        "task": loaded.name,
        "score": result.score,
        "n": result.n,
        "exported_score": export.scores.test.score if export.scores.test else None,
        "model": describe(base),
        "usage": usage.model_calls_dict(),
        "seconds": round(time.perf_counter() - started, 2),
        "prompt_file": str(prepared.prompt_path),
        "examples": [{"id": r.example_id, "score": float(r.score)} for r in result.results],
        **extra,
    }


def run_eval(
    prompt_path: Path,
    *,
    task: str | None = None,
    model: ModelSpec | None = None,
    test_size: int | None = None,
    use_cache: bool = True,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Score the export's prompt with the same split sizes and data seed it was found with."""
    prepared = prepare_eval(prompt_path, task=task, model=model, test_size=test_size)
    return score_prepared(prepared, use_cache=use_cache, reporter=reporter)
