from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from promptopt.core.domain import (
    Budget,
    Ensemble,
    Example,
    GenerationRequest,
    Prompt,
    Usage,
)
from promptopt.core.errors import BudgetExhausted, ConfigError
from promptopt.data.task import Task
from promptopt.evaluation.ensemble import ensemble_vote, evaluate_ensemble, plurality
from promptopt.evaluation.evaluator import Evaluator
from promptopt.llm.cache import CachedLLM
from promptopt.llm.cache_files import open_cache
from promptopt.llm.meter import MeteredLLM
from promptopt.run.choice import search_to_budget
from promptopt.run.export import FORMAT, Export, Score, Scores, TaskRecord, load_export
from promptopt.run.store import RunStore, read_events
from promptopt.strategies.base import SearchContext, build_config
from promptopt.strategies.boosting import Boosted, BoostedConfig
from promptopt.strategies.boosting_pool import (
    PoolStat,
    pool_stats,
    select_test_time,
    select_train_time,
)
from tests.fakes import ScriptedLLM, last_user_text

# --------------------------------------------------------------------------- the vote


def test_plurality_counts_votes_and_breaks_ties_by_first_vote() -> None:
    assert plurality(["7", "8", "8"]).answer == "8"
    tie = plurality(["8", "7", "7", "8"])
    assert tie.answer == "8" and tie.agreement == pytest.approx(0.5) and tie.first_index == 0
    assert plurality(["7", "8", "8", "7"]).answer == "7"


def test_plurality_merges_spellings_and_keeps_the_first() -> None:
    vote = plurality(["Positive", " positive ", "negative"])
    assert vote.answer == "Positive" and vote.agreement == pytest.approx(2 / 3)


def test_unparsable_answers_cast_no_vote_but_lower_agreement() -> None:
    vote = plurality(["", "5", "", ""])
    assert vote.answer == "5" and vote.agreement == pytest.approx(0.25) and vote.first_index == 1
    nothing = plurality(["", "  ", ""])
    assert nothing.answer == "" and nothing.agreement == 0.0 and nothing.first_index == -1


def test_weighted_vote() -> None:
    # Two light votes for 3 lose to one heavy vote for 4.
    vote = plurality(["3", "3", "4"], [0.2, 0.2, 0.9])
    assert vote.answer == "4" and vote.agreement == pytest.approx(0.9 / 1.3)
    # Equal weight sums tie exactly despite float arithmetic; the first vote wins.
    assert plurality(["3", "4", "4"], [0.3, 0.1, 0.2]).answer == "3"
    assert plurality(["4", "4", "3"], [0.1, 0.2, 0.3]).answer == "4"


def test_ensemble_vote_weights_members_only_under_the_weighted_rule() -> None:
    members = (Prompt("a", "{input}"), Prompt("b", "{input}"))
    answers = [["1", "1"], ["2", "2"]]
    plain = Ensemble(members, samples=2, temperature=0.5, weights=(1.0, 3.0))
    assert ensemble_vote(plain, answers).answer == "1"  # a tie, member 1 voted first
    weighted = Ensemble(members, "weighted", samples=2, temperature=0.5, weights=(1.0, 3.0))
    assert ensemble_vote(weighted, answers).answer == "2"


def test_ensemble_validates_itself() -> None:
    with pytest.raises(ValueError, match="temperature"):
        Ensemble((Prompt("a", "{input}"),), samples=3, temperature=0.0)
    with pytest.raises(ValueError, match="one weight per member"):
        Ensemble((Prompt("a", "{input}"),), weights=(1.0, 2.0))
    with pytest.raises(ValueError, match="vote"):
        Ensemble((Prompt("a", "{input}"),), vote="borda")


# --------------------------------------------------------------------------- hard examples


def stat(i: int, agreement: float, right: bool | None, right_sample: str | None = None):
    ex = Example(id=f"q{i}", input=f"question {i}", target="1", demo_output="gold reasoning")
    return PoolStat(ex, i, "9", agreement, right, "majority reasoning", right_sample)


