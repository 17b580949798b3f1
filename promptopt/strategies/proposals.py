"""Proposals that can be scored, and format constraints read off the data.

A small proposer (the embedded 135M model) writes many texts that are not
instructions: chit-chat ("I'd be happy to help you with that!"), refusals,
answer fragments ("Output: positive"), copies of a demonstration, lead-ins
whose content never arrived ("The instructions are:"). Every one of them would
cost dev evaluations in selection and can never win honestly, so they are
dropped here, before any evaluation, with a named reason that is logged.

The filter is deliberately a set of shallow, explainable rules: it must never
drop a plain imperative instruction ("Write the antonym of the word."), since
a lost good candidate costs more than a few wasted evaluations.

`format_constraints` gives strategies candidates that need no proposer at all:
the output format every train target shares ("Answer with the number only."),
which small target models often miss without being told.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from promptopt.core.domain import Example

# -- cleaning --------------------------------------------------------------------

_PREFIX = re.compile(
    r"^((the )?(new |rewritten )?instruction (was|is)( to)?[:\s]*"
    r"|(new |rewritten )?instruction[:\s]+)",
    re.IGNORECASE,
)


def clean_instruction(text: str) -> str:
    """The proposer's answer trimmed to an instruction sentence.

    Small chat models announce the answer ("The instruction is to sort the
    words."); the announcement is dropped and the rest capitalized.
    """
    text = _PREFIX.sub("", text.strip()).strip().strip('"').strip()
    return text[:1].upper() + text[1:]


# -- filtering -------------------------------------------------------------------

KEPT = "kept"
EMPTY = "empty"
TOO_SHORT = "too_short"
TOO_LONG = "too_long"
REFUSAL = "refusal"
CHIT_CHAT = "chit_chat"
META = "talks_about_instruction"
ECHO = "echoes_meta_prompt"
ANSWER = "answer_fragment"
UNFINISHED = "unfinished"
TRUNCATED = "truncated"
COPY = "copies_example"
DUPLICATE = "duplicate"

NEAR_DUPLICATE_JACCARD = 0.8
"""Token-set Jaccard at or above which two proposals count as one.

One added word keeps two instructions of 4+ distinct words above it ("Write
the opposite of the word." / "... of each word." = 5/6); a swapped word only
does in instructions of 8+ distinct words (n/(n+2)), so short instructions that
differ in their one content word ("Add the numbers." / "Subtract the
numbers.", 2/4) stay apart. Near-equal long proposals are what a sampling
proposer repeats most, and scoring both would spend evaluations on one idea.
"""

_NEGATIONS = frozenset({"not", "no", "never", "don", "doesn", "isn", "aren", "without", "nor"})

# Refusals: the proposer declines instead of instructing.
_REFUSAL = re.compile(
    r"\b(?:i'?m sorry|i am sorry|sorry,|i apologi[sz]e|as an ai\b|as a language model"
    r"|i (?:can ?not|can'?t|am unable|'m unable|won'?t)\b|you can'?t\b)",
    re.IGNORECASE,
)
# Chit-chat openings: politeness, announcements and talk to or about the user.
_CHAT_START = re.compile(
    r"^(?:i'?d be (?:happy|glad)|i would be (?:happy|glad)|sure\b|of course\b|certainly\b"
    r"|absolutely\b|okay\b|ok\b|great\b|no problem|here (?:is|are)\b|here'?s\b|let me\b"
    r"|let'?s\b|hello\b|hi\b|hey\b|thanks?\b|thank you\b|welcome\b|you'?re welcome"
    r"|the user'?s?\b|your (?:input|request|question|message|query)\b"
    r"|you are a helpful\b)",
    re.IGNORECASE,
)
# First-person talk about the assistant, anywhere ("I'm an AI assistant designed to ...").
# The bare pronoun "I" is not enough: "Write the letter I." is an instruction.
_FIRST_PERSON = re.compile(r"\bI(?:['\u2019](?:m|d|ve|ll)| am| will| would| can| have| think)\b")
_ASSISTANT = re.compile(
    r"\b(?:ai|helpful|virtual) assistant\b|\bai language model\b", re.IGNORECASE
)
# Talk about the instruction instead of being one ("The instruction correctly
# identifies ...", "The purpose of this instruction is ...").
_META = re.compile(
    r"^(?:the|this|that)\s+(?:\w+\s+)?(?:instructions?|command|prompt)\b"
    r"|^the purpose of (?:the|this) (?:instruction|task)\b",
    re.IGNORECASE,
)
# Phrases of APE's own meta-prompt repeated back ("as one imperative sentence").
_ECHO = re.compile(
    r"\b(?:input-output pairs?|imperative sentence|(?:reply|respond) with the instruction"
    r"|the instruction only|what is the instruction)\b|^imperative\b",
    re.IGNORECASE,
)
# A demonstration's answer line or a stated answer: "Output: C,", "The answer is 9.".
_ANSWER_LABEL = re.compile(
    r"^(?:output|answer|answer type|result|label|sentiment|type|topic|a"
    r"|input|question|review|sentence|article)\s*[:=]\s*\S",
    re.IGNORECASE,
)
_LABEL_LINE = re.compile(r"^[A-Za-z]+\s*:\s*(?P<value>[^.]+)$")
_REASONING_STEP = re.compile(r"^step \d+\b", re.IGNORECASE)
_STATED_ANSWER = re.compile(
    r"^(?:the )?(?:final |correct )?(?:answer|output|result|label|sentiment"
    r"|original (?:sentence|input|text))(?: (?:sentence|word|text|value))?"
    r"\s*(?:is|was|would be|should be|=|:)\s*(?P<value>.+)$",
    re.IGNORECASE,
)
_QUOTES = "\"'`\u201c\u201d\u2018\u2019"
TRUNCATED_WORDS = 20
"""A proposal this long without a final period was cut at the proposer's token
limit mid-sentence (48 tokens by default): its instruction, if any, is unread."""


@dataclass
class ProposalFilter:
    """What survived the filter and why the rest did not."""

    kept: list[str] = field(default_factory=list)
    """Cleaned proposals, first-seen order."""
    rejected: dict[str, int] = field(default_factory=dict)
    """Reason -> count."""
    examples_of_rejects: dict[str, list[str]] = field(default_factory=dict)
    """Reason -> the first few rejected texts (cleaned), for logs."""
    decisions: list[tuple[str, str]] = field(default_factory=list)
    """(cleaned text, reason or KEPT) for every text, in input order: for audits."""

    def keep(self, text: str) -> None:
        self.kept.append(text)
        self.decisions.append((text, KEPT))

    def reject(self, reason: str, text: str, keep_examples: int = 3) -> None:
        self.decisions.append((text, reason))
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        shown = self.examples_of_rejects.setdefault(reason, [])
        if len(shown) < keep_examples:
            shown.append(text)


def normalize(text: str) -> str:
    """Lower case, punctuation to spaces, single spaces: what comparisons use."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def _tokens(text: str) -> frozenset[str]:
    return frozenset(normalize(text).split())


def is_near_duplicate(a: str, b: str) -> bool:
    """Same normalized text, or token sets with Jaccard >= NEAR_DUPLICATE_JACCARD
    unless they differ in a negation ("... is positive" vs "... is not positive")."""
    if normalize(a) == normalize(b):
        return True
    ta, tb = _tokens(a), _tokens(b)
    if not ta or not tb or (ta ^ tb) & _NEGATIONS:
        return False
    return len(ta & tb) / len(ta | tb) >= NEAR_DUPLICATE_JACCARD


def _example_texts(examples: Iterable[Example]) -> list[str]:
    """Every text a demonstration shows, normalized, without repeats."""
    texts: dict[str, None] = {}
    for e in examples:
        for text in (e.input, e.target, e.shown_output, *e.aliases):
            key = normalize(text)
            if key:
                texts[key] = None
    return list(texts)


def _contains_run(haystack: str, needle: str) -> bool:
    """Whether `needle`'s words occur as consecutive words of `haystack`."""
    return f" {needle} " in f" {haystack} "


def copies_example(text: str, example_texts: Sequence[str]) -> bool:
    """The proposal is an example's input or output, mostly made of one (the
    example's words cover at least half of it: "A negative."), or a fragment of
    at least five words lifted from one (a sentence of a GSM8K question)."""
    key = normalize(text)
    words = len(key.split())
    for shown in example_texts:
        if key == shown:
            return True
        if _contains_run(key, shown) and len(shown.split()) * 2 >= words:
            return True
        if words >= 5 and _contains_run(shown, key):
            return True
    return False


def _is_answer_fragment(text: str) -> bool:
    """A demonstration line (made up or not), a reasoning step or a stated value,
    not a rule: "Output: hope", "Question: ...", "Step 1: ...", "The answer is
    9.", "The output was 'positive' ...". "The output should be the plural form
    of the input word." describes a mapping and is kept."""
    if _ANSWER_LABEL.match(text) or _REASONING_STEP.match(text):
        return True
    line = _LABEL_LINE.match(text)
    if line is not None and len(line.group("value").split()) <= 2:
        return True
    stated = _STATED_ANSWER.match(text)
    if stated is None:
        return False
    value = stated.group("value").strip()
    words = len(normalize(value).split())  # 0: a lead-in ("The output should be:")
    return words > 0 and (value[:1] in _QUOTES or words <= 3)


def _is_chit_chat(text: str) -> bool:
    """Politeness, talk to or about the user or the assistant, or a question."""
    return bool(
        _CHAT_START.match(text)
        or _FIRST_PERSON.search(text)
        or _ASSISTANT.search(text)
        or text.rstrip(_QUOTES + " ").endswith("?")
    )


def rejection_reason(text: str, max_chars: int = 300) -> str | None:
    """Why a cleaned proposal cannot be an instruction, or None if it may be one.

    Checks only the text itself; duplicates and copies need context and are
    checked by `filter_proposals`.
    """
    words = normalize(text).split()
    if not re.search(r"[A-Za-z]", text):
        return EMPTY
    if len(words) < 2:
        return TOO_SHORT
    if len(text) > max_chars:
        return TOO_LONG
    if _REFUSAL.search(text):
        return REFUSAL
    if _is_chit_chat(text):
        return CHIT_CHAT
    if _META.match(text):
        return META
    if _ECHO.search(text):
        return ECHO
    if _is_answer_fragment(text):
        return ANSWER
    if text.rstrip(_QUOTES + " ").endswith(":"):
        # The proposer stops at a newline: a lead-in's content never arrived.
        return UNFINISHED
    if len(words) >= TRUNCATED_WORDS and text.rstrip()[-1] not in ".!" + _QUOTES + ")":
        return TRUNCATED
    return None


def filter_proposals(
    texts: Iterable[str],
    examples: Iterable[Example],
    *,
    max_chars: int = 300,
    known: Iterable[str] = (),
) -> ProposalFilter:
    """Clean each proposal and keep those that can be scored as an instruction.

    `examples` are the demonstrations the proposer saw (copies of them are
    dropped); `known` are instructions already entered as candidates
    (near-duplicates of them are dropped too). Kept texts are cleaned, in
    first-seen order.
    """
    result = ProposalFilter()
    shown = _example_texts(examples)
    seen = list(known)
    for raw in texts:
        text = clean_instruction(raw)
        reason = rejection_reason(text, max_chars)
        if reason not in (EMPTY, TOO_LONG) and copies_example(text, shown):
            reason = COPY  # the more telling reason ("Question: Where is the Danube ?")
        if reason is None and any(is_near_duplicate(text, other) for other in seen):
            reason = DUPLICATE
        if reason is None:
            result.keep(text)
            seen.append(text)
        else:
            result.reject(reason, text)
    return result


# -- format constraints ------------------------------------------------------------

NEARLY_ALL = 0.95
"""Share of train targets a format must hold for: one odd target in 20 (a
label with a stray space, an alias) should not hide an otherwise clear format."""

_NUMBER = re.compile(r"^[-+]?\$?\d[\d,]*(?:\.\d+)?%?$")
_LETTER = re.compile(r"^[A-Za-z]$")
_WORD = re.compile(r"^[A-Za-z][A-Za-z'-]*$")
SHORT_WORDS = 3
"""Targets of at most this many words count as short answers."""
MAX_INFERRED_LABELS = 8


def _holds(targets: Sequence[str], test: Callable[[str], object]) -> bool:
    """Whether `test` holds for nearly all targets."""
    return sum(1 for t in targets if test(t)) >= NEARLY_ALL * len(targets)


def _labels(targets: Sequence[str], label_words: Sequence[str] | None) -> list[str] | None:
    """The closed answer set, if the targets have one: the task's label words, or
    a few distinct targets that each recur (a classification task written as
    plain input/output pairs, like `sentiment`)."""
    if label_words:
        words = [w.strip() for w in label_words]
        allowed = {w.casefold() for w in words}
        return words if _holds(targets, lambda t: t.casefold() in allowed) else None
    counts = Counter(t.casefold() for t in targets)
    if 2 <= len(counts) <= MAX_INFERRED_LABELS and len(targets) >= 3 * len(counts):
        return sorted(counts)
    return None


def format_constraints(
    examples: Sequence[Example], label_words: Sequence[str] | None = None
) -> list[str]:
    """Output-format sentences that (nearly) every train target obeys, most
    specific first; [] when none applies or there are no examples.

    A constraint implied by a more specific one is left out (a number is also
    short; a label word is also lower case): each becomes a candidate that
    costs evaluations, and a restated one would score like its stronger twin.
    """
    targets = [e.target.strip() for e in examples]
    if not targets:
        return []
    out: list[str] = []
    implied: set[str] = set()
    labels = _labels(targets, label_words)
    if _holds(targets, _NUMBER.match):
        out.append("Answer with the number only.")
        implied |= {"word", "short", "lower"}
    elif labels is not None:
        out.append(f"Answer with one of: {', '.join(labels)}.")
        implied |= {"word", "short", "lower"}
    elif _holds(targets, _LETTER.match):
        out.append("Answer with a single letter.")
        implied |= {"word", "short"}
    if "word" not in implied and _holds(targets, _WORD.match):
        out.append("Answer with one word only.")
        implied.add("short")
    lettered = [t for t in targets if re.search(r"[A-Za-z]", t)]
    mostly_words = len(lettered) * 2 >= len(targets)
    if "lower" not in implied and mostly_words and _holds(lettered, lambda t: t == t.lower()):
        out.append("Answer in lower case.")
    if "short" not in implied and _holds(targets, lambda t: len(t.split()) <= SHORT_WORDS):
        out.append("Answer only, no explanation.")
    return out


def with_constraint(instruction: str, constraint: str) -> str:
    """The instruction followed by the constraint sentence, each ending in a
    period; unchanged (but for the period) when it already says it."""
    base = _sentence(instruction)
    rule = _sentence(constraint)
    if not base:
        return rule
    if not rule or _contains_run(normalize(base), normalize(rule)):
        return base
    return f"{base} {rule}"


def _sentence(text: str) -> str:
    """One line, capitalized, ending in sentence punctuation."""
    text = " ".join(text.split())
    if text and text[-1] not in ".!?":
        text += "."
    return text[:1].upper() + text[1:]
