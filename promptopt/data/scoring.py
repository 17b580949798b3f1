"""Scorers: pull a prediction out of raw model output, then compare it to an example.

A 135M model rarely follows an output format, so extraction decides much of a
score. Each rule below exists because small models break the format in that
particular way; the comparison step is kept lenient in the same spirit
(case, punctuation and articles never decide a match).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from promptopt.core.domain import Example
from promptopt.core.errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class Scorer:
    """A named pair of functions: `extract(output) -> prediction`, `score(prediction, example)`.

    Keeping extraction separate lets results record what was actually compared,
    which is how one sees whether a prompt failed on content or on format.
    """

    name: str
    extract: Callable[[str], str]
    score: Callable[[str, Example], float]

    def evaluate(self, output: str, example: Example) -> tuple[str, float]:
        """Extract and score in one step: `(prediction, score)`."""
        prediction = self.extract(output)
        return prediction, self.score(prediction, example)


# --------------------------------------------------------------------------- extraction

# "Output: x", "Answer: x", "The answer is x": models echo the template's cue word
# or announce the answer before giving it.
_PREFIX = re.compile(
    r"^\s*(?:(?:the\s+)?(?:final\s+)?answer\s+is\b\s*:?|(?:output|answer|label|result|a)\s*:)\s*",
    re.IGNORECASE,
)
# A new "Input:"/"Question:" in mid-line means the model started inventing the next example.
_NEXT_EXAMPLE = re.compile(r"\s*\b(?:input|output|question|answer|q)\s*:", re.IGNORECASE)
# Text after the first sentence, a parenthesis or a spaced dash is explanation, not answer.
# A period after an initial or a title ("Robert A. Richardson", "Dr. Who") ends no sentence.
_EXPLANATION = re.compile(
    r"(?<=[.!?])(?<!\b[A-Z]\.)(?<!\b(?:Mr|Ms|Dr|St|Mt|Jr|Sr|vs)\.)(?<!\bMrs\.)\s+"
    r"|\s+\(|\s+[-\u2013\u2014]\s+"
)
# 'The opposite of "happy" is "sad".': small chat models announce a short answer
# in quotes after "is"/"would be"; the quoted span after the verb is the answer.
_ANNOUNCED_QUOTE = re.compile(
    r"\b(?:is|are|would be|was)\s*:?\s*[\"\u201c]"
    r"(?P<answer>[^\"\u201c\u201d]{1,60})(?:[\"\u201d]|$)"
)
_WRAPPERS = "\"'`*\u201c\u201d\u2018\u2019\u00ab\u00bb"
_TRAILING = ".,;:!?" + _WRAPPERS


def first_line(output: str) -> str:
    """The first non-empty line: generation often runs on into a new line or example."""
    for line in output.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _strip_prefixes(line: str) -> str:
    previous = None
    text = line.strip()
    while previous != text:
        previous = text
        text = _PREFIX.sub("", text).strip().strip(_WRAPPERS).strip()
    return text


def clean_answer(output: str, cut_explanation: bool = True) -> str:
    """The answer part of a raw output.

    Takes the first line with an answer on it (a bare "Answer:" line is
    skipped), drops "Output:"/"Answer:"/"The answer is" prefixes, anything from
    an invented next "Input:" on, wrapping quotes or markdown bold, and trailing
    punctuation. With `cut_explanation` it also keeps
    only the first sentence and drops "(...)" or " - ..." commentary, which small
    models like to append.
    """
    text = next((t for t in map(_strip_prefixes, output.splitlines()) if t), "")
    text = _NEXT_EXAMPLE.split(text, maxsplit=1)[0]
    quoted = _ANNOUNCED_QUOTE.search(text)
    if quoted:
        return quoted.group("answer").strip()
    if cut_explanation:
        text = _EXPLANATION.split(text, maxsplit=1)[0]
    return text.strip().rstrip(_TRAILING).strip().strip(_WRAPPERS).strip()


def normalize(text: str) -> str:
    """Lowercase, punctuation to spaces, drop articles, collapse whitespace (SQuAD-style).

    Punctuation becomes a space rather than vanishing so "ninety-four" and
    "ninety four", or "t, i, m, e" and "t i m e", compare equal. Articles are kept
    when they are all there is, so a bare "a" (first_word_letter) stays "a".
    """
    chars = [" " if unicodedata.category(c).startswith("P") else c for c in text.lower()]
    tokens = "".join(chars).split()
    without_articles = [t for t in tokens if t not in ("a", "an", "the")]
    return " ".join(without_articles or tokens)


def _answers(example: Example) -> tuple[str, ...]:
    return (example.target, *example.aliases)


# --------------------------------------------------------------------------- scorers


def _exact_score(prediction: str, example: Example) -> float:
    guess = normalize(prediction)
    return float(bool(guess) and any(guess == normalize(a) for a in _answers(example)))


def _contains_score(prediction: str, example: Example) -> float:
    """Whole-word containment, so "eat" is not found inside "neat"."""
    padded = f" {normalize(prediction)} "
    answers = (normalize(a) for a in _answers(example))
    return float(any(a and f" {a} " in padded for a in answers))


def _f1(prediction: str, answer: str) -> float:
    guess, truth = normalize(prediction).split(), normalize(answer).split()
    common = sum((Counter(guess) & Counter(truth)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(guess), common / len(truth)
    return 2 * precision * recall / (precision + recall)


def _f1_score(prediction: str, example: Example) -> float:
    return max(_f1(prediction, a) for a in _answers(example))


def _items(text: str) -> frozenset[str]:
    """Comma-separated items ("a, b and c" too) as a set of normalized strings."""
    parts = re.split(r",|;|\band\b", text)
    return frozenset(n for n in (normalize(p) for p in parts) if n)


def _set_score(prediction: str, example: Example) -> float:
    guess = _items(prediction)
    return float(bool(guess) and any(guess == _items(a) for a in _answers(example)))


# Thousands separators only in groups of three, so a list "3,4" reads as two numbers;
# a minus sign counts only when it does not join two words or numbers ("3-4").
_NUMBER = re.compile(r"(?:(?<![\w-])-)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_FINAL_ANSWER = re.compile(r"(?:####|answer\s+is|answer\s*:)\s*:?\s*\$?\s*", re.IGNORECASE)
_NEW_QUESTION = re.compile(r"\n\s*(?:question|input|q)\s*:", re.IGNORECASE)


def _canonical_number(text: str) -> str:
    """'1,000' -> '1000', '18.0' -> '18', '-0.50' -> '-0.5'."""
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return ""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def extract_number(output: str) -> str:
    """The answer number of a free-form (possibly step-by-step) output, canonicalized.

    The number after "####" or "answer is" wins, because GSM8K-style reasoning
    mentions many intermediate numbers; otherwise the last number, since
    reasoning ends with its result. An invented follow-up "Question:" is cut
    first so its numbers cannot be picked.
    """
    text = _NEW_QUESTION.split(output, maxsplit=1)[0]
    for marker in reversed(list(_FINAL_ANSWER.finditer(text))):
        found = _NUMBER.match(text, marker.end())
        if found:
            return _canonical_number(found.group())
    numbers = _NUMBER.findall(text)
    return _canonical_number(numbers[-1]) if numbers else ""


def _numeric_score(prediction: str, example: Example) -> float:
    guess = extract_number(prediction)
    if not guess:
        return 0.0
    truths = (extract_number(a) for a in _answers(example))
    return float(any(t and Decimal(t) == Decimal(guess) for t in truths))


def label_scorer(label_words: Sequence[str]) -> Scorer:
    """Classification by label word; the prediction is the earliest label word in the output.

    Searching the whole output (case-insensitive, whole words) rather than its
    start credits "The sentiment is positive." while a word that merely contains
    a label ("positively") does not count. No label word gives "" (always wrong).
    """
    words = [w for w in label_words if w.strip()]
    if not words:
        raise ConfigError("the label scorer needs label_words: list one word per class id")
    patterns = [(w, re.compile(rf"(?<!\w){re.escape(w.strip())}(?!\w)", re.I)) for w in words]

    def extract(output: str) -> str:
        hits = [(m.start(), -len(w), w) for w, p in patterns if (m := p.search(output))]
        return min(hits)[2] if hits else ""

    def score(prediction: str, example: Example) -> float:
        guess = prediction.strip().casefold()
        return float(bool(guess) and any(guess == a.strip().casefold() for a in _answers(example)))

    return Scorer("label", extract, score)


def custom_scorer(path: str) -> Scorer:
    """Wrap a user function `(output, example) -> float` named "pkg.mod:fn" or "pkg.mod.fn".

    "file.py:fn" also works, for a scorer kept next to a task file. The output is
    only stripped: the function does its own extraction.
    """
    module_name, sep, func_name = path.partition(":")
    if not sep:
        module_name, _, func_name = path.rpartition(".")
    if not module_name or not func_name:
        raise ConfigError(f"custom scorer '{path}' must look like 'package.module:function'")
    try:
        if module_name.endswith(".py"):
            spec = importlib.util.spec_from_file_location(Path(module_name).stem, module_name)
            if spec is None or spec.loader is None or not Path(module_name).is_file():
                raise ImportError(f"no such file {module_name}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure is a configuration problem
        raise ConfigError(
            f"custom scorer '{path}': cannot import {module_name} ({exc}): "
            "check the module is installed or on PYTHONPATH"
        ) from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ConfigError(f"custom scorer '{path}': {module_name} has no function '{func_name}'")

    def score(prediction: str, example: Example) -> float:
        return float(func(prediction, example))

    return Scorer(path, lambda output: output.strip(), score)


_BUILTIN: dict[str, Scorer] = {
    "exact": Scorer("exact", clean_answer, _exact_score),
    "numeric": Scorer("numeric", extract_number, _numeric_score),
    "contains": Scorer(
        "contains", lambda output: clean_answer(output, cut_explanation=False), _contains_score
    ),
    "f1": Scorer("f1", clean_answer, _f1_score),
    "set": Scorer("set", clean_answer, _set_score),
}
SCORER_NAMES = (*_BUILTIN, "label")


def get_scorer(name: str, label_words: Sequence[str] | None = None) -> Scorer:
    """A built-in scorer by name, "label" (needs `label_words`), or a custom dotted path."""
    if name in _BUILTIN:
        return _BUILTIN[name]
    if name == "label":
        if not label_words:
            raise ConfigError("the label scorer needs label_words: list one word per class id")
        return label_scorer(label_words)
    if ":" in name or "." in name:
        return custom_scorer(name)
    raise ConfigError(
        f"unknown scorer '{name}'{did_you_mean(name, list(SCORER_NAMES))}: "
        f"choose one of {', '.join(SCORER_NAMES)} or give 'package.module:function'"
    )