def test_train_time_selection_order() -> None:
    stats = [
        stat(0, 1.0, True, "r0"),  # unanimous and right: never hard
        stat(1, 0.6, False, "r1"),  # wrong, a sample right: hard
        stat(2, 0.4, False, "r2"),  # wrong, a sample right, less agreement: first
        stat(3, 0.2, False, None),  # wrong, no right sample: gold fallback
        stat(4, 0.5, True, "r4"),  # right but unsure: last
        stat(5, 0.6, False, "r5"),  # ties with q1 on agreement: pool order decides
    ]
    picked = select_train_time(stats, shots=6)
    assert [(s.example.id, src) for s, src in picked] == [
        ("q2", "sample"),
        ("q1", "sample"),
        ("q5", "sample"),
        ("q3", "gold"),
        ("q4", "sample"),
    ]
    assert [s.example.id for s, _ in select_train_time(stats, shots=2)] == ["q2", "q1"]
    paper_only = select_train_time(stats, shots=6, gold_fallback=False)
    assert [s.example.id for s, _ in paper_only] == ["q2", "q1", "q5", "q4"]
    gold = select_train_time(stats, shots=6, demo_source="gold")
    assert [(s.example.id, src) for s, src in gold][:4] == [
        ("q3", "gold"),
        ("q2", "gold"),
        ("q1", "gold"),
        ("q5", "gold"),
    ]


def test_test_time_selection_uses_the_floor_and_never_unparsable() -> None:
    stats = [stat(0, 1.0, None), stat(1, 0.5, None), stat(2, 0.3, None), stat(3, 0.75, None)]
    stats.append(PoolStat(Example(id="q4", input="?", target=""), 4, "", 0.0, None, ""))
    stats.append(stat(5, 0.5, None))
    assert [s.example.id for s in select_test_time(stats, 3, floor=0.5)] == ["q1", "q5", "q3"]
    assert [s.example.id for s in select_test_time(stats, 9, floor=0.8)] == ["q0"]


# --------------------------------------------------------------------------- a scripted task

# q{i}: i % 3 == 0 easy (always right); 1 hard (two samples agree on a wrong answer, the
# third is right); 2 very hard (three different wrong answers). A prompt whose
# demonstrations are the model's own reasoning ("... makes ...") gets the hard ones right.
N = 14


def question(i: int) -> tuple[int, int]:
    return i, i + 2


def make_examples(prefix: str = "q", labels: bool = True) -> list[Example]:
    out = []
    for i in range(N):
        a, b = question(i)
        target = str(a + b) if labels else "0"
        out.append(
            Example(
                id=f"{prefix}{i}",
                input=f"What is {a} plus {b}?",
                target=target,
                demo_output=f"Add {a} and {b} to get {target}.\nThe answer is {target}."
                if labels
                else "no solution",
            )
        )
    return out


def make_task(labels: bool = True) -> Task:
    return Task.from_examples(
        "plus",
        train=make_examples("q", labels),
        dev=make_examples("d")[:4],
        test=make_examples("t"),
        scorer="numeric",
        template="Question: {input}\nAnswer:",
        instruction="Add the numbers.",
    )


def reply(request: GenerationRequest, sample: int) -> str:
    """Reads the whole conversation: demonstrations arrive as chat turns."""
    text = "\n".join(m.content for m in request.messages) or last_user_text(request)
    a, b = map(int, re.findall(r"What is (\d+) plus (\d+)\?", text)[-1])
    right = a + b
    kind = a % 3
    if kind == 0 or (kind == 1 and "makes" in text):
        answer = right
    elif kind == 1:
        answer = right if sample == 2 else right + 1
    else:
        answer = right + 10 + sample
    return f"{a} plus {b} makes {answer}.\nThe answer is {answer}."


