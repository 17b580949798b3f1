"""Scorers: answer extraction edge cases and each comparison rule."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from promptopt.core.domain import Example
from promptopt.core.errors import ConfigError
from promptopt.data.scoring import SCORER_NAMES, clean_answer, extract_number, get_scorer, normalize


def ex(target: str, *aliases: str) -> Example:
    return Example(id="x", input="in", target=target, aliases=aliases)


def score(name: str, output: str, example: Example, **kwargs: object) -> float:
    scorer = get_scorer(name, **kwargs)  # type: ignore[arg-type]
    return scorer.score(scorer.extract(output), example)


# --------------------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("insane", "insane"),
        ("  insane  ", "insane"),
        ("\n\n  insane\nhappy", "insane"),  # first non-empty line
        ("Output: insane", "insane"),
        ("Answer: insane", "insane"),
        ("answer:insane", "insane"),
        ("The answer is insane.", "insane"),
        ("Answer:\ninsane", "insane"),  # a bare cue line is skipped
        ('"insane"', "insane"),
        ("'Zeit'", "Zeit"),
        ("**insane**", "insane"),
        ("Output: \u201cinsane\u201d.", "insane"),
        ("insane.", "insane"),
        ("insane!!", "insane"),
        ("insane (the opposite of sane)", "insane"),
        ("insane - the opposite of sane", "insane"),
        ("insane. Because sane means healthy.", "insane"),
        ("insane Input: happy Output: sad", "insane"),
        (
            "Robert A. Richardson did not die in Marion.",
            "Robert A. Richardson did not die in Marion",
        ),
        ("Dr. Who was not born in Boston. Yes.", "Dr. Who was not born in Boston"),
        ("t i m e", "t i m e"),
        ("", ""),
        ("\n  \n", ""),
    ],
)
def test_clean_answer(output: str, expected: str) -> None:
    assert clean_answer(output) == expected


def test_clean_answer_can_keep_the_explanation() -> None:
    output = "The German word is Zeit. It means time."
    assert clean_answer(output, cut_explanation=False) == "The German word is Zeit. It means time"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The  Cat!", "cat"),
        ("ninety-four", "ninety four"),
        ("t, i, m, e", "t i m e"),
        ("a", "a"),  # an article alone is the answer (first_word_letter)
        ("An apple", "apple"),
        ("\u00bfQu\u00e9?", "qu\u00e9"),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("18", "18"),
        ("$18", "18"),
        ("18.0", "18"),
        ("18.50 dollars", "18.5"),
        ("1,000", "1000"),
        ("It costs $1,234,567.", "1234567"),
        ("-5 degrees", "-5"),
        ("from 3-4", "4"),  # a dash between numbers is no minus sign
        ("1,2,3", "3"),  # not a thousands separator
        ("0.0", "0"),
        ("She has 5 apples, buys 7, so 12 in total", "12"),
        ("5 + 7 = 12.\nThe answer is 12. Then 3 more", "12"),  # 'answer is' beats 'last'
        ("5 + 7 = 12\n#### 12\n", "12"),
        ("The final answer is: $1,200", "1200"),
        ("2 + 2 = 4\n\nQuestion: what is 99 + 1?", "4"),  # invented next question ignored
        ("no number here", ""),
    ],
)
def test_extract_number(output: str, expected: str) -> None:
    assert extract_number(output) == expected


# --------------------------------------------------------------------------- scorers


def test_exact_is_normalized_and_accepts_aliases() -> None:
    assert score("exact", "Output: The Insane.", ex("insane")) == 1.0
    assert score("exact", "no", ex("not the same", "no", "false")) == 1.0
    assert score("exact", "same", ex("not the same", "no", "false")) == 0.0
    assert score("exact", "not the same", ex("same", "yes", "true")) == 0.0
    assert score("exact", "one hundred and twenty two", ex("one hundred and twenty-two")) == 1.0


def test_exact_never_matches_an_empty_prediction() -> None:
    assert score("exact", "", ex("a")) == 0.0
    assert score("exact", "...", ex("a")) == 0.0
    assert score("exact", "A", ex("a")) == 1.0


def test_numeric_compares_values() -> None:
    assert score("numeric", "The answer is $1,000.00", ex("1000")) == 1.0
    assert score("numeric", "18.0", ex("18")) == 1.0
    assert score("numeric", "-3", ex("-3")) == 1.0
    assert score("numeric", "3", ex("-3")) == 0.0
    assert score("numeric", "nothing", ex("0")) == 0.0
    assert score("numeric", "7", ex("1,200", "7")) == 1.0
    # The prediction itself is re-read, so a caller may pass raw text.
    assert get_scorer("numeric").score("about 18 apples", ex("18")) == 1.0


def test_contains_matches_whole_words_of_any_answer() -> None:
    assert score("contains", "die Zeit", ex("Zeit")) == 1.0
    assert score("contains", "The German word is Mal.", ex("Zeit", "Mal", "Zeitpunkt")) == 1.0
    assert score("contains", "neat", ex("eat")) == 0.0
    assert score("contains", "Zeitalter", ex("Zeit")) == 0.0
    assert score("contains", "", ex("Zeit")) == 0.0


def test_f1_takes_the_best_answer() -> None:
    assert score("f1", "involve oscillations", ex("involve oscillations.")) == 1.0
    partial = score("f1", "they all involve strings", ex("involve strings."))
    assert partial == pytest.approx(2 * (2 / 4) * 1.0 / (2 / 4 + 1.0))
    assert score("f1", "going up", ex("involve vertical movement.", "involve going up.")) == (
        pytest.approx(0.8)
    )
    assert score("f1", "", ex("x")) == 0.0


def test_set_ignores_order_and_format() -> None:
    target = ex("chicken, spider, tortoise")
    assert score("set", "tortoise, chicken, spider", target) == 1.0
    assert score("set", "Tortoise, chicken and spider.", target) == 1.0
    assert score("set", "chicken,spider,tortoise,", target) == 1.0
    assert score("set", "chicken, spider", target) == 0.0
    assert score("set", "chicken, spider, tortoise, taxi", target) == 0.0
    assert score("set", "", target) == 0.0


def test_label_takes_the_earliest_label_word() -> None:
    scorer = get_scorer("label", label_words=["negative", "positive"])
    assert scorer.extract("Positive") == "positive"
    assert scorer.extract("The sentiment is negative, not positive.") == "negative"
    assert scorer.extract("positively great") == ""  # whole words only
    assert scorer.extract("I cannot tell") == ""
    assert scorer.score("positive", ex("positive")) == 1.0
    assert scorer.score("negative", ex("positive")) == 0.0
    assert scorer.score("", ex("positive")) == 0.0


def test_label_prefers_the_longer_word_at_the_same_place() -> None:
    scorer = get_scorer("label", label_words=["same", "not the same"])
    assert scorer.extract("not the same, I think") == "not the same"
    assert scorer.extract("the same") == "same"


def test_label_needs_label_words() -> None:
    with pytest.raises(ConfigError, match="label_words"):
        get_scorer("label")


def test_unknown_scorer_suggests_a_name() -> None:
    with pytest.raises(ConfigError) as info:
        get_scorer("exct")
    message = str(info.value)
    assert "unknown scorer 'exct'" in message
    assert "did you mean 'exact'" in message
    for name in SCORER_NAMES:
        assert name in message


# --------------------------------------------------------------------------- custom scorers

CUSTOM = textwrap.dedent(
    """
    def starts_right(output, example):
        return output.startswith(example.target)

    not_callable = 3
    """
)


@pytest.fixture
def custom_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    package = tmp_path / "myscorers"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "rules.py").write_text(CUSTOM)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package
    for name in ("myscorers", "myscorers.rules"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize("path", ["myscorers.rules:starts_right", "myscorers.rules.starts_right"])
def test_custom_scorer_by_dotted_path(custom_module: Path, path: str) -> None:
    scorer = get_scorer(path)
    assert scorer.name == path
    assert scorer.extract("  yes, indeed \n") == "yes, indeed"
    assert scorer.score("yes, indeed", ex("yes")) == 1.0
    assert scorer.score("no", ex("yes")) == 0.0


def test_custom_scorer_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "rule.py").write_text(CUSTOM)
    scorer = get_scorer(f"{tmp_path / 'rule.py'}:starts_right")
    assert scorer.score("yes", ex("yes")) == 1.0


def test_custom_scorer_errors_name_the_problem(custom_module: Path) -> None:
    with pytest.raises(ConfigError, match="cannot import nosuch.module.*PYTHONPATH"):
        get_scorer("nosuch.module:fn")
    with pytest.raises(ConfigError, match="has no function 'missing'"):
        get_scorer("myscorers.rules:missing")
    with pytest.raises(ConfigError, match="has no function 'not_callable'"):
        get_scorer("myscorers.rules:not_callable")


def test_announced_quoted_answer_is_extracted() -> None:
    from promptopt.data.scoring import clean_answer

    assert clean_answer('The opposite of the input word is "uncurable".') == "uncurable"
    assert clean_answer('The opposite of "happy" is "sad"') == "sad"
    assert clean_answer('The first letter of the word is "c"') == "c"
    assert clean_answer('He said "hi" to me') == 'He said "hi" to me'
