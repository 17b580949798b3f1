"""HumanEval as a code task and the inference-time Reflexion loop, on a scripted model."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from promptopt.cli import app
from promptopt.core.domain import GenerationRequest
from promptopt.core.errors import ConfigError
from promptopt.data.code_tasks import (
    CodeProblem,
    VisibleTest,
    extract_code,
    humaneval_file,
    load_humaneval,
    run_hidden,
    run_visible,
    solution_program,
    visible_tests,
)
from promptopt.run.code_eval import (
    CodeReflexionConfig,
    pass_at_1,
    reflexion_solve,
    run_code_eval,
)
from promptopt.sandbox.runner import Sandbox, SandboxLimits
from tests.fakes import ScriptedLLM, last_user_text

LIMITS = SandboxLimits(timeout_s=3.0, cpu_s=2, memory_mb=256)

ADD = CodeProblem(
    task_id="toy/add",
    prompt='def add(a: int, b: int) -> int:\n    """Add two numbers.\n    >>> add(2, 3)\n    5\n'
    '    >>> add(-1, 1)\n    0\n    """\n',
    entry_point="add",
    test="def check(candidate):\n    assert candidate(2, 3) == 5\n"
    "    assert candidate(10, 5) == 15\n",
    visible=(VisibleTest("add(2, 3)", "5"), VisibleTest("add(-1, 1)", "0")),
)


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(allow_code_execution=True, limits=LIMITS)


# --------------------------------------------------------------------------- data


def test_humaneval_comes_from_the_installed_package() -> None:
    assert humaneval_file().name == "HumanEval.jsonl.gz"
    problems = load_humaneval()
    assert len(problems) == 164
    first = problems[0]
    assert first.task_id == "HumanEval/0" and first.entry_point == "has_close_elements"
    assert "def check(candidate)" in first.test
    assert first.visible == (
        VisibleTest("has_close_elements([1.0, 2.0, 3.0], 0.5)", "False"),
        VisibleTest("has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)", "True"),
    )
    assert [p.task_id for p in load_humaneval(3)] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert sum(bool(p.visible) for p in problems) >= 120


def test_visible_tests_read_the_docstring_formats() -> None:
    doctest_style = 'def f(x):\n    """Double.\n    >>> f(2)\n    4\n    >>> f(x)\n    4\n    """\n'
    assert visible_tests(doctest_style, "f") == (VisibleTest("f(2)", "4"),)  # f(x): not literal
    arrows = (
        "def g(s):\n    '''Examples:\n    g(\"ab\") == 2\n    g('a') ➞ 1\n    g([1]) => 1\n"
        "    g('') -> 0\n    g(3) == true\n    other(1) == 1\n    '''\n"
    )
    assert visible_tests(arrows, "g") == (
        VisibleTest('g("ab")', "2"),
        VisibleTest("g('a')", "1"),
        VisibleTest("g([1])", "1"),
        VisibleTest("g('')", "0"),
    )
    assert visible_tests("def h():\n    '''No examples.'''\n", "h") == ()


# --------------------------------------------------------------------------- model output


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            "Here it is:\n```python\ndef add(a, b):\n    return a + b\n```\nThis adds.",
            "def add(a, b):\n    return a + b\n",
        ),
        ("```python\ndef add(a, b):\n    return a + b", "def add(a, b):\n    return a + b\n"),
        (
            "```python\nimport math\n```\n```py\n    def add(a, b):\n        return b + a\n```",
            "def add(a, b):\n    return b + a\n",
        ),
        ("return a + b", "    return a + b\n"),
        ("    return a + b\n", "    return a + b\n"),
    ],
)
def test_extract_code(output: str, expected: str) -> None:
    assert extract_code(output, "add") == expected


def test_solution_program_keeps_the_prompt_helpers() -> None:
    full = solution_program(ADD, "def add(a, b):\n    return a + b\n")
    assert full.startswith(ADD.prompt) and "    pass\n" in full
    body = solution_program(ADD, "    return a + b\n")
    assert body == ADD.prompt + "    return a + b\n"
    for program in (full, body):
        namespace: dict = {}
        exec(compile(program, "p", "exec"), namespace)
        assert namespace["add"](2, 2) == 4


# --------------------------------------------------------------------------- running tests


