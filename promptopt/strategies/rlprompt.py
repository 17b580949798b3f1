"""RLPrompt (Deng et al. 2022, arXiv 2205.12548): a trained policy writes discrete prompts.

The policy (promptopt/strategies/rlprompt_policy.py) is the proposer LM, frozen, with a small
trainable MLP before its head; it samples T-token prompts with top-k. Each
step scores K sampled prompts on B train inputs with the target model through
the shared evaluator and updates the MLP.

Reward, as in the paper:
- classification: from the target's label-word log-probabilities, the gap
  between the gold label's probability and the strongest other label's,
  scaled by 200 when the prediction is right and 180 when wrong;
- other tasks: the task scorer.
Stabilization, as in the paper: z-score of the rewards per input across the
prompts sampled for it, then a fixed affine rescaling.

Training is on-policy policy gradient (REINFORCE with the z-scored reward as
advantage) rather than the paper's soft Q-learning: with the few hundred
rollouts a CPU affords, SQL's target network and replay add cost and tuning
while the z-scored per-input reward already supplies the variance reduction
SQL gets from its baseline. (Soft Q-learning is not implemented.)
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from promptopt.core.domain import Candidate, Example, Message, Prompt
from promptopt.core.errors import BudgetExhausted, ConfigError
from promptopt.strategies.base import (
    CallBound,
    SearchContext,
    SearchResult,
    check_range,
    knob,
    rank,
)
from promptopt.strategies.rlprompt_policy import PromptPolicy, Rollout

POLICY_PREFIX = "Write a short instruction for a classifier."


@dataclass
class RLPromptConfig:
    prompt_length: int = knob(5, "prompt tokens T (paper: 5 for classification)")
    steps: int = knob(30, "training steps")
    prompts_per_step: int = knob(8, "prompts sampled per step (K)")
    examples_per_step: int = knob(8, "train inputs each prompt is rewarded on (B)")
    top_k: int = knob(50, "top-k sampling of prompt tokens (0 = all tokens)")
    learning_rate: float = knob(1e-3, "Adam learning rate of the MLP")
    mlp_hidden: int = knob(2048, "hidden units of the MLP (paper: 2048)")
    right_scale: float = knob(200.0, "reward scale when the prediction is right (paper: 200)")
    wrong_scale: float = knob(180.0, "reward scale when the prediction is wrong (paper: 180)")
    reward_scale: float = knob(1.0, "affine rescaling after the z-score: scale")
    reward_shift: float = knob(0.0, "affine rescaling after the z-score: shift")
    eval_every: int = knob(10, "score the policy's greedy prompt on dev every N steps")
    top_sampled: int = knob(3, "best sampled prompts (by train reward) also scored on dev")
    checkpoint_every: int = knob(5, "save the policy to the run directory every N steps")

    def __post_init__(self) -> None:
        check_range(
            self,
            (
                "prompt_length",
                "steps",
                "examples_per_step",
                "mlp_hidden",
                "eval_every",
                "checkpoint_every",
            ),
            at_least=1,
        )
        check_range(self, "prompts_per_step", at_least=2)  # rewards are z-scored per input
        check_range(self, ("top_k", "top_sampled"), at_least=0)
        # A zero or negative scale zeroes or inverts the reward: training would
        # then push the policy away from the prompts that work.
        check_range(self, ("learning_rate", "right_scale", "wrong_scale", "reward_scale"), above=0)
        check_range(self, "reward_shift")  # any finite shift


# -- reward ---------------------------------------------------------------------------
def label_gap(label_logprobs: list[float], gold: int) -> float:
    """P(gold) - max P(other) over the label words (probabilities renormalized)."""
    probs = torch.softmax(torch.tensor(label_logprobs, dtype=torch.float64), dim=0)
    others = torch.cat([probs[:gold], probs[gold + 1 :]])
    return float(probs[gold] - others.max())


def piecewise_reward(gap: float, right_scale: float, wrong_scale: float) -> float:
    """The paper's reward: a positive gap (right) and a negative one (wrong) scale differently."""
    return (right_scale if gap > 0 else wrong_scale) * gap


