"""CLI behaviour that needs no model: listings, help and every user-error exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from promptopt.cli import app
from tests.fakes import forbid_model_loading

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture(autouse=True)
def _data(data_dir: Path, isolated_cache: Path) -> None:
    pass


def test_lists() -> None:
    code, out = run("tasks", "list")
    assert code == 0 and "gsm8k" in out and "antonyms" in out and "sst2" in out
    code, out = run("strategies", "list")
    assert code == 0 and "ape" in out
    code, out = run("strategies", "show", "ape")
    assert code == 0 and "halving_eta" in out and "resample_rounds" in out
    assert "demonstration stage" in out and "--demo-sets" in out
    code, out = run("strategies", "show", "mipro")
    assert code == 0 and "demonstration stage" not in out
    code, out = run("models", "list")
    assert code == 0 and "openai" in out and "embedded" in out
    code, out = run("cache", "stats")
    assert code == 0 and "0 entries" in out


def test_models_list_says_which_dtype_auto_picks_here_and_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from promptopt.llm import dtype_choice

    code, out = run("models", "list")
    here = dtype_choice.resolve_dtype("auto", "cpu")
    assert code == 0 and f"dtype auto on cpu: {here.dtype} ({here.reason})" in out
    assert "torch threads" in out

    avx2_only = dtype_choice.MachineFacts(
        "cpu", architecture="x86_64", cpu_flags=frozenset({"avx2"}), onednn_bf16=False
    )
    monkeypatch.setattr(dtype_choice, "machine_facts", lambda device: avx2_only)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    code, out = run("models", "list")
    assert "dtype auto on cpu: float32 (cpu lacks native bfloat16: float32)" in out
    # torch read its thread count when it was imported, before this test set the
    # variable, so only the reason is certain here.
    assert "(OMP_NUM_THREADS=1 set by the user)" in out


def test_help_teaches_the_main_commands() -> None:
    code, out = run("--help")
    assert code == 0 and "promptopt search --task gsm8k" in out and "Exit codes" in out
    code, out = run("eval", "--help")
    assert code == 0 and "--min-score" in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["search", "--task", "gsm8kk"], 2, "did you mean 'gsm8k'"),
        (["search", "--task", "antonyms", "--strategy", "apee"], 2, "did you mean 'ape'"),
        (["search", "--task", "antonyms", "-p", "num_subsample=2"], 2, "num_subsamples"),
        (["search", "--task", "antonyms", "-p", "oops"], 2, "key=value"),
        (["search", "--task", "antonyms", "--model", "gpt"], 2, "cannot read model 'gpt'"),
        (["search", "--task", "missing.yaml"], 2, "missing.yaml"),
        (["search"], 2, "no task given"),
        (["search", "--resume", "/nonexistent/run"], 2, "not a promptopt run directory"),
        (["eval", "--prompt", "/nonexistent.json"], 2, "prompt file not found"),
    ],
)
def test_user_errors_are_one_line_with_exit_codes(args: list[str], code: int, message: str) -> None:
    got_code, out = run(*args)
    assert got_code == code, out
    assert message in out
    assert "Traceback" not in out


def test_malformed_files(tmp_path: Path) -> None:
    bad_task = tmp_path / "bad.yaml"
    bad_task.write_text("name: [unclosed\n")
    code, out = run("search", "--task", str(bad_task))
    assert code == 2 and "bad.yaml" in out and "Traceback" not in out

    not_json = tmp_path / "p.json"
    not_json.write_text("{nope")
    code, out = run("eval", "--prompt", str(not_json))
    assert code == 2 and "not valid JSON" in out

    other_json = tmp_path / "q.json"
    other_json.write_text(json.dumps({"hello": 1}))
    code, out = run("eval", "--prompt", str(other_json))
    assert code == 2 and "not a promptopt prompt export" in out


def test_data_file_with_missing_field(tmp_path: Path) -> None:
    data = tmp_path / "qa.jsonl"
    data.write_text('{"q": "1+1", "a": "2"}\n{"q": "2+2", "a": "4"}\n')
    code, out = run("search", "--data", str(data), "--input-field", "question")
    assert code == 3 and "question" in out and "Traceback" not in out


def test_missing_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROMPTOPT_DATA_DIR", str(tmp_path / "nowhere"))
    code, out = run("search", "--task", "gsm8k")
    assert code == 3 and "PROMPTOPT_DATA_DIR" in out


def test_unreachable_server_is_a_model_error() -> None:
    code, out = run(
        "search",
        "--task",
        "antonyms",
        "--model",
        "openai:smol",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--dev-size",
        "2",
        "--test-size",
        "2",
        "-p",
        "num_subsamples=1",
        "-p",
        "proposals_per_subsample=1",
    )
    assert code == 4 and "127.0.0.1:9" in out and "Traceback" not in out


# --------------------------------------------------------------------------- silent nonsense
# Each bad input is refused in one line, naming the problem and the fix, with the
# usage/config exit code, before any model is loaded (issue 14, items 1 and 6).


def one_line_error(out: str) -> str:
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert lines[0].startswith("error: ") and "Traceback" not in out
    return lines[0]


SMALL = ["--task", "antonyms", "--dev-size", "2", "--test-size", "2"]


@pytest.mark.parametrize(
    ("args", "problem", "fix"),
    [
        (["-p", "halving_start=0"], "halving_start must be at least 1, got 0", "halving_start=4"),
        (
            ["-p", "proposal_temperature=-1"],
            "proposal_temperature must be at least 0, got -1.0",
            "-p proposal_temperature=0.9",
        ),
        (
            ["-p", "proposal_temperature=nan"],
            "proposal_temperature must be a finite number, got 'nan'",
            "-p proposal_temperature=0.9",
        ),
        (["-p", "ucb_c=-1"], "ucb_c must be at least 0, got -1.0", "-p ucb_c=1.0"),
        (["-p", "ucb_c=inf"], "ucb_c must be a finite number, got 'inf'", "-p ucb_c=1.0"),
        (["-p", "halving_eta=1"], "halving_eta must be at least 2, got 1", "-p halving_eta=2"),
        (
            ["--strategy", "boosted", "-p", "confidence_floor=1.5"],
            "confidence_floor must be between 0 and 1, got 1.5",
            "-p confidence_floor=0.5",
        ),
        (
            ["--strategy", "reflexion", "-p", "max_trials=0"],
            "max_trials must be at least 1, got 0",
            "-p max_trials=8",
        ),
        (
            ["--strategy", "rlprompt", "-p", "learning_rate=-0.1"],
            "learning_rate must be above 0, got -0.1",
            "-p learning_rate=0.001",
        ),
        (
            ["--strategy", "instructzero", "-p", "dev_subset=0"],
            "dev_subset must be at least 1, got 0",
            "-p dev_subset=20",
        ),
        (["--budget", "-5"], "--budget must be at least 1 model call, got -5", "leave it out"),
        (["--budget", "0"], "--budget must be at least 1 model call, got 0", "--budget 200"),
        (
            ["--budget-tokens", "-1"],
            "--budget-tokens must be at least 1 token, got -1",
            "leave it out for no cap",
        ),
        (["--test-size", "0"], "--test-size must be at least 1, got 0", "--test-size 20"),
        (["--dev-size", "0"], "--dev-size must be at least 1, got 0", "--dev-size 20"),
        (["--train-size", "0"], "--train-size must be at least 1, got 0", "--train-size 20"),
        (
            ["--model-option", "api=chat"],
            "model backend 'hf' has no option 'api'",
            "its options are dtype, device, batch_size",
        ),
        (["--model-option", "batch_size=x"], "'x' is not of type int", "batch_size=<int>"),
    ],
)
@pytest.mark.parametrize("dry_run", [False, True])
def test_bad_knobs_budgets_and_sizes_are_refused_before_any_model_loads(
    args: list[str], problem: str, fix: str, dry_run: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    forbid_model_loading(monkeypatch)
    code, out = run("search", *SMALL, *args, *(["--dry-run"] if dry_run else []))
    line = one_line_error(out)
    assert code == 2 and problem in line and fix in line


def test_a_task_whose_test_split_is_empty_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Test drops every input also in train or dev, so a task whose test file is its
    training file has no test examples: it reported 0.000 vs 0.000 (n=0), exit 0."""
    forbid_model_loading(monkeypatch)
    rows = [{"input": f"w{i}", "target": f"t{i}"} for i in range(12)]
    (tmp_path / "same.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = tmp_path / "same.yaml"
    task.write_text(
        "name: same\nsource: {kind: jsonl, train: same.jsonl, test: same.jsonl}\n"
        'template: "Input: {input}\\nOutput:"\nbaseline_instruction: Copy.\n'
    )
    for extra in ([], ["--dry-run"]):
        code, out = run("search", "--task", str(task), *extra)
        line = one_line_error(out)
        assert code == 2 and "task 'same' has no test examples" in line
        assert "held-out test file with other inputs" in line


def big_data(tmp_path: Path, chars: int = 300_000) -> Path:
    """A data file whose 4th line (id big-4) is far over the embedded model's 8192-token window."""
    rows = [{"input": f"word{i}", "output": f"out{i}"} for i in range(30)]
    rows[3]["input"] = "many words " * (chars // 11)
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_an_example_over_the_context_window_is_refused_before_the_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forbid_model_loading(monkeypatch)
    code, out = run("search", "--data", str(big_data(tmp_path)), "--run-dir", str(tmp_path / "r"))
    line = one_line_error(out)
    assert code == 2 and "example 'big-4'" in line
    assert "SmolLM2-135M-Instruct's context window of 8192 tokens" in line
    assert "shorten or remove that example in the data, or use a model" in line
    assert not (tmp_path / "r").exists()


def test_the_dry_run_warns_about_an_example_over_the_context_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forbid_model_loading(monkeypatch)
    code, out = run("search", "--data", str(big_data(tmp_path, 60_000)), "--dry-run")
    warnings = [line for line in out.splitlines() if line.strip().startswith("warning:")]
    assert code == 0 and len(warnings) == 1, out
    assert "1 example(s) make a prompt longer than SmolLM2-135M-Instruct's context" in warnings[0]
    assert "'big-4'" in warnings[0] and "the real search would refuse to start" in warnings[0]


def hand_export(tmp_path: Path, data: Path) -> Path:
    """A prompt export over a data file, as `promptopt search --data` writes it."""
    path = tmp_path / "best.json"
    body = {
        "format": "promptopt.prompt",
        "format_version": 1,
        "prompt": {"instruction": "Copy.", "template": "Input: {input}\nOutput:"},
        "task": {
            "name": data.stem,
            "ref": str(data),
            "sizes": {"train": 10, "dev": 4, "test": 16},
            "data_seed": 0,
            "data_file": {
                "path": str(data),
                "input_field": "input",
                "target_field": "output",
                "metric": "exact",
            },
        },
        "scores": {"test": {"score": 1.0, "n": 16}},
        "models": {"target": {"spec": {"backend": "hf", "model": "embedded"}}},
    }
    path.write_text(json.dumps(body))
    return path


def test_eval_refuses_no_test_examples_and_oversized_ones_before_the_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("promptopt.run.eval_run.build_llm", forbid)
    export = hand_export(tmp_path, big_data(tmp_path))
    code, out = run("eval", "--prompt", str(export), "--test-size", "0")
    line = one_line_error(out)
    assert code == 2 and "--test-size must be at least 1, got 0" in line
    assert "--test-size 20" in line

    code, out = run("eval", "--prompt", str(export), "--test-size", "30")
    line = one_line_error(out)
    assert code == 2 and "example 'big-4' (test split)" in line
    assert "with the exported prompt" in line
    assert "context window of 8192 tokens" in line


def forbid(spec: object) -> None:
    raise AssertionError(f"a model was loaded: {spec}")


def test_compare_checks_every_strategy_and_the_data_before_the_first_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad parameter of the second strategy failed only after the first had run."""
    forbid_model_loading(monkeypatch)
    base = ["compare", *SMALL, "--out-dir", str(tmp_path / "cmp"), "--seeds", "1"]
    cases = [
        (["--strategies", "reflexion,ape", "-p", "ape.halving_start=0"], "halving_start"),
        (["--budget", "-1"], "--budget must be at least 1 model call, got -1"),
        (["--dev-size", "0"], "--dev-size must be at least 1, got 0"),
    ]
    for args, problem in cases:
        code, out = run(*base, *args)
        assert code == 2 and problem in one_line_error(out)
    assert not (tmp_path / "cmp" / "runs").exists()