def context(tmp_path: Path, budget: Budget | None = None, labels: bool = True, llm=None):
    usage = Usage()
    target = llm or ScriptedLLM(reply)
    task = make_task(labels)
    inner = target if isinstance(target, CachedLLM) else MeteredLLM(target, usage, budget)
    ctx = SearchContext(
        task=task,
        evaluator=Evaluator(inner, task),
        proposer=ScriptedLLM(lambda r, i: ""),
        seed=0,
        store=RunStore(tmp_path / "run", {"task": "plus"}),
    )
    return ctx, usage, target


SMALL = dict(num_prompts=3, samples_per_prompt=3, shots=2, pool_size=9)


def kind(example_id: str) -> int:
    return int(example_id[1:]) % 3


def test_pool_stats_on_scripted_samples(tmp_path: Path) -> None:
    ctx, _, target = context(tmp_path)
    pool = ctx.task.examples("train")[:6]
    prompt = ctx.task.baseline_prompt()
    samples = ctx.evaluator.sample_many([prompt], pool, n=3, temperature=0.5, seed=0)
    assert target.batches == [6] and target.generate_calls == 18
    answers = [{e.id: s for e, s in zip(pool, samples[0], strict=True)}]
    stats = {s.example.id: s for s in pool_stats(pool, answers, ctx.task.scorer.score)}
    easy, hard, very = stats["q0"], stats["q1"], stats["q2"]
    assert easy.right and easy.agreement == 1.0
    assert not hard.right and hard.agreement == pytest.approx(2 / 3)
    assert hard.right_sample is not None and "makes 4." in hard.right_sample
    assert not very.right and very.right_sample is None and very.agreement == pytest.approx(1 / 3)
    unlabelled = pool_stats(pool, answers)
    assert all(s.right is None for s in unlabelled)


def test_sample_many_goes_through_the_cache_and_meter(tmp_path: Path) -> None:
    usage = Usage()
    model = ScriptedLLM(reply)
    llm = CachedLLM(MeteredLLM(model, usage), open_cache(tmp_path / "cache"), usage)
    task = make_task()
    evaluator = Evaluator(llm, task)
    prompts = [task.baseline_prompt(), Prompt("Sum.", task.template)]
    pool = task.examples("train")[:3]
    first = evaluator.sample_many(prompts, pool, n=2, temperature=0.7, seed=5)
    assert len(first) == 2 and all(len(per) == 3 for per in first)
    assert all(len(s) == 2 for per in first for s in per)
    assert model.batches == [6] and usage.calls == 12
    again = evaluator.sample_many(prompts, pool, n=2, temperature=0.7, seed=5)
    assert again == first and usage.calls == 12 and usage.cache_hits == 12
    evaluator.sample_many(prompts, pool, n=2, temperature=0.7, seed=6)  # another seed: new
    assert usage.calls == 24
    greedy = evaluator.sample_many(prompts[:1], pool, n=1, temperature=0.0, seed=9)
    assert greedy[0][0][0][1] == "2"  # q0: 0 plus 2, easy
    evaluator.evaluate(prompts[0], pool)  # greedy evaluation shares those cache entries
    assert usage.calls == 27
    with pytest.raises(ValueError, match="temperature"):
        evaluator.sample_many(prompts, pool, n=2, temperature=0.0, seed=0)