def stabilize(rewards: torch.Tensor, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    """rewards (K prompts, B inputs) -> (K,): z-score per input, mean, affine rescale."""
    mean = rewards.mean(dim=0, keepdim=True)
    std = rewards.std(dim=0, unbiased=False, keepdim=True)
    z = (rewards - mean) / (std + 1e-6)
    return scale * z.mean(dim=1) + shift


def policy_gradient_step(
    optimizer: torch.optim.Optimizer,
    rollout: Rollout,
    raw_rewards: torch.Tensor,
    scale: float = 1.0,
    shift: float = 0.0,
) -> float:
    """One REINFORCE update with the stabilized reward as each prompt's advantage."""
    advantage = stabilize(raw_rewards, scale, shift).detach().float()
    loss = -(advantage * rollout.log_probs).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


# -- strategy -------------------------------------------------------------------------
class RLPrompt:
    name = "rlprompt"
    Config = RLPromptConfig

    def project(self, config: RLPromptConfig, dev_n: int) -> CallBound:
        """Training rewards, then the prompts checked on dev; the policy is trained on
        the real proposer, so the dry run cannot simulate it."""
        train_calls = config.steps * config.prompts_per_step * config.examples_per_step
        dev_prompts = config.steps // config.eval_every + 1 + config.top_sampled
        note = "classification tasks score rewards by log-probabilities (no completion tokens)"
        return CallBound(train_calls + dev_prompts * dev_n, 0, (note,))

    def search(self, ctx: SearchContext, config: RLPromptConfig) -> SearchResult:
        base = ctx.proposer_base
        if base is None or not hasattr(base, "model") or not hasattr(base, "tokenizer"):
            raise ConfigError(
                "rlprompt trains a policy on a local transformers model: use --proposer "
                "embedded or --proposer hf:<model> (the target may be any model)"
            )
        trainer = _Trainer(ctx, config, base)
        ctx.so_far = trainer.scored_so_far
        trainer.train()
        # A stop while the finalists are scored keeps `so_far`: what training scored
        # on dev, with the finalists the budget allowed.
        trainer.score_finalists()
        return SearchResult(candidates=trainer.candidates())


class _Trainer:
    def __init__(self, ctx: SearchContext, config: RLPromptConfig, base) -> None:  # type: ignore[no-untyped-def]
        self.ctx = ctx
        self.config = config
        self.tokenizer = base.tokenizer
        prefix_text = base.render((Message("user", POLICY_PREFIX),), None)
        prefix_ids = self.tokenizer(prefix_text, add_special_tokens=False)["input_ids"]
        with torch.random.fork_rng():  # seeded MLP init without touching global state
            torch.manual_seed(ctx.seed)
            self.policy = PromptPolicy(
                base.model, prefix_ids, config.mlp_hidden, self.tokenizer.all_special_ids
            )
        self.optimizer = torch.optim.Adam(self.policy.trainable_parameters(), config.learning_rate)
        self.generator = torch.Generator().manual_seed(ctx.seed)
        self.train_examples = ctx.task.examples("train")
        self.dev = ctx.task.examples("dev")
        self.classification = bool(ctx.task.label_words) and ctx.evaluator.llm.supports_logprobs
        self.step = 0
        self.sampled: dict[str, float] = {}  # prompt text -> best train reward seen
        self.dev_scores: dict[str, tuple[float, int, str]] = {}
        self.history: list[dict[str, Any]] = []
        """What training asked the target, in order: each step's sampled prompts (with
        its loss) and each dev scoring. Saved with the policy, so that a resume asks
        again (the run journal answers) instead of skipping those calls uncharged."""
        self.checkpoint = ctx.store.run_dir / "policy.pt"
        self.restored: dict[str, Any] | None = None
        if ctx.store.resumed and self.checkpoint.is_file():
            self.restored = _load_checkpoint(self.checkpoint)

    # -- training ------------------------------------------------------------------
    def train(self) -> None:
        c = self.config
        ctx = self.ctx
        ctx.reporter.phase("Training the prompt policy", total=c.steps)
        if self.restored is not None:
            self._restore(self.restored)
        while self.step < c.steps:
            batch = self.batch(self.step)
            rollout = self.policy.sample(
                c.prompts_per_step, c.prompt_length, c.top_k, self.generator
            )
            texts = [self.decode(row) for row in rollout.tokens]
            raw = self.rewards(texts, batch)  # (K, B)
            loss = policy_gradient_step(
                self.optimizer, rollout, raw, c.reward_scale, c.reward_shift
            )
            self.record_step(texts, raw, loss)
            if self.step % c.eval_every == 0:
                self.score_on_dev([self.greedy_prompt()], origin=f"greedy @ step {self.step}")
            if self.step % c.checkpoint_every == 0:
                self._save()
        self._save()

    def batch(self, step: int) -> list[Example]:
        """The train inputs of a step: seeded by the step, so a resume asks the same."""
        rng = self.ctx.rng(f"rlprompt-batch-{step}")
        count = min(self.config.examples_per_step, len(self.train_examples))
        return rng.sample(self.train_examples, count)

    def record_step(self, texts: list[str], raw: torch.Tensor, loss: float) -> None:
        """A finished step: its prompts' rewards, its event, its place in the history."""
        per_prompt = raw.mean(dim=1).tolist()
        for text, value in zip(texts, per_prompt, strict=True):
            self.sampled[text] = max(value, self.sampled.get(text, -math.inf))
        self.step += 1
        self.history.append({"texts": texts, "loss": loss})
        best = max(range(len(texts)), key=lambda k: per_prompt[k])
        self.ctx.store.event(
            "rl_step",
            step=self.step,
            mean_reward=float(raw.mean()),
            best_prompt=texts[best],
            best_reward=per_prompt[best],
            loss=loss,
        )
        self.ctx.reporter.advance(1)

    def rewards(self, texts: list[str], batch: list[Example]) -> torch.Tensor:
        prompts = [Prompt(instruction=t, template=self.ctx.task.template) for t in texts]
        if self.classification:
            words = [w.lower() for w in self.ctx.task.label_words or ()]
            values = self.ctx.evaluator.label_logprobs(prompts, batch)
            rows = []
            for per_example in values:
                row = []
                for ex, label_logprobs in zip(batch, per_example, strict=True):
                    gap = label_gap(label_logprobs, words.index(ex.target.lower()))
                    row.append(
                        piecewise_reward(gap, self.config.right_scale, self.config.wrong_scale)
                    )
                rows.append(row)
            return torch.tensor(rows, dtype=torch.float64)
        results = self.ctx.evaluator.evaluate_many(prompts, batch)
        return torch.tensor(
            [[r.score for r in res.results] for res in results], dtype=torch.float64
        )

    # -- prompts and candidates -------------------------------------------------------
    def decode(self, tokens: torch.Tensor) -> str:
        return self.tokenizer.decode(tokens.tolist(), skip_special_tokens=True).strip()

    def greedy_prompt(self) -> str:
        return self.decode(self.policy.greedy(self.config.prompt_length)[0])

    def score_on_dev(self, texts: list[str], origin: str) -> None:
        fresh = [t for t in dict.fromkeys(texts) if t not in self.dev_scores]
        if not fresh:
            return
        prompts = [Prompt(instruction=t, template=self.ctx.task.template) for t in fresh]
        results = self.ctx.evaluator.evaluate_many(prompts, self.dev)
        self.history.append({"dev": fresh, "origin": origin})
        for text, result in zip(fresh, results, strict=True):
            self.dev_scores[text] = (result.score, result.n, origin)
            self.ctx.store.event("dev_scored", prompt=text, score=result.score, origin=origin)
            self.ctx.record_candidate(text, result.score, result.n, origin)

    def scored_so_far(self) -> SearchResult | None:
        """The result at the budget's end: the finalists scored as far as it allows."""
        with contextlib.suppress(BudgetExhausted):  # scores what the rest of the budget allows
            self.score_finalists()
        return SearchResult(self.candidates()) if self.dev_scores else None

    def score_finalists(self) -> None:
        """The final greedy prompt and the best sampled prompts, on dev."""
        self.score_on_dev([self.greedy_prompt()], origin="greedy, final")
        top = sorted(self.sampled, key=self.sampled.get, reverse=True)  # type: ignore[arg-type]
        self.score_on_dev(top[: self.config.top_sampled], origin="sampled, best train reward")

    def candidates(self) -> list[Candidate]:
        return rank(
            [
                Candidate(
                    prompt=Prompt(instruction=text, template=self.ctx.task.template),
                    dev_score=score,
                    dev_n=n,
                    origin=origin,
                )
                for text, (score, n, origin) in self.dev_scores.items()
            ]
        )

    # -- checkpoints -----------------------------------------------------------------
    def _save(self) -> None:
        state = {
            "step": self.step,
            "mlp": self.policy.mlp.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "sampled": self.sampled,
            "dev_scores": self.dev_scores,
            "history": self.history,
        }
        _atomic_torch_save(state, self.checkpoint)

    def _restore(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint without training again up to it.

        The target calls the steps before it made are asked again, in order, without
        sampling or updating the policy: the run journal answers them and charges
        each as the interrupted run was charged, so usage and the budget go on from
        where an uninterrupted run would be (skipping them left those calls out of
        the totals), and their events, already in the log, are not written again.
        A checkpoint from before the history was saved restores its state alone.
        """
        for entry in state.get("history", []):
            if "dev" in entry:
                self.score_on_dev(entry["dev"], entry["origin"])
            else:
                raw = self.rewards(entry["texts"], self.batch(self.step))
                self.record_step(entry["texts"], raw, entry["loss"])
        if "history" not in state:
            self.sampled, self.dev_scores = state["sampled"], state["dev_scores"]
            self.ctx.reporter.advance(state["step"])
        self.step = state["step"]
        self.policy.mlp.load_state_dict(state["mlp"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.restored = None
        self.ctx.store.event("policy_restored", step=self.step)


def _load_checkpoint(path: Path) -> dict[str, Any]:
    """A saved policy; a damaged one (a half-copied run directory: it is written
    atomically) is one line with the fix, as a corrupt journal is."""
    try:
        state = torch.load(path, weights_only=False)
    except Exception:  # torch raises pickle, zip and runtime errors alike
        state = None
    if not isinstance(state, dict) or "step" not in state:
        raise ConfigError(
            f"the policy checkpoint {path} is corrupt or truncated: delete it and resume "
            "(training starts again from step 0; the run journal answers the calls made)"
        )
    return state


def _atomic_torch_save(state: dict, path: Path) -> None:  # type: ignore[type-arg]
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    torch.save(state, tmp)
    os.replace(tmp, path)
