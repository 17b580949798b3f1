"""The one model stack every entry point builds: backend <- shared cache <- meter <- run journal.

`search` (target, proposer and the test report), `eval` (`run/eval_run.py`), code
Reflexion's eval (`run/code_eval.py`) and the dry run all wrap their backends with
`layered`, so caching, charging, budgets and resume behave alike everywhere.
"""

from __future__ import annotations

from typing import Any

from promptopt.core.domain import Budget, Usage
from promptopt.llm.base import LLM
from promptopt.llm.cache import CachedLLM
from promptopt.llm.meter import MeteredLLM


def layered(
    base: LLM,
    usage: Usage,
    budget: Budget | None,
    shared: Any | None,
    journal: Any | None,
    also: Usage | None = None,
) -> LLM:
    """backend <- shared cache <- meter (charges, budget) <- run journal.

    The meter charges and budgets every request the journal passes down, whether
    the shared cache or the model answers it (the cache counts its hits as the
    free part, `Usage.cache_hits`): a search does the same work however warm the
    cache is, so a rerun with the same seed and budget walks the same search and
    makes no new model calls, and `compare` gives every strategy the same work.
    A request repeated within the run is answered by the journal, free.
    `also` is charged too, to know one model's share of a shared usage (for pricing).
    """
    llm: LLM = base if shared is None else CachedLLM(base, shared, usage, also=also)
    llm = MeteredLLM(llm, usage, budget, also)
    if journal is not None:
        llm = CachedLLM(llm, journal, usage, also=also, replay_charges=True)
    return llm