def test_train_time_search_builds_an_ensemble_from_hard_questions(tmp_path: Path) -> None:
    ctx, usage, target = context(tmp_path)
    result = Boosted().search(ctx, BoostedConfig(**SMALL))
    ensemble = result.ensemble
    assert ensemble is not None and len(ensemble.members) == 3
    assert ensemble.samples == 3 and ensemble.temperature == 0.5 and ensemble.vote == "plurality"
    initial, second, third = ensemble.members
    assert all(d.demo_output.startswith("Add") for d in initial.demonstrations)  # gold solutions
    # Step 1: the hard questions (wrong vote, one right sample), shown with the right sample.
    assert [kind(d.id) for d in second.demonstrations] == [1, 1]
    for d in second.demonstrations:
        assert "makes" in d.demo_output and d.demo_output.endswith(f"The answer is {d.target}.")
    # Step 2: the second prompt fixed the hard ones; the very hard ones (no right sample)
    # come next, shown with the data's solution (gold fallback).
    assert [kind(d.id) for d in third.demonstrations] == [2, 2]
    assert all(d.demo_output.startswith("Add") for d in third.demonstrations)
    events = read_events(tmp_path / "run")
    pool = next(e for e in events if e["event"] == "boost_started")["pool"]
    first_hard = [i for i in pool if kind(i) == 1][:2]
    assert [d.id for d in second.demonstrations] == first_hard
    steps = [e for e in events if e["event"] == "boost_step"]
    assert [s["step"] for s in steps] == [1, 2]
    assert steps[1]["pool_vote_accuracy"] > steps[0]["pool_vote_accuracy"]
    # Only the newest member is sampled each step: 2 pool runs of 9 x 3.
    assert target.generate_calls == usage.calls == 2 * 9 * 3
    assert [c.dev_n for c in result.candidates] == [9, 9, 0]
    assert result.ensemble_score is not None and result.ensemble_score[1] == 9
    assert not result.stopped_by_budget


def test_test_time_search_reads_no_labels(tmp_path: Path) -> None:
    ctx, _, _ = context(tmp_path / "a")
    config = BoostedConfig(version="test", confidence_floor=0.5, **SMALL)
    result = Boosted().search(ctx, config)
    second = result.ensemble.members[1]
    # Lowest agreement above the floor: the hard ones (2/3 on a wrong answer), with
    # the majority answer as pseudo-label and its reasoning as the demonstration.
    assert [kind(d.id) for d in second.demonstrations] == [1, 1]
    for d in second.demonstrations:
        a, b = question(int(d.id[1:]))
        assert d.target == str(a + b + 1)
        assert d.demo_output == f"{a} plus {b} makes {a + b + 1}.\nThe answer is {a + b + 1}."
    # The same search on the same questions without labels builds the same prompts.
    unlabelled, _, _ = context(tmp_path / "b", labels=False)
    blind = Boosted().search(unlabelled, config)
    assert blind.ensemble.members[1:] == result.ensemble.members[1:]


def test_bagged_makes_no_pool_calls(tmp_path: Path) -> None:
    ctx, usage, _ = context(tmp_path)
    result = Boosted().search(ctx, BoostedConfig(version="bagged", **SMALL))
    assert len(result.ensemble.members) == 3 and usage.calls == 0
    ids = [d.id for m in result.ensemble.members for d in m.demonstrations]
    assert len(ids) == len(set(ids)) == 6


def test_weighted_vote_weights_each_member(tmp_path: Path) -> None:
    ctx, usage, _ = context(tmp_path)
    result = Boosted().search(ctx, BoostedConfig(vote="weighted", **SMALL))
    ensemble = result.ensemble
    assert ensemble.vote == "weighted" and len(ensemble.weights) == 3
    assert usage.calls == 3 * 9 * 3  # one more pool run, for the last member's weight
    assert all(0 < w < 1 for w in ensemble.weights)
    assert ensemble.weights[1] > ensemble.weights[0]  # the self-supervised prompt is right more


def test_budget_stop_keeps_the_ensemble_so_far(tmp_path: Path) -> None:
    ctx, usage, _ = context(tmp_path, budget=Budget(max_calls=30))
    result = search_to_budget(ctx, Boosted(), BoostedConfig(**SMALL))
    assert result.stopped_by_budget and usage.calls == 27
    assert len(result.ensemble.members) == 2  # the second was built; sampling it hit the cap
    assert "budget_exhausted" in [e["event"] for e in read_events(tmp_path / "run")]


def test_budget_too_small_for_anything_raises(tmp_path: Path) -> None:
    ctx, _, _ = context(tmp_path, budget=Budget(max_calls=10))
    with pytest.raises(BudgetExhausted):
        Boosted().search(ctx, BoostedConfig(**SMALL))


