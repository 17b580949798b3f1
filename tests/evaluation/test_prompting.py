"""How a prompt and an input become what the target model sees."""

from __future__ import annotations

import pytest

from promptopt.core.domain import Example, Message, Prompt
from promptopt.evaluation.prompting import render_messages

TEMPLATE = "Input: {input}\nOutput:"
DEMOS = (
    Example(id="a", input="cat", target="c"),
    Example(id="b", input="dog", target="d", demo_output="The first letter is d."),
)


def test_chat_turns_put_the_instruction_in_the_system_message_and_each_demo_in_a_turn() -> None:
    prompt = Prompt("Write the first letter.", TEMPLATE, DEMOS, "chat")
    assert render_messages(prompt, "emu") == (
        Message("system", "Write the first letter."),
        Message("user", "Input: cat\nOutput:"),
        Message("assistant", "c"),
        Message("user", "Input: dog\nOutput:"),
        Message("assistant", "The first letter is d."),
        Message("user", "Input: emu\nOutput:"),
    )


def test_chat_turns_without_an_instruction_have_no_system_message() -> None:
    messages = render_messages(Prompt("  ", TEMPLATE, DEMOS[:1], "chat"), "emu")
    assert [m.role for m in messages] == ["user", "assistant", "user"]


def test_text_block_is_one_user_message() -> None:
    prompt = Prompt("Write the first letter.", TEMPLATE, DEMOS, "text")
    assert render_messages(prompt, "emu") == (
        Message(
            "user",
            "Write the first letter.\n\nInput: cat\nOutput: c\n\n"
            "Input: dog\nOutput: The first letter is d.\n\nInput: emu\nOutput:",
        ),
    )


@pytest.mark.parametrize("demo_format", ["chat", "text"])
def test_without_demonstrations_both_formats_send_the_same_message(demo_format: str) -> None:
    """So a prompt with no demonstrations scores (and caches) the same either way."""
    messages = render_messages(Prompt("Echo.", TEMPLATE, (), demo_format), "x")
    assert messages == (Message("user", "Echo.\n\nInput: x\nOutput:"),)


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="demo_format must be one of chat, text"):
        Prompt("Echo.", TEMPLATE, (), "html")
