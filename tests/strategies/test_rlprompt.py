"""RLPrompt: reward, policy start, training step, and learning on a synthetic reward."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from promptopt.core.errors import ConfigError
from promptopt.strategies.rlprompt import (
    RLPromptConfig,
    label_gap,
    piecewise_reward,
    policy_gradient_step,
    stabilize,
)
from promptopt.strategies.rlprompt_policy import PromptPolicy


def tiny_lm(vocab: int = 16, seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab, n_positions=32, n_embd=32, n_layer=1, n_head=2)
    return GPT2LMHeadModel(config).eval()


def test_label_gap_and_piecewise_reward() -> None:
    right = label_gap([-0.1, -3.0], gold=0)
    wrong = label_gap([-3.0, -0.1], gold=0)
    assert 0 < right < 1 and -1 < wrong < 0 and right == pytest.approx(-wrong)
    assert piecewise_reward(right, 200.0, 180.0) == pytest.approx(200.0 * right)
    assert piecewise_reward(wrong, 200.0, 180.0) == pytest.approx(180.0 * wrong)
    assert label_gap([-1.0, -1.0, -5.0], gold=2) < 0


def test_stabilize_z_scores_per_input_then_rescales() -> None:
    # Input 0 pays 100x more than input 1; z-scoring per input equalizes them.
    rewards = torch.tensor([[100.0, 1.0], [0.0, 0.0], [200.0, 2.0]], dtype=torch.float64)
    out = stabilize(rewards)
    assert out.shape == (3,)
    assert out[2] > out[0] > out[1]
    assert float(out.mean()) == pytest.approx(0.0, abs=1e-9)
    assert torch.allclose(stabilize(rewards, scale=2.0, shift=1.0), 2.0 * out + 1.0)


def test_policy_starts_as_the_language_model() -> None:
    lm = tiny_lm()
    policy = PromptPolicy(lm, prefix_ids=[1, 2], inner=64)
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        expected = lm(input_ids=ids).logits[:, -1, :]
        got = policy.logits(ids)
    assert torch.allclose(got, expected, atol=1e-5)


def test_one_step_changes_only_the_mlp() -> None:
    lm = tiny_lm()
    policy = PromptPolicy(lm, prefix_ids=[1], inner=64)
    frozen = {k: v.clone() for k, v in lm.state_dict().items()}
    trainable = [p.clone() for p in policy.trainable_parameters()]
    optimizer = torch.optim.Adam(policy.trainable_parameters(), lr=1e-2)
    rollout = policy.sample(4, 3, top_k=0, generator=torch.Generator().manual_seed(0))
    rewards = torch.tensor([[1.0], [0.0], [2.0], [0.5]], dtype=torch.float64)
    policy_gradient_step(optimizer, rollout, rewards)
    assert all(torch.equal(v, lm.state_dict()[k]) for k, v in frozen.items())
    changed = [
        not torch.equal(a, b) for a, b in zip(trainable, policy.trainable_parameters(), strict=True)
    ]
    assert any(changed)


def test_learns_a_rewarded_token_sequence_far_above_chance() -> None:
    vocab, length = 16, 3
    target = torch.tensor([7, 3, 11])
    lm = tiny_lm(vocab)
    policy = PromptPolicy(lm, prefix_ids=[0], inner=64)
    optimizer = torch.optim.Adam(policy.trainable_parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    before = float(policy.log_prob(target[None], top_k=0).detach().exp())
    for _ in range(300):
        rollout = policy.sample(8, length, top_k=0, generator=generator)
        matches = (rollout.tokens == target).sum(dim=1).to(torch.float64)
        policy_gradient_step(optimizer, rollout, matches[:, None])
    after = float(policy.log_prob(target[None], top_k=0).detach().exp())
    chance = 1 / vocab**length
    assert before < 50 * chance
    assert after > 0.3, f"p(target) {after:.4f} (chance {chance:.5f})"
    assert policy.greedy(length).tolist() == [target.tolist()]


def test_config_validation() -> None:
    with pytest.raises(Exception, match="prompts_per_step"):
        RLPromptConfig(prompts_per_step=1)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"prompt_length": 0}, "prompt_length must be at least 1, got 0"),
        ({"steps": 0}, "steps must be at least 1, got 0"),
        ({"examples_per_step": 0}, "examples_per_step must be at least 1, got 0"),
        ({"mlp_hidden": 0}, "mlp_hidden must be at least 1, got 0"),
        ({"eval_every": 0}, "eval_every must be at least 1, got 0"),
        ({"checkpoint_every": 0}, "checkpoint_every must be at least 1, got 0"),
        ({"top_k": -1}, "top_k must be at least 0, got -1"),
        ({"top_sampled": -1}, "top_sampled must be at least 0, got -1"),
        ({"learning_rate": 0.0}, "learning_rate must be above 0, got 0.0"),
        ({"right_scale": -200.0}, "right_scale must be above 0, got -200.0"),
        ({"wrong_scale": 0.0}, "wrong_scale must be above 0, got 0.0"),
        ({"reward_scale": -1.0}, "reward_scale must be above 0, got -1.0"),
        ({"reward_shift": float("inf")}, "reward_shift must be a finite number, got inf"),
    ],
)
def test_every_knob_is_range_checked(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RLPromptConfig(**values)


def test_banned_tokens_are_never_sampled() -> None:
    policy = PromptPolicy(tiny_lm(), prefix_ids=[1], inner=64, banned_ids=list(range(8)))
    rollout = policy.sample(16, 4, top_k=0, generator=torch.Generator().manual_seed(0))
    assert int(rollout.tokens.min()) >= 8
    assert int(policy.greedy(4).min()) >= 8
