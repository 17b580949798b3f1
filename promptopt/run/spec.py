"""What one search is asked to do: the settings a run records and a resume reloads.

Kept apart from `run_search`, which carries it out, because compare, the dry run
and the CLI build and read specs without running anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from promptopt import __version__
from promptopt.core.domain import (
    DEMO_FORMATS,
    Budget,
    Prompt,
)
from promptopt.core.errors import ConfigError
from promptopt.data.task import (
    Task,
    check_requested_sizes,
    load_task,
    task_from_data_file,
)
from promptopt.llm.base import (
    has_credential,
    public_url,
    with_placeholder_credential,
)
from promptopt.llm.factory import ModelSpec, default_model_spec
from promptopt.run.start_guard import resolve_start
from promptopt.strategies.demo_stage import DEFAULT_DEMO_SETS


@dataclass
class SearchSpec:
    task: str
    strategy: str = "ape"
    params: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    target: ModelSpec = field(default_factory=default_model_spec)
    proposer: ModelSpec = field(default_factory=default_model_spec)
    sizes: dict[str, int] = field(default_factory=dict)
    data_seed: int = 0
    budget: Budget = field(default_factory=Budget)
    run_dir: Path | None = None
    resume: bool = False
    use_cache: bool = True
    data_file: dict[str, str] | None = None
    """Quick custom task: path, input_field, target_field, metric."""
    out: str | None = None
    prices: str | None = None
    """Extra price table (YAML) for the cost estimate; not part of the run's identity."""
    start: str | None = None
    """`--start`: an export, a text file or an instruction; None = the task's baseline."""
    start_prompt: dict[str, Any] | None = None
    """The start resolved to a prompt when the run began (what `--resume` uses)."""
    start_source: str = "task baseline"
    demo_format: str | None = None
    """How demonstrations reach the model; None = the task's own setting."""
    demo_sets: int = DEFAULT_DEMO_SETS
    """Demonstration sets tried with the best instructions of a strategy that only
    writes instructions (`strategies.demo_stage`); 0 = the instructions alone. A run
    config without the key was started before the stage existed: 0."""
    credentials_to_give: tuple[str, ...] = ()
    """Roles ("target", "proposer") whose server URL carried a credential when the run
    began. The run config saves the URL without it, so a resume must be given the
    URL again (`give_base_urls`) or it could not reconnect."""

    @classmethod
    def from_run_config(cls, config: dict[str, Any], run_dir: Path) -> SearchSpec:
        """The spec an interrupted run was started with, to resume it."""
        budget = config.get("budget") or {}
        return cls(
            task=config["task"],
            strategy=config["strategy"],
            params=config.get("params", {}),
            seed=config["seed"],
            data_seed=config.get("data_seed", 0),
            target=ModelSpec(**config["target"]),
            proposer=ModelSpec(**config["proposer"]),
            sizes=config.get("sizes", {}),
            budget=Budget(budget.get("max_calls"), budget.get("max_tokens")),
            run_dir=run_dir,
            resume=True,
            use_cache=config.get("use_cache", True),
            data_file=config.get("data_file"),
            out=config.get("out"),
            start=config.get("start"),
            start_prompt=config.get("start_prompt"),
            start_source=config.get("start_source", "task baseline"),
            demo_format=config.get("demo_format"),
            demo_sets=config.get("demo_sets", 0),
            credentials_to_give=tuple(
                role for role in config.get("url_credentials") or () if role in BASE_URL_OPTION
            ),
        )

    def give_base_urls(self, target: str | None, proposer: str | None) -> None:
        """On resume: `--base-url` and `--proposer-base-url` given again, with the
        credential the run config never saved (or explicitly without one). Each must
        name the server the run was started with, whatever its credential."""
        for role, url in (("target", target), ("proposer", proposer)):
            if url is None:
                continue
            model: ModelSpec = getattr(self, role)
            option, recorded = BASE_URL_OPTION[role], model.option("base_url")
            if public_url(url) != recorded:
                started = f"with {option} {recorded}" if recorded else f"without {option}"
                raise ConfigError(
                    f"run {self.run_dir} was started {started}, not {public_url(url)}: "
                    f"resume with the server it was started with, or start a new run"
                )
            setattr(self, role, model.with_options(base_url=url))
            self.credentials_to_give = tuple(r for r in self.credentials_to_give if r != role)

    def require_credentials(self) -> None:
        """A resumed run whose server URL had a credential is refused in one line until
        the URL is given again, rather than failing at the server with a rejected or
        missing key after the models are set up."""
        for role in self.credentials_to_give:
            option, url = BASE_URL_OPTION[role], str(getattr(self, role).option("base_url"))
            raise ConfigError(
                f"run {self.run_dir} was started with a credential in {option} ({url}), "
                f"which is never saved: pass it again, {option} "
                f"'{with_placeholder_credential(url)}' (or {option} {url} to resume "
                "without one)"
            )

    def check(self) -> None:
        """Refuse options that make a search meaningless, before data or models are
        read: a budget below one call or token, a split asked to hold no examples."""
        check_budget(self.budget)
        check_requested_sizes(self.sizes)
        if self.demo_sets < 0:
            raise ConfigError(
                f"--demo-sets must be 0 or more, got {self.demo_sets}: pass e.g. "
                f"--demo-sets {DEFAULT_DEMO_SETS}, or 0 for instructions alone"
            )

    def load_task(self) -> Task:
        task = self._load_task()
        if self.demo_format is not None:
            if self.demo_format not in DEMO_FORMATS:
                raise ConfigError(
                    f"unknown demo format '{self.demo_format}': use {' or '.join(DEMO_FORMATS)}"
                )
            task.demo_format = self.demo_format
        return task

    def resolve_start(self, task: Task) -> Prompt:
        """The prompt the search starts from, fixed at the run's start for `--resume`."""
        if self.start_prompt is None:
            if self.start is None:
                prompt, self.start_source = task.baseline_prompt(), "task baseline"
            else:
                prompt, self.start_source = resolve_start(self.start, task)
            self.start_prompt = prompt.to_dict()
        return Prompt.from_dict(self.start_prompt)

    def _load_task(self) -> Task:
        if self.data_file:
            return task_from_data_file(
                Path(self.data_file["path"]),
                input_field=self.data_file["input_field"],
                target_field=self.data_file["target_field"],
                scorer=self.data_file["metric"],
                sizes=self.sizes or None,
                seed=self.data_seed,
            )
        return load_task(self.task, sizes=self.sizes or None, seed=self.data_seed)

    def run_config(self, strategy_config: Any) -> dict[str, Any]:
        return {
            "task": self.task,
            "strategy": self.strategy,
            "params": dict(sorted(self.params.items())),
            "strategy_config": asdict(strategy_config),
            "seed": self.seed,
            "data_seed": self.data_seed,
            "target": self.target.resolved().to_dict(),
            "proposer": self.proposer.resolved().to_dict(),
            "sizes": dict(sorted(self.sizes.items())),
            "budget": {"max_calls": self.budget.max_calls, "max_tokens": self.budget.max_tokens},
            "use_cache": self.use_cache,
            "data_file": self.data_file,
            "out": self.out,
            "start": self.start,
            "start_prompt": self.start_prompt,
            "start_source": self.start_source,
            "demo_format": self.demo_format,
            **({"demo_sets": self.demo_sets} if self.demo_sets else {}),
            **({"url_credentials": roles} if (roles := self.url_credentials()) else {}),
            "promptopt_version": __version__,
        }

    def url_credentials(self) -> list[str]:
        """Roles whose server URL carries a credential: what a resume must be given
        again (the run config records the roles, never the credential)."""
        models = (("target", self.target), ("proposer", self.proposer))
        return [role for role, model in models if has_credential(model.option("base_url"))]


BASE_URL_OPTION = {"target": "--base-url", "proposer": "--proposer-base-url"}
"""The option that gives each model's server URL."""


def check_budget(budget: Budget) -> None:
    """A budget must allow something: a negative or zero cap was accepted, and the
    search found out only after loading its models (exit 5, budget exhausted)."""
    if budget.max_calls is not None and budget.max_calls < 1:
        raise ConfigError(
            f"--budget must be at least 1 model call, got {budget.max_calls}: pass e.g. "
            "--budget 200, or leave it out for no cap"
        )
    if budget.max_tokens is not None and budget.max_tokens < 1:
        raise ConfigError(
            f"--budget-tokens must be at least 1 token, got {budget.max_tokens}: pass e.g. "
            "--budget-tokens 100000, or leave it out for no cap"
        )