def test_visible_tests_pass_and_fail_with_feedback(sandbox: Sandbox) -> None:
    good = run_visible(sandbox, ADD, "    return a + b\n")
    assert good.passed and good.status == "passed"
    bad = run_visible(sandbox, ADD, "def add(a, b):\n    return a * b\n")
    assert not bad.passed and bad.status == "failed"
    assert "Test: add(2, 3)\nExpected: 5\nGot: 6" in bad.feedback
    assert "Test: add(-1, 1)\nExpected: 0\nGot: -1" in bad.feedback
    broken = run_visible(sandbox, ADD, "def add(a, b:\n")
    assert broken.status == "error" and "does not run: SyntaxError" in broken.feedback
    raises = run_visible(sandbox, ADD, "    return a + c\n")
    assert "Got: NameError: name 'c' is not defined" in raises.feedback


def test_visible_feedback_names_the_test_that_hangs(sandbox: Sandbox) -> None:
    hangs = run_visible(sandbox, ADD, "    while a < 0:\n        pass\n    return a + b\n")
    assert hangs.status == "timeout"
    assert "Test: add(-1, 1)" in hangs.feedback and "time limit" in hangs.feedback


def test_hidden_tests(sandbox: Sandbox) -> None:
    assert run_hidden(sandbox, ADD, "    return a + b\n").passed
    assert run_hidden(sandbox, ADD, "    return 5\n").status == "failed"


# --------------------------------------------------------------------------- the loop

WRONG = "```python\ndef add(a, b):\n    return a - b\n```"
HANGS = "```python\ndef add(a, b):\n    while True:\n        pass\n```"
RIGHT = "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```"


class Coder:
    """First attempt wrong (or hanging), retry right; records every prompt."""

    def __init__(self, first: str = WRONG) -> None:
        self.first = first
        self.prompts: list[str] = []

    def __call__(self, request: GenerationRequest, sample: int) -> str:
        text = last_user_text(request)
        self.prompts.append(text)
        if text.startswith("This Python function was asked for"):
            return "It subtracts instead of adding. Return a + b.\n\nMore text."
        if "An earlier implementation was wrong" in text:
            return RIGHT
        return self.first


def test_the_loop_reflects_and_fixes_a_wrong_answer(sandbox: Sandbox) -> None:
    coder = Coder()
    llm = ScriptedLLM(coder)
    runs = reflexion_solve([ADD], llm, sandbox, CodeReflexionConfig(attempts=3))
    run = runs[0]
    assert [a.visible for a in run.attempts] == ["failed", "passed"]  # stops once visible pass
    assert [a.hidden for a in run.attempts] == [False, True]
    assert run.attempts[0].reflection == "It subtracts instead of adding. Return a + b."
    assert run.memory.items == ["It subtracts instead of adding. Return a + b."]
    reflect, retry = coder.prompts[1], coder.prompts[2]
    assert "return a - b" in reflect and "Expected: 5\nGot: -1" in reflect
    assert "return a - b" in retry and "Got: -1" in retry
    assert "1. It subtracts instead of adding. Return a + b." in retry
    assert pass_at_1(runs, 1) == 0.0 and pass_at_1(runs, 2) == 1.0 and pass_at_1(runs, 3) == 1.0


def test_one_attempt_is_plain_generation(sandbox: Sandbox) -> None:
    coder = Coder()
    runs = reflexion_solve([ADD], ScriptedLLM(coder), sandbox, CodeReflexionConfig(attempts=1))
    assert len(coder.prompts) == 1 and len(runs[0].attempts) == 1
    assert pass_at_1(runs, 1) == 0.0


def test_each_step_is_one_batch_and_a_hang_does_not_stop_the_rest(sandbox: Sandbox) -> None:
    untested = CodeProblem("toy/none", ADD.prompt.split(">>>")[0] + '"""\n', "add", ADD.test, ())
    problems = [ADD, CodeProblem("toy/add2", ADD.prompt, "add", ADD.test, ADD.visible), untested]

    def reply(request: GenerationRequest, sample: int) -> str:
        text = last_user_text(request)
        if text.startswith("This Python function was asked for"):
            return "Do not loop."
        if "An earlier implementation was wrong" in text:
            return RIGHT
        return HANGS if text.count(">>>") else RIGHT

    llm = ScriptedLLM(reply)
    runs = reflexion_solve(problems, llm, sandbox, CodeReflexionConfig(attempts=2))
    assert llm.batches == [3, 2, 2]  # write all, reflect on the two that hung, retry them
    assert [r.attempts[0].visible for r in runs] == ["timeout", "timeout", "untested"]
    assert [len(r.attempts) for r in runs] == [2, 2, 1]  # no visible tests: nothing to retry on
    assert pass_at_1(runs, 1) == pytest.approx(1 / 3) and pass_at_1(runs, 2) == 1.0