def test_resume_replays_the_journal(tmp_path: Path) -> None:
    """Interrupted at step 2, rerun on the same journal: step 1 is not sampled again."""

    class Interrupt(Exception):
        pass

    batches = {"n": 0}

    def flaky(request: GenerationRequest, sample: int) -> str:
        if batches["n"] >= 1:
            raise Interrupt
        return reply(request, sample)

    class Counting(ScriptedLLM):
        def generate(self, requests):  # type: ignore[no-untyped-def]
            out = super().generate(requests)
            batches["n"] += 1
            return out

    journal = open_cache(tmp_path / "journal")
    first_usage = Usage()
    first = CachedLLM(
        MeteredLLM(Counting(flaky), first_usage), journal, first_usage, replay_charges=True
    )
    ctx, _, _ = context(tmp_path / "first", llm=first)
    with pytest.raises(Interrupt):
        Boosted().search(ctx, BoostedConfig(**SMALL))

    resumed_usage = Usage()
    model = ScriptedLLM(reply)
    resumed = CachedLLM(
        MeteredLLM(model, resumed_usage), journal, resumed_usage, replay_charges=True
    )
    ctx, _, _ = context(tmp_path / "resumed", llm=resumed)
    result = Boosted().search(ctx, BoostedConfig(**SMALL))
    assert model.generate_calls == 27  # step 2 only
    assert resumed_usage.calls == 54  # charged as an uninterrupted run

    straight, _, _ = context(tmp_path / "straight")
    assert result.ensemble == Boosted().search(straight, BoostedConfig(**SMALL)).ensemble


def test_config_knobs_parse_and_reject() -> None:
    config = build_config(
        BoostedConfig, {"version": "test", "num_prompts": "4", "vote": "weighted"}
    )
    assert config.version == "test" and config.num_prompts == 4 and config.vote == "weighted"
    with pytest.raises(ConfigError, match="version must be"):
        build_config(BoostedConfig, {"version": "dev"})
    with pytest.raises(ConfigError, match="temperature"):
        build_config(BoostedConfig, {"temperature": "0"})
    with pytest.raises(ConfigError, match="did you mean 'shots'"):
        build_config(BoostedConfig, {"shot": "2"})


@pytest.mark.parametrize(
    ("knob", "value", "allowed"),
    [
        ("num_prompts", "0", "at least 1"),
        ("samples_per_prompt", "0", "at least 1"),
        ("shots", "-1", "at least 1"),
        ("pool_size", "0", "at least 1"),
        ("temperature", "-1", "at least 0"),
        ("confidence_floor", "1.5", "between 0 and 1"),
        ("confidence_floor", "-0.1", "between 0 and 1"),
    ],
)
def test_every_knob_is_range_checked(knob: str, value: str, allowed: str) -> None:
    with pytest.raises(ConfigError, match=f"{knob} must be {allowed}, got {value}"):
        build_config(BoostedConfig, {knob: value})


def test_greedy_answers_are_fine_with_one_sample_only() -> None:
    assert build_config(BoostedConfig, {"temperature": "0", "samples_per_prompt": "1"})
    with pytest.raises(ConfigError, match="or -p samples_per_prompt=1"):
        build_config(BoostedConfig, {"temperature": "0"})


# --------------------------------------------------------------------------- scoring, export


def test_evaluate_ensemble_scores_the_vote_and_each_member(tmp_path: Path) -> None:
    ctx, _, target = context(tmp_path)
    test = ctx.task.examples("test")[:6]  # t0..t5: kinds 0,1,2,0,1,2
    plain = ctx.task.baseline_prompt()
    helped = Prompt(
        "Add.",
        ctx.task.template,
        (Example(id="x", input="What is 9 plus 9?", target="18", demo_output="9 makes 18"),),
    )
    ensemble = Ensemble((plain, helped), samples=3, temperature=0.5)
    scored = evaluate_ensemble(ctx.evaluator, ensemble, test)
    assert target.batches == [12]
    assert scored.members[0].score == pytest.approx(2 / 6)  # only the easy ones
    assert scored.members[1].score == pytest.approx(4 / 6)
    assert scored.member_sample_accuracy[0] == pytest.approx((6 + 2) / 18)
    # Hard questions: 1 + 3 right votes beat 2 wrong. Very hard: three wrong answers
    # with two votes each, a tie the first vote's answer wins.
    assert scored.result.score == pytest.approx(4 / 6) and scored.result.n == 6
    very_hard = scored.result.results[2]
    assert very_hard.prediction == "16" and very_hard.score == 0.0
    assert very_hard.output == "2 plus 4 makes 16.\nThe answer is 16."
    data = scored.to_dict()
    assert [m["index"] for m in data["members"]] == [0, 1]


