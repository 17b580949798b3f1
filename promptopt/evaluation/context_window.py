"""Examples too long for a local model's context window: refused before any call.

A transformers model does not refuse a prompt longer than its context window:
it runs it, past the positions it was trained on (the answer is noise), slowly,
or until memory runs out (one 5 MB example is over a million tokens). So a search
or an eval measures every example it will send, rendered with the prompt it
starts from, against the target model's window before the first call, and
refuses the first one that does not fit in one line that says what to do. A
dry run reports the same as a warning.

Measured with the starting prompt, the one prompt known before the search: an
oversized example is too long with any candidate, whose instruction is short
next to it; an example that only just fits may still be pushed over by a
candidate with a long instruction or demonstrations, which this does not catch.

The window is the model config's number of positions (`max_position_embeddings`
and its other names), which transformers models are trained up to; the
tokenizer's `model_max_length` is often unset (1e30). API models have no
window here: their server refuses what it cannot read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from promptopt.core.domain import Message, Prompt
from promptopt.core.errors import ConfigError
from promptopt.data.task import Split, Task
from promptopt.evaluation.prompting import render_messages

WINDOW_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
"""Config attributes that hold a transformers model's number of positions."""
HEAD_CHARS_PER_TOKEN = 64
"""A prompt longer than `room x 64` characters is first counted on that head: the
head's tokens bound the whole's from below, so a head already over `room` proves the
prompt too long without tokenizing the rest (a 5 MB example took 4 s whole). Only
a shortcut: when the head fits, the whole prompt is counted."""
BYTES_MARGIN = 64
"""Slack in the byte bound of `oversized_examples` (a leading-space token, a template
that trims whitespace)."""
UNKNOWN_WINDOW_WARNING = 32_768
"""A dry run without a known window warns about prompts estimated above this many
tokens: more than many models read."""


@dataclass(frozen=True)
class ContextWindow:
    """A local model's window, with the tokenizer that counts against it."""

    model: str
    tokens: int
    tokenizer: Any

    def prompt_tokens(self, messages: Sequence[Message], room: int) -> tuple[int, bool]:
        """(tokens, exact) of a chat rendered as the backend renders it (its chat
        template). Past `room` tokens the count may stop early: then it is a lower
        bound above `room` and `exact` is False."""
        from promptopt.llm.hf import render_prompt

        text = render_prompt(self.tokenizer, messages, None)
        head = room * HEAD_CHARS_PER_TOKEN
        if len(text) > head:
            tokens = self._count(text[:head])
            if tokens > room:
                return tokens, False
        return self._count(text), True

    def _count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass(frozen=True)
class Oversized:
    """An example whose prompt does not fit: where it is and how long it is."""

    split: str
    example_id: str
    tokens: int
    exact: bool = True
    """False: `tokens` is a lower bound (counting stopped once it was too many)."""

    def describe(self) -> str:
        return f"{'over ' if not self.exact else ''}{self.tokens} tokens"


def _window_from_config(config: Any) -> int | None:
    for key in WINDOW_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def window_on_disk(spec: Any) -> ContextWindow | None:
    """The window of the local model a `ModelSpec` names, read from the files already
    on this machine (tokenizer and config, no weights): what lets a search refuse
    an example before it spends time loading the model. None when the model is
    not on disk yet (then `window_of` the loaded model) or is not local."""
    kind = getattr(spec, "kind", None)
    files = kind.local_files(spec.model) if kind is not None else None
    if files is None or files.config is None:
        return None
    tokens = _window_from_config(files.config)
    if tokens is None:
        return None
    return ContextWindow(model=files.name, tokens=tokens, tokenizer=files.tokenizer)


def window_of(llm: Any) -> ContextWindow | None:
    """The window of a loaded local model (under any cache or meter layers); None
    for backends without one (API models, test fakes)."""
    while not hasattr(llm, "tokenizer") and hasattr(llm, "inner"):
        llm = llm.inner
    tokenizer = getattr(llm, "tokenizer", None)
    config = getattr(getattr(llm, "model", None), "config", None)
    tokens = _window_from_config(config) if config is not None else None
    if tokenizer is None or tokens is None:
        return None
    return ContextWindow(model=str(llm.model_id), tokens=tokens, tokenizer=tokenizer)


def answer_tokens(window: ContextWindow, task: Task) -> int:
    """What the window must keep free after the prompt: the longest answer the task
    lets the model write, or its longest label word when labels are scored."""
    if task.scoring_mode == "logprob" and task.label_words:
        return max(
            len(window.tokenizer(w, add_special_tokens=False)["input_ids"])
            for w in task.label_words
        )
    return task.generation.max_tokens


def oversized_examples(
    window: ContextWindow, task: Task, prompts: Sequence[Prompt], splits: Sequence[Split]
) -> list[Oversized]:
    """Every example of `splits` whose prompt, with any of `prompts`, leaves no room
    for the answer, in split order.

    Counting every example exactly renders and tokenizes each (~0.15 ms), so
    those short enough in bytes are passed without counting: a tokenizer never
    makes more tokens than a text has bytes (byte-level BPE at worst falls back
    to one token per byte), and the chat template adds the same bytes to every
    example, measured once on an empty input.
    """
    from promptopt.llm.hf import render_prompt

    room = window.tokens - answer_tokens(window, task)
    found: list[Oversized] = []
    for prompt in prompts:
        empty = render_prompt(window.tokenizer, render_messages(prompt, ""), None)
        overhead = len(empty.encode("utf-8")) + BYTES_MARGIN
        for split in splits:
            for example in task.examples(split):
                if overhead + len(example.input.encode("utf-8")) <= room:
                    continue
                tokens, exact = window.prompt_tokens(render_messages(prompt, example.input), room)
                if tokens > room and all(o.example_id != example.id for o in found):
                    found.append(Oversized(split, example.id, tokens, exact))
    return found


def refuse_oversized(
    window: ContextWindow,
    task: Task,
    prompts: Sequence[Prompt],
    splits: Sequence[Split],
    what: str = "the starting prompt",
) -> None:
    """Raise, in one line, for the first example that does not fit (see module doc)."""
    found = oversized_examples(window, task, prompts, splits)
    if not found:
        return
    first = found[0]
    more = f"; {len(found) - 1} more examples do not fit either" if len(found) > 1 else ""
    raise ConfigError(
        f"example '{first.example_id}' ({first.split} split) of task '{task.name}' makes a "
        f"prompt of {first.describe()} with {what}, more than {window.model}'s context "
        f"window of {window.tokens} tokens leaves after {answer_tokens(window, task)} for "
        f"the answer{more}: shorten or remove that example in the data, or use a model "
        "with a longer context window"
    )
