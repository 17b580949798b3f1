"""RLPrompt's policy: a frozen causal LM with a small trainable MLP before its head.

The MLP acts on the LM's last hidden state as a residual, h + MLP(h), with its
output layer initialized to zero: at the start the policy *is* the LM, and
training only moves it as far as the reward asks. Only the MLP has gradients,
so a training step costs a frozen forward pass plus a tiny backward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


class ResidualMLP(nn.Module):
    """h -> h + W2 relu(W1 h); W2 = 0 at init (exact identity)."""

    def __init__(self, hidden: int, inner: int = 2048) -> None:
        super().__init__()
        self.up = nn.Linear(hidden, inner)
        self.down = nn.Linear(inner, hidden)
        nn.init.zeros_(self.down.weight)
        nn.init.zeros_(self.down.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.down(torch.relu(self.up(h)))


@dataclass
class Rollout:
    tokens: torch.Tensor  # (batch, T) sampled prompt token ids
    log_probs: torch.Tensor  # (batch,) sum of log pi(a_t | s_t), differentiable in the MLP


class PromptPolicy(nn.Module):
    """Generates T-token prompts after a fixed prefix; trainable part is the MLP only."""

    def __init__(
        self,
        lm: nn.Module,
        prefix_ids: list[int],
        inner: int = 2048,
        banned_ids: list[int] | None = None,
    ) -> None:
        """`banned_ids`: tokens a prompt may not contain (special tokens, which
        decode to nothing and would leave an empty prompt)."""
        super().__init__()
        self.lm = lm
        for p in self.lm.parameters():
            p.requires_grad_(False)
        hidden = lm.get_input_embeddings().weight.shape[1]
        self.mlp = ResidualMLP(hidden, inner).to(torch.float32)
        self.register_buffer("prefix", torch.tensor(prefix_ids, dtype=torch.long))
        head = lm.get_output_embeddings()
        # float32 copies of the frozen head, made once (not per step)
        self.register_buffer("head_weight", head.weight.detach().float(), persistent=False)
        bias = getattr(head, "bias", None)
        self.register_buffer(
            "head_bias", bias.detach().float() if bias is not None else None, persistent=False
        )
        self.register_buffer(
            "banned",
            torch.tensor(sorted(set(banned_ids or [])), dtype=torch.long),
            persistent=False,
        )

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.mlp.parameters())

    def _hidden(self, ids: torch.Tensor) -> torch.Tensor:
        """Last-position hidden state (batch, hidden) of the frozen LM, float32."""
        with torch.no_grad():
            out = self.lm(input_ids=ids, output_hidden_states=True)
        return out.hidden_states[-1][:, -1, :].float()

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """Policy logits (batch, vocab) for the next token after `ids`."""
        h = self.mlp(self._hidden(ids))
        logits = nn.functional.linear(h, self.head_weight, self.head_bias)
        if len(self.banned):
            logits = logits.index_fill(1, self.banned, float("-inf"))
        return logits

    def sample(
        self, batch: int, length: int, top_k: int, generator: torch.Generator | None
    ) -> Rollout:
        """Sample `batch` prompts of `length` tokens with top-k sampling."""
        ids = self.prefix.unsqueeze(0).expand(batch, -1)
        chosen, log_probs = [], []
        for _ in range(length):
            logits = self.logits(ids)
            token, logp = _top_k_sample(logits, top_k, generator)
            chosen.append(token)
            log_probs.append(logp)
            ids = torch.cat([ids, token.unsqueeze(1)], dim=1)
        return Rollout(tokens=torch.stack(chosen, dim=1), log_probs=torch.stack(log_probs).sum(0))

    def log_prob(self, tokens: torch.Tensor, top_k: int) -> torch.Tensor:
        """Sum of log pi over a given token sequence (batch,), for re-scoring."""
        ids = self.prefix.unsqueeze(0).expand(tokens.shape[0], -1)
        total = torch.zeros(tokens.shape[0])
        for t in range(tokens.shape[1]):
            logp = torch.log_softmax(_keep_top_k(self.logits(ids), top_k), dim=-1)
            total = total + logp.gather(1, tokens[:, t : t + 1]).squeeze(1)
            ids = torch.cat([ids, tokens[:, t : t + 1]], dim=1)
        return total

    def greedy(self, length: int) -> torch.Tensor:
        """The policy's most likely prompt (1, length)."""
        ids = self.prefix.unsqueeze(0)
        with torch.no_grad():
            for _ in range(length):
                token = self.logits(ids).argmax(dim=-1, keepdim=True)
                ids = torch.cat([ids, token], dim=1)
        return ids[:, len(self.prefix) :]


def _keep_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    threshold = logits.topk(k, dim=-1).values[:, -1:]
    return logits.masked_fill(logits < threshold, float("-inf"))


def _top_k_sample(
    logits: torch.Tensor, k: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    logp = torch.log_softmax(_keep_top_k(logits, k), dim=-1)
    token = torch.multinomial(logp.detach().exp(), 1, generator=generator).squeeze(1)
    return token, logp.gather(1, token.unsqueeze(1)).squeeze(1)