def test_ensemble_export_round_trips_and_old_exports_still_read(tmp_path: Path) -> None:
    members = (Prompt("a", "Q: {input}\nA:"), Prompt("b", "Q: {input}\nA:"))
    ensemble = Ensemble(members, "weighted", samples=2, temperature=0.5, weights=(0.4, 0.6))
    export = Export(
        ensemble=ensemble,
        scores=Scores(
            test=Score(0.7, 10),
            baseline_test=Score(0.4, 10),
            pool=Score(0.5, 8),
            members_test=[Score(0.6, 10), Score(0.5, 10)],
        ),
        task=TaskRecord(name="plus", ref="plus"),
        strategy={"name": "boosted", "config": {}},
        seed=0,
        run_dir="runs/x",
    ).to_dict()
    assert export["kind"] == "ensemble" and "prompt" not in export
    assert export["format"] == FORMAT and export["format_version"] == 1
    assert export["scores"]["members_test"][1]["score"] == 0.5
    path = tmp_path / "e.json"
    path.write_text(json.dumps(export))
    assert load_export(path).ensemble == ensemble

    old = tmp_path / "old.json"
    old.write_text(
        json.dumps({"format": FORMAT, "format_version": 1, "prompt": members[0].to_dict()})
    )
    assert load_export(old).kind == "prompt"
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"format": FORMAT, "format_version": 1, "kind": "tree"}))
    with pytest.raises(ConfigError, match='kind "tree"'):
        load_export(odd)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"format": FORMAT, "kind": "ensemble", "ensemble": {}}))
    with pytest.raises(ConfigError, match='ensemble must be an object with a "members" list'):
        load_export(broken)


