"""A scripted stand-in model for unit tests of logic (never for integration tests)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from promptopt.core.domain import Completion, GenerationRequest, LogprobRequest


def last_user_text(request: GenerationRequest | LogprobRequest) -> str:
    if request.text is not None:
        return request.text
    return request.messages[-1].content


class ScriptedLLM:
    """Answers with `reply(request, sample_index)`; counts every call it serves."""

    kind = "fake"
    supports_embeddings_input = False

    def __init__(
        self,
        reply: Callable[[GenerationRequest, int], str],
        logprob: Callable[[LogprobRequest, str], float] | None = None,
        model_id: str = "scripted",
    ) -> None:
        self.reply = reply
        self.logprob = logprob
        self.model_id = model_id
        self.supports_logprobs = logprob is not None
        self.generate_calls = 0
        self.logprob_calls = 0
        self.batches: list[int] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        self.batches.append(len(requests))
        out = []
        for req in requests:
            self.generate_calls += req.n
            texts = [self.reply(req, i) for i in range(req.n)]
            out.append(
                Completion(
                    texts=texts,
                    prompt_tokens=len(last_user_text(req).split()) * req.n,
                    completion_tokens=sum(len(t.split()) for t in texts),
                )
            )
        return out

    def logprobs(self, requests: Sequence[LogprobRequest]) -> list[list[float]]:
        assert self.logprob is not None
        self.logprob_calls += len(requests)
        return [[self.logprob(r, c) for c in r.continuations] for r in requests]
