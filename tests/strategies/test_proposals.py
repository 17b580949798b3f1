"""The proposal filter on texts the embedded proposer really wrote, and on real
instructions it must keep; format constraints on the real task data."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptopt.core.domain import Example
from promptopt.data.task import list_tasks, load_task
from promptopt.strategies.proposals import (
    ANSWER,
    CHIT_CHAT,
    COPY,
    DUPLICATE,
    ECHO,
    EMPTY,
    META,
    REFUSAL,
    TOO_LONG,
    TOO_SHORT,
    TRUNCATED,
    UNFINISHED,
    clean_instruction,
    filter_proposals,
    format_constraints,
    is_near_duplicate,
    rejection_reason,
    with_constraint,
)

# Written by the embedded SmolLM2-135M proposer. APE's chosen "best" instructions
# in bench/results/ape_quality.jsonl and reflexion_quality.txt (every one of them
# lost to the baseline on test); InstructZero's writer (the same model) in
# bench/results/instructzero*.jsonl.
REAL_BAD = [
    ("Output: C,", ANSWER),
    ("Output: positive", ANSWER),
    ("Output: hope", ANSWER),
    ('Output: "p', ANSWER),
    ("Imperative: Restart", ECHO),
    ("Step 1: Identifying the output. \"The output was 'positive' in terms of the input.", ANSWER),
    ('The output sentence should be "positive.', ANSWER),
    ("The output should be:", UNFINISHED),
    (
        "Your input is incorrect. I'm an AI assistant designed to assist with texts and provide "
        "translations. While the instructions are to annotate the output, you will receive the "
        "output correctly.",
        CHIT_CHAT,
    ),
    (
        "Your request contains a study plan. Here is a response without the requested "
        "external text:",
        CHIT_CHAT,
    ),
    ("Here is the answer for your question:", CHIT_CHAT),
    ("What is the instruction?", CHIT_CHAT),
    ("The user's input is:", CHIT_CHAT),
    ("The user's input is not a valid output.", CHIT_CHAT),
    ("You are a helpful AI assistant. I'm here to assist you with your tasks.", CHIT_CHAT),
    ("You can't.", REFUSAL),
    ("The instructions are:", META),
    (
        "The instruction correctly identifies Amir as a sophist who uses Aristotelian logic to "
        "compel someone to adopt Aristotelian logic.",
        META,
    ),
    (
        "The instruction in this scenario is to separate, so answer with the specified "
        "cleric's specialty (Santiago's).",
        META,
    ),
    (
        "This instruction is telling you to fix a gear in your car's transmission.",
        META,
    ),
    (
        'The appropriate command to fulfill the instruction is "sanitize" which is not positive',
        META,
    ),
    (
        "The purpose of this instruction is to provide a list of the actions that are required "
        "to complete a task.",
        META,
    ),
    ('Write an instructional specification in English. "Write an imperative sentence".', ECHO),
    ("Reply with the instruction only.", ECHO),
    ("Provide a list of input-output pairs that follow one instruction.", ECHO),
    (
        "Provide a list of actions that can be performed to achieve a specific goal. "
        "In this case, the actions are:",
        UNFINISHED,
    ),
    ("The original sentence is:", UNFINISHED),
    ("A", TOO_SHORT),
    ("", EMPTY),
    # APE's own proposal step, seed 0 (bench/results/proposal_filter.jsonl).
    (
        "I'd be happy to provide you with the answer with a single sentence of instruction.",
        CHIT_CHAT,
    ),
    (
        "I am a Python-based language-structure editor and I will help you edit your code.",
        CHIT_CHAT,
    ),
    (
        "You're a helpful AI assistant named SmolLM, trained to respond with the specified "
        "instructions. Here's a short summary of what to do:",
        CHIT_CHAT,
    ),
    ("What's the instruction?", CHIT_CHAT),
    ("The answer is 9.", ANSWER),
    (
        "Question: A dietitian ate 3-4ths of her lunch during her lunch break. If the total "
        "amount of food she had prepared for lunch had 40 calories,",
        ANSWER,
    ),
    ("The instruction I provided was:", META),
    ("This instruction requires a single imperative sentence.", META),
    ("An imperative sentence stating what must be done.", ECHO),
    ("Reply with the instruction.", ECHO),
    ("Respond with a simple imperative sentence, not a list of choices.", ECHO),
    ("Show absolute caps:", UNFINISHED),
    ("Write the answer of 24 as one of the numbers in the answer:", UNFINISHED),
    (
        "Provide a concise and clear answer to a question about the following: Jill likes to make "
        "small jobs online. She makes $10 a day for her first month and doubles that in two "
        "months, so she makes 2",
        TRUNCATED,
    ),
    ("Represent.", TOO_SHORT),
]

# Instructions the filter must keep: what the task authors wrote for every
# built-in task is read from the task files in the test below; these are the
# ones named in the issue, phrasings in the style of the APE paper's, and
# near-misses of the rejection rules.
REAL_GOOD = [
    "Write the antonym of the word.",
    "Classify the sentiment as positive or negative.",
    "Write a word that means the opposite of the input word.",
    "Write the first letter of the word.",
    "Write the plural form of the word.",
    "Say whether the sentence is positive or negative.",
    "Make the word plural",
    "Add the two numbers",
    "The output should be the plural form of the input word.",
    "Tell me the first letter of each word.",
    "Write the letter I if the word starts with I, else its first letter.",
    "You are a sentiment classifier: label each review positive or negative.",
    "Task: Add the numbers.",
    "Answer with one word only.",
]


@pytest.mark.parametrize(("text", "reason"), REAL_BAD)
def test_real_bad_proposals_are_rejected_with_their_reason(text: str, reason: str) -> None:
    assert rejection_reason(clean_instruction(text)) == reason


@pytest.mark.parametrize("text", REAL_GOOD)
def test_real_instructions_are_kept(text: str) -> None:
    assert rejection_reason(clean_instruction(text)) is None


def test_every_task_authors_instruction_is_kept(data_dir: Path) -> None:
    instructions = [load_task(name).baseline_instruction for name, _ in list_tasks()]
    result = filter_proposals(instructions, [])
    assert result.rejected == {}
    assert result.kept == list(dict.fromkeys(instructions))


def test_chit_chat_the_issue_names_is_rejected() -> None:
    for text in (
        "I'd be happy to help you with that!",
        "Sure! Here is the instruction",
        "Of course, let me know",
        "Hello there",
        "Thank you for the examples.",
        "Let me think about it.",
        "I think the pattern is about words.",
    ):
        assert rejection_reason(text) == CHIT_CHAT, text
    for text in ("I'm sorry, I cannot help with that.", "As an AI, I do not write instructions."):
        assert rejection_reason(text) == REFUSAL, text
    assert rejection_reason("The answer is 9.") == ANSWER
    assert rejection_reason("Answer: 42") == ANSWER


def test_a_question_is_rejected_even_when_it_reads_like_a_task() -> None:
    """Documented limit: the rule is 'ends in ?', so a question-form prompt goes too."""
    assert rejection_reason("Is the review positive or negative?") == CHIT_CHAT


def test_the_instruction_announcement_is_cleaned_not_rejected() -> None:
    assert clean_instruction(' The instruction was: "Add the numbers."') == "Add the numbers."
    assert clean_instruction('  Sort the list"') == "Sort the list"
    assert rejection_reason(clean_instruction("The instruction is to sort the words.")) is None


def test_length_limit() -> None:
    text = "Write the antonym of the word" + " and explain it" * 30 + "."
    assert filter_proposals([text], [], max_chars=300).rejected == {TOO_LONG: 1}
    assert filter_proposals([text], [], max_chars=1000).kept == [text]


def test_duplicates_exact_and_near_keep_the_first_wording() -> None:
    result = filter_proposals(
        [
            ' Write the opposite of the word."',
            "write the opposite of the word",
            "Write the opposite of each word.",  # one added word: Jaccard 5/6
            "Write the antonym of the word.",  # a different content word: 4/6, kept
        ],
        [],
    )
    assert result.kept == ["Write the opposite of the word.", "Write the antonym of the word."]
    assert result.rejected == {DUPLICATE: 2}


def test_short_instructions_differing_in_their_verb_are_not_duplicates() -> None:
    assert not is_near_duplicate("Add the numbers.", "Subtract the numbers.")


def test_a_negation_is_never_a_near_duplicate() -> None:
    a = "Write positive if the review of the movie is good and otherwise negative."
    b = "Write positive if the review of the movie is not good and otherwise negative."
    assert not is_near_duplicate(a, b)
    assert is_near_duplicate(a, a.replace("Write", "write").rstrip("."))


def test_known_instructions_count_as_seen() -> None:
    start = "Write the first letter of the word."
    result = filter_proposals(
        ["write the first letter of the word", "Spell it."], [], known=[start]
    )
    assert result.kept == ["Spell it."]
    assert result.rejected == {DUPLICATE: 1}


def test_copies_of_real_examples_are_rejected(data_dir: Path) -> None:
    sentiment = load_task("sentiment").examples("train") + load_task("sentiment").examples("dev")
    # Written by the embedded model (instructzero_scale_diversity.jsonl): a dev input
    # verbatim, and one mostly made of it.
    copied = [
        "It's not original enough.",
        "Provide a positive output, specifically, \"It's not original enough.",
        "A negative.",  # a target
    ]
    result = filter_proposals(copied, sentiment)
    assert result.rejected == {COPY: 3}
    assert filter_proposals(["Classify as positive or negative."], sentiment).kept


def test_demonstrations_copied_back_are_copies_not_questions(data_dir: Path) -> None:
    # APE's proposals on trec, seed 0: the shown questions, asked back.
    trec = load_task("trec").examples("train")
    result = filter_proposals(
        ["Question: Where is the Danube ?", "What does palindromic mean?"], trec
    )
    assert result.rejected == {COPY: 2}


def test_a_fragment_of_a_gsm8k_question_is_a_copy(data_dir: Path) -> None:
    example = load_task("gsm8k").examples("train")[0]
    sentence = example.input.split(". ")[0] + "."
    assert len(sentence.split()) >= 5
    assert filter_proposals([sentence], [example]).rejected == {COPY: 1}


def test_decisions_and_examples_of_rejects_are_recorded() -> None:
    texts = ["Output: a", "Output: b", "Output: c", "Output: d", "Add the numbers."]
    result = filter_proposals(texts, [])
    assert result.examples_of_rejects == {ANSWER: ["Output: a", "Output: b", "Output: c"]}
    assert [verdict for _, verdict in result.decisions] == [ANSWER] * 4 + ["kept"]


# -- format constraints ------------------------------------------------------------


def _constraints(name: str) -> list[str]:
    task = load_task(name)
    return format_constraints(task.examples("train"), task.label_words)


def test_format_constraints_on_real_tasks(data_dir: Path) -> None:
    assert _constraints("first_word_letter") == [
        "Answer with a single letter.",
        "Answer in lower case.",
    ]
    assert _constraints("sum") == ["Answer with the number only."]
    assert _constraints("gsm8k") == ["Answer with the number only."]
    assert _constraints("sst2") == ["Answer with one of: negative, positive."]
    assert _constraints("trec") == [
        "Answer with one of: description, entity, abbreviation, human, location, number."
    ]
    assert _constraints("antonyms") == ["Answer with one word only.", "Answer in lower case."]


def test_labels_are_read_off_targets_when_the_task_lists_none(data_dir: Path) -> None:
    assert load_task("sentiment").label_words is None
    assert _constraints("sentiment") == ["Answer with one of: negative, positive."]


def test_free_text_tasks_get_no_constraint(data_dir: Path) -> None:
    assert _constraints("negation") == []
    assert _constraints("cause_and_effect") == []
    assert format_constraints([]) == []


def test_nearly_all_tolerates_one_odd_target_in_twenty() -> None:
    def examples(targets: list[str]) -> list[Example]:
        return [Example(id=str(i), input="x", target=t) for i, t in enumerate(targets)]

    assert format_constraints(examples([str(i) for i in range(19)] + ["n/a"])) == [
        "Answer with the number only."
    ]
    assert format_constraints(examples([str(i) for i in range(18)] + ["n/a", "none"])) == [
        "Answer only, no explanation."
    ]


def test_with_constraint() -> None:
    constraint = "Answer with the number only."
    assert with_constraint("Add the two numbers", constraint) == (
        "Add the two numbers. Answer with the number only."
    )
    assert with_constraint("Add them.", constraint) == "Add them. Answer with the number only."
    assert with_constraint("Add them. Answer with the number only", constraint) == (
        "Add them. Answer with the number only."
    )
    assert with_constraint("Add them!", "answer in lower case") == (
        "Add them! Answer in lower case."
    )
    assert with_constraint("  ", constraint) == constraint