def test_run_code_eval_reports_pass_at_1_by_attempts() -> None:
    report = run_code_eval(
        "humaneval",
        allow_code_execution=True,
        attempts=2,
        test_size=2,
        llm=ScriptedLLM(lambda request, sample: "```python\ndef nothing():\n    pass\n```"),
        limits=LIMITS,
    )
    assert report["n"] == 2 and report["metric"] == "pass@1" and report["score"] == 0.0
    assert report["pass_at_1_by_attempts"] == {"1": 0.0, "2": 0.0}
    assert [p["task_id"] for p in report["problems"]] == ["HumanEval/0", "HumanEval/1"]
    assert all(p["attempts_used"] == 2 for p in report["problems"])
    assert report["sandbox"]["separate_process"]


def test_code_eval_needs_the_opt_in() -> None:
    with pytest.raises(ConfigError, match="--allow-code-execution"):
        run_code_eval("humaneval", allow_code_execution=False, llm=ScriptedLLM(lambda r, s: ""))


runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "--task", "humaneval"], "pass --allow-code-execution"),
        (
            ["eval", "--task", "humaneval", "--prompt", "best.json", "--allow-code-execution"],
            "--prompt does not apply",
        ),
        (["eval", "--task", "antonyms"], "no prompt given"),
        (
            ["eval", "--task", "antonyms", "--prompt", "p.json", "--reflexion-attempts", "3"],
            "applies to code tasks",
        ),
        (["search", "--task", "humaneval"], "is a code task"),
    ],
)
def test_cli_refusals_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_cli_eval_scores_humaneval_and_gates(monkeypatch: pytest.MonkeyPatch) -> None:
    """`eval --task humaneval` end to end on a scripted model that writes the
    reference solution of HumanEval/0 only after a reflection."""
    import gzip
    import json

    from promptopt.llm import factory

    with gzip.open(humaneval_file(), "rt") as handle:
        first = json.loads(handle.readline())
    solution = first["prompt"] + first["canonical_solution"]

    def reply(request: GenerationRequest, sample: int) -> str:
        text = last_user_text(request)
        if text.startswith("This Python function was asked for"):
            return "Compare every pair of numbers."
        if "An earlier implementation was wrong" in text:
            return f"```python\n{solution}```"
        return "```python\ndef has_close_elements(numbers, threshold):\n    return True\n```"

    monkeypatch.setattr(factory, "build_llm", lambda spec: ScriptedLLM(reply))
    args = ["eval", "--task", "humaneval", "--test-size", "1", "--allow-code-execution"]
    result = runner.invoke(app, [*args, "--reflexion-attempts", "2", "--no-cache", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["pass_at_1_by_attempts"] == {"1": 0.0, "2": 1.0} and report["passed"]
    plain = runner.invoke(app, [*args, "--no-cache", "--min-score", "0.5"])
    assert plain.exit_code == 10 and "below --min-score" in plain.output
    assert "pass@1 0.000 on 1 problems with 1 attempt(s)" in plain.output


# --------------------------------------------------------------------------- real problems


def _canonical() -> dict[str, str]:
    import gzip
    import json

    with gzip.open(humaneval_file(), "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return {row["task_id"]: row["canonical_solution"] for row in rows}


# 0: lists and floats; 2: a float result; 32: the tests call the prompt's `poly`;
# 33: the tests call the function by its name; 38: the prompt's `encode_cyclic`.
REAL = ["HumanEval/0", "HumanEval/2", "HumanEval/32", "HumanEval/33", "HumanEval/38"]
REAL_WRONG = {
    "HumanEval/0": "    return False\n",
    "HumanEval/2": "    return float(int(number))\n",
    "HumanEval/32": "    return 0.0\n",
    "HumanEval/33": "    return sorted(l)\n",
    "HumanEval/38": "    return s\n",
}


def test_real_humaneval_solutions_pass_and_wrong_ones_fail(sandbox: Sandbox) -> None:
    problems = {p.task_id: p for p in load_humaneval(40)}
    canonical = _canonical()
    for task_id in REAL:
        problem = problems[task_id]
        right = run_hidden(sandbox, problem, canonical[task_id])
        assert right.passed, (task_id, right)
        wrong = run_hidden(sandbox, problem, REAL_WRONG[task_id])
        assert wrong.status == "failed", (task_id, wrong)
        if problem.visible:
            assert run_visible(sandbox, problem, canonical[task_id]).passed, task_id
            shown = run_visible(sandbox, problem, REAL_WRONG[task_id])
            assert shown.status == "failed" and "Expected:" in shown.feedback, task_id