def test_search_and_eval_of_an_ensemble_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_cache: Path
) -> None:
    """The CLI path on a scripted model: search exports an ensemble, eval re-scores it.

    Here any demonstration makes the model right, so the ensemble beats the starting
    prompt (no demonstrations) on dev and replaces it."""
    from promptopt.cli import app
    from promptopt.run import eval_run, search

    def demos_help(request: GenerationRequest, sample: int) -> str:
        if any(m.role == "assistant" for m in request.messages):
            a, b = map(int, re.findall(r"What is (\d+) plus (\d+)\?", last_user_text(request))[-1])
            return f"The answer is {a + b}."
        return reply(request, sample)

    model = ScriptedLLM(demos_help)
    monkeypatch.setattr(search, "build_llm", lambda spec: model)
    monkeypatch.setattr(eval_run, "build_llm", lambda spec: model)
    data = tmp_path / "plus.jsonl"
    rows = [{"input": f"What is {a} plus {a + 2}?", "output": str(2 * a + 2)} for a in range(30)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "ens.json"
    runner = CliRunner()
    args = ["search", "--data", str(data), "--metric", "numeric", "--strategy", "boosted"]
    args += ["--train-size", "20", "--test-size", "6", "--dev-size", "8", "--out", str(out)]
    args += ["--run-dir", str(tmp_path / "run"), "-p", "pool_size=6", "-p", "shots=2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Ensemble members" in result.output and "Test: ensemble" in result.output
    assert "Improved on the starting prompt" in result.output
    export = json.loads(out.read_text())
    assert export["improved"] is True
    members = export["ensemble"]["members"]
    assert export["kind"] == "ensemble" and members
    assert len(export["scores"]["members_test"]) == len(members)
    assert export["scores"]["baseline_test"]["n"] == 6

    report = runner.invoke(app, ["eval", "--prompt", str(out), "--json"])
    assert report.exit_code == 0, report.output
    data_out = json.loads(report.stdout)
    assert data_out["kind"] == "ensemble"
    assert data_out["score"] == pytest.approx(export["scores"]["test"]["score"])
    assert [m["score"] for m in data_out["members"]] == [
        m["score"] for m in export["scores"]["members_test"]
    ]
    assert data_out["usage"]["calls"] == 0  # the same samples, from the cache
    text = runner.invoke(app, ["eval", "--prompt", str(out)])
    assert "ensemble score" in text.output and "#1" in text.output

    shown = runner.invoke(app, ["strategies", "show", "boosted"])
    assert shown.exit_code == 0 and "confidence_floor" in shown.output


# --------------------------------------------------------------------------- the real model


@pytest.mark.integration
def test_boosted_search_and_eval_with_the_embedded_model(
    tmp_path: Path, data_dir: Path, isolated_cache: Path
) -> None:
    """A tiny boosted search on sst2 with the embedded model, then `eval` of its export.

    The budget pays for the start on dev (4), one pool run (4 questions x 2 samples)
    and the check of a 2-member ensemble on dev (2 x 2 x 4): the export is the
    ensemble if it beat the start there, else the start."""
    from promptopt.cli import app

    runner = CliRunner()
    out = tmp_path / "ensemble.json"
    params = ["num_prompts=2", "samples_per_prompt=2", "shots=2", "pool_size=4"]
    args = ["search", "--task", "sst2", "--strategy", "boosted", "--test-size", "4"]
    args += ["--dev-size", "4", "--budget", "28", "--out", str(out)]
    args += ["--run-dir", str(tmp_path / "run")]
    for p in params:
        args += ["-p", p]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    export = json.loads(out.read_text())
    assert export["usage"]["search"]["calls"] <= 28
    events = read_events(tmp_path / "run")
    kinds = [e["event"] for e in events]
    assert "boost_step" in kinds and "boost_member_added" in kinds and kinds[-1] == "finished"
    guard = next(e for e in events if e["event"] == "start_guard")
    assert "could be checked" not in guard["reason"]  # the check was paid for
    assert export["scores"]["test"]["n"] == 4
    assert 0.0 <= export["scores"]["test"]["score"] <= 1.0
    report = runner.invoke(app, ["eval", "--prompt", str(out), "--json"])
    assert report.exit_code == 0, report.output
    data = json.loads(report.stdout)
    assert data["n"] == 4
    assert data["score"] == pytest.approx(export["scores"]["test"]["score"])
    if export["improved"]:
        assert export["kind"] == "ensemble" and len(export["ensemble"]["members"]) == 2
        assert data["kind"] == "ensemble"
        assert [m["score"] for m in data["members"]] == [
            m["score"] for m in export["scores"]["members_test"]
        ]
    else:
        assert export["prompt"] == export["start"]["prompt"]


def test_a_call_budget_keeps_room_to_check_the_ensemble_on_dev(tmp_path: Path) -> None:
    """70 calls: one pool run (9 x 3) and a 2-member check on dev (2 x 3 x 4) fit, a
    second pool run and a 3-member check do not, so the ensemble stops at 2."""
    usage, budget = Usage(), Budget(max_calls=70)
    task = make_task()
    ctx = SearchContext(
        task=task,
        evaluator=Evaluator(MeteredLLM(ScriptedLLM(reply), usage, budget), task),
        proposer=ScriptedLLM(lambda r, i: ""),
        seed=0,
        store=RunStore(tmp_path / "run", {"task": "plus"}),
        usage=usage,
        budget=budget,
    )
    result = Boosted().search(ctx, BoostedConfig(**SMALL))
    assert result.ensemble is not None and len(result.ensemble.members) == 2
    assert budget.max_calls - usage.calls >= 2 * 3 * len(task.examples("dev"))
    stopped = [e for e in read_events(tmp_path / "run") if e["event"] == "boost_stopped"]
    assert stopped and stopped[0]["reason"] == "budget kept for the dev check"
