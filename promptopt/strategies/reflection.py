"""Reflection helpers shared by Reflexion (the prompt search, `strategies/reflexion.py`)
and code Reflexion (`eval --task humaneval`, `run/code_eval.py`): the episodic memory,
placeholder filling for meta-prompt templates, and trimming a written reflection."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable


class EpisodicMemory:
    """The last `size` reflections, oldest first (Reflexion's long-term memory)."""

    def __init__(self, size: int, items: Iterable[str] = ()) -> None:
        self._items: deque[str] = deque(maxlen=size)
        for item in items:
            self.add(item)

    def add(self, reflection: str) -> None:
        if reflection.strip():
            self._items.append(reflection.strip())

    @property
    def items(self) -> list[str]:
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def render(self) -> str:
        """A numbered list, as the actor reads it."""
        if not self._items:
            return "(none yet)"
        return "\n".join(f"{i}. {text}" for i, text in enumerate(self._items, start=1))


_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def fill_placeholders(template: str, **values: str) -> str:
    """Fill `{name}` slots in one pass; other braces (code, JSON) stay as written."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def clean_reflection(text: str, max_chars: int = 400) -> str:
    """A reflection trimmed to its first paragraph without a leading label."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    if not paragraphs:
        return ""
    reflection = re.sub(r"^(reflection|answer|lesson)\s*:\s*", "", paragraphs[0], flags=re.I)
    reflection = " ".join(reflection.split())
    if len(reflection) > max_chars:
        cut = reflection[:max_chars]
        reflection = cut[: cut.rfind(". ") + 1] if ". " in cut else cut
    return reflection.strip()
