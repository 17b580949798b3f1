"""How report cells show values: numbers, settings and texts on one line, and a
dash for what is missing, so no section raises on a malformed field."""

from __future__ import annotations

import json
from typing import Any

TEXT_CHARS = 600


def model_text(spec: Any) -> str | None:
    if isinstance(spec, dict):
        return str(spec.get("model") or spec.get("name") or "") or None
    return str(spec) if spec else None


def budget_text(budget: Any) -> str:
    if not isinstance(budget, dict):
        return "unlimited"
    parts = []
    if budget.get("max_calls") is not None:
        parts.append(f"{budget['max_calls']} calls")
    if budget.get("max_tokens") is not None:
        parts.append(f"{budget['max_tokens']} tokens")
    return ", ".join(parts) or "unlimited"


def usage_text(usage: Any) -> str | None:
    if not isinstance(usage, dict):
        return None
    tokens = num_or(usage.get("prompt_tokens"), 0) + num_or(usage.get("completion_tokens"), 0)
    calls, hits = usage.get("calls", 0), usage.get("cache_hits", 0)
    if "new_calls" in usage:  # calls count the cache's hits too
        text = (
            f"{calls} calls ({usage['new_calls']} new, {hits} from the cache), {int(tokens)} tokens"
        )
    else:  # an export from before `new_calls`
        text = f"{calls} calls, {int(tokens)} tokens, {hits} cache hits"
    if is_num(usage.get("cost_usd")):
        text += f", ${usage['cost_usd']:.4f}"
    return text


def timings_text(timings: Any) -> str | None:
    if not isinstance(timings, dict):
        return None
    return ", ".join(f"{k.removesuffix('_s')} {fixed(v, 1)} s" for k, v in timings.items())


def score_n_text(value: Any) -> str | None:
    if not isinstance(value, dict) or not is_num(value.get("score")):
        return None
    return f"{value['score']:.3f} on {value.get('n')} examples"


def diff_text(a: Any, b: Any) -> str | None:
    return f"{a - b:+.3f}" if is_num(a) and is_num(b) else None


def clip(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS] + " …"


def one_line(value: Any) -> str:
    """A setting on one line: nested settings as key=value, unset ones left out."""
    if isinstance(value, dict):
        return clip(", ".join(f"{k}={one_line(v)}" for k, v in value.items() if v is not None))
    return clip(value if isinstance(value, str) else json.dumps(value))


def is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def num_or(value: Any, default: float = 0.0) -> float:
    return float(value) if is_num(value) else default


def fixed(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if is_num(value) else "—"


def signed(value: Any) -> str:
    return f"{value:+.3f}" if is_num(value) else "—"


def short_num(value: Any) -> str:
    return f"{value:.3g}" if is_num(value) else "—"


def dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data
