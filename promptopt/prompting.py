"""How a Prompt and an input become the text a model sees.

One function for every strategy and for `eval`, so a prompt scores the same
wherever it is used.
"""

from __future__ import annotations

from promptopt.errors import ConfigError
from promptopt.types import Example, Prompt


def fill_template(template: str, text: str) -> str:
    if "{input}" not in template:
        raise ConfigError(f"template {template!r} has no {{input}} slot: add one")
    return template.replace("{input}", text)


def render_demonstration(template: str, example: Example) -> str:
    return f"{fill_template(template, example.input)} {example.shown_output}"


def render_user_message(prompt: Prompt, text: str) -> str:
    """Instruction, then demonstrations, then the query in the task's template."""
    parts = [prompt.instruction.strip()] if prompt.instruction.strip() else []
    parts += [render_demonstration(prompt.template, d) for d in prompt.demonstrations]
    parts.append(fill_template(prompt.template, text))
    return "\n\n".join(parts)
