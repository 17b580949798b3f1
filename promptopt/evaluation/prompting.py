"""How a Prompt and an input become the text a model sees.

One function for every strategy and for `eval`, so a prompt scores the same
wherever it is used.
"""

from __future__ import annotations

from promptopt.core.domain import Example, Message, Prompt
from promptopt.core.errors import ConfigError


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


def render_messages(prompt: Prompt, text: str) -> tuple[Message, ...]:
    """The chat a target model sees for one input.

    Without demonstrations, or with `demo_format: text`, everything is one user
    message. With chat turns, the instruction is the system message and each
    demonstration a user/assistant pair before the query: a small model then
    answers in the demonstrated format instead of in sentences
    (`../shared/FINDINGS.md`: first_word_letter 0.067 as text, 0.833 as turns).
    """
    if not prompt.demonstrations or prompt.demo_format == "text":
        return (Message("user", render_user_message(prompt, text)),)
    messages: list[Message] = []
    if prompt.instruction.strip():
        messages.append(Message("system", prompt.instruction.strip()))
    for demo in prompt.demonstrations:
        messages.append(Message("user", fill_template(prompt.template, demo.input)))
        messages.append(Message("assistant", demo.shown_output))
    messages.append(Message("user", fill_template(prompt.template, text)))
    return tuple(messages)
