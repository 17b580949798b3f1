"""Local causal LMs through transformers: batched, seeded, with log-probabilities.

On a CPU, batching is the lever (batch 32 is ~10x one-at-a-time), so requests
are grouped by sampling settings, sorted by length to limit padding, and decoded
`batch_size` rows at a time with continuous batching (`promptopt.llm.decoding`):
a row that hits EOS, a stop string or its `max_tokens` leaves, the next prompt
takes its place, and a request's `n` samples share one prefill of its prompt.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedTokenizerBase,
    StoppingCriteriaList,
    StopStringCriteria,
)

from promptopt.core.domain import Completion, GenerationRequest, LogprobRequest, Message
from promptopt.core.errors import ConfigError, ModelError, PromptoptError
from promptopt.llm.base import model_scope
from promptopt.llm.continuation_scores import score_continuations
from promptopt.llm.decoding import Prefilled, RowQueue, decode_continuously
from promptopt.llm.dtype_choice import AUTO, DtypeChoice, check_dtype_name, resolve_dtype
from promptopt.llm.gguf_convert import converted_copy_dir, ensure_converted
from promptopt.llm.load_progress import loading_phase
from promptopt.llm.models import EMBEDDED_MODEL_NAME, embedded_gguf_path
from promptopt.llm.prefill import cache_argument, prefill_prompts, prefill_rows
from promptopt.llm.threads import ThreadChoice, configure_torch_threads

EMBEDDED = "embedded"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

log = logging.getLogger(__name__)

ProgressFn = Callable[[int], None]


def resolve_model_source(model: str) -> tuple[str, str]:
    """(model_id used in cache keys, folder or hub id to load from)."""
    if model == EMBEDDED:
        return EMBEDDED_MODEL_NAME, str(ensure_converted(embedded_gguf_path()))
    path = Path(model).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ConfigError(f"GGUF file not found: {path}: check the path")
        return path.name, str(ensure_converted(path.resolve()))
    if path.is_dir():
        return path.resolve().name, str(path.resolve())
    if model.startswith((".", "/", "~")):
        raise ConfigError(f"model folder not found: {model}: check the path")
    return model, model


def render_prompt(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message] | None, text: str | None
) -> str:
    """Chat messages through the model's chat template; raw text unchanged."""
    if text is not None:
        return text
    assert messages
    chat = [{"role": m.role, "content": m.content} for m in messages]
    if tokenizer.chat_template is None:
        return "\n\n".join(m.content for m in messages) + "\n"
    return str(tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True))


def local_tokenizer(model: str) -> PreTrainedTokenizerBase | None:
    """The tokenizer of an hf model if it is already on this machine, else None.

    For projections (`search --dry-run`) that must not convert a GGUF file,
    download from the hub or load weights, yet should count prompt tokens the
    way the real model will.
    """
    if model == EMBEDDED:
        try:
            source: str | Path = converted_copy_dir(embedded_gguf_path())
        except PromptoptError:  # the embedded model's package is not installed
            return None
    elif model.endswith(".gguf"):
        gguf = Path(model).expanduser()
        source = converted_copy_dir(gguf.resolve()) if gguf.is_file() else Path("/nonexistent")
    else:
        source = model
    if isinstance(source, Path) and not (source / "config.json").is_file():
        return None
    try:
        return AutoTokenizer.from_pretrained(str(source), local_files_only=True)
    except (OSError, ValueError):
        return None


class HFLLM:
    """A transformers causal LM on this machine (default: the embedded SmolLM2)."""

    kind = "hf"
    supports_logprobs = True
    supports_embeddings_input = True

    def __init__(
        self,
        model: str = EMBEDDED,
        *,
        device: str = "cpu",
        dtype: str = AUTO,
        batch_size: int = 16,
    ) -> None:
        check_dtype_name(dtype)  # before a GGUF conversion, not after
        self.model_id, source = resolve_model_source(model)
        self.device = device
        # Threads first: an `auto` dtype that must be measured is measured with them.
        self.threads: ThreadChoice | None = (
            configure_torch_threads() if device.startswith("cpu") else None
        )
        self.dtype_choice: DtypeChoice = resolve_dtype(dtype, device)
        self.dtype = DTYPES[self.dtype_choice.dtype]
        self.cache_scope = model_scope(dtype=self.dtype_choice.dtype)
        self.batch_size = batch_size
        try:
            with loading_phase(f"loaded {self.model_id} ({self.dtype_choice.dtype})"):
                self.tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(source)
                self.model = AutoModelForCausalLM.from_pretrained(source, dtype=self.dtype)
        except OSError as exc:
            raise ModelError(
                f"cannot load model '{model}' ({str(exc).splitlines()[0]}): "
                "pass a local folder or .gguf file, or go online to download it"
            ) from exc
        log.debug("%s: %s", self.model_id, self.describe_runtime())
        self.model.to(device).eval()
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def describe_runtime(self) -> str:
        """The dtype and threads this model computes with, and why (for -v and listings)."""
        text = f"dtype {self.dtype_choice.dtype} ({self.dtype_choice.reason})"
        if self.threads is not None:
            text += f", {self.threads.describe()}"
        return text

    # -- prompts -----------------------------------------------------------------
    def render(self, messages: Sequence[Message] | None, text: str | None) -> str:
        return render_prompt(self.tokenizer, messages, text)

    # -- generation --------------------------------------------------------------
    def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressFn | None = None
    ) -> list[Completion]:
        results: list[Completion | None] = [None] * len(requests)
        groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        for i, req in enumerate(requests):
            groups[(req.max_tokens, req.temperature, req.top_p, req.stop, req.n)].append(i)
        for (max_tokens, temperature, top_p, stop, n), indices in groups.items():
            prompts = {i: self.render(requests[i].messages, requests[i].text) for i in indices}
            # In text order: prompts that share an instruction and demonstrations are
            # neighbours, so they are let in together and share their prefill.
            ordered = sorted(indices, key=lambda i: prompts[i])
            outputs = self._generate_group(
                [prompts[i] for i in ordered],
                [requests[i].seed for i in ordered],
                max_tokens,
                temperature,
                top_p,
                stop,
                n,
                progress,
            )
            for i, completion in zip(ordered, outputs, strict=True):
                results[i] = completion
        return [r for r in results if r is not None]

    @torch.inference_mode()
    def _generate_group(
        self,
        prompts: list[str],
        seeds: list[int],
        max_tokens: int,
        temperature: float,
        top_p: float,
        stop: tuple[str, ...],
        n: int,
        progress: ProgressFn | None,
    ) -> list[Completion]:
        """Prompts of one sampling setting, `n` samples each, decoded with
        continuous batching (`promptopt.llm.decoding`): `batch_size` rows at once,
        a finished row's place taken by the next prompt (longest prompts first)."""
        tok = self.tokenizer
        tok.padding_side = "left"
        sampling = temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_tokens,
            "do_sample": sampling,
            "pad_token_id": tok.pad_token_id,
        }
        if sampling:
            kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        criteria = StoppingCriteriaList()
        if stop:
            # The criterion `stop_strings=` builds, passed ready-made: generate drops
            # its `tokenizer` argument when the loop is a callable.
            criteria.append(StopStringCriteria(tokenizer=tok, stop_strings=list(stop)))
        ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        prompt_tokens = [len(row) for row in ids]

        def generate(input_ids: torch.Tensor, mask: torch.Tensor, cache: Any) -> Prefilled:
            extra = {cache_argument(self.model): cache} if cache is not None else {}
            return cast(
                Prefilled,
                self.model.generate(
                    input_ids=input_ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    **extra,
                    **kwargs,
                    stopping_criteria=criteria,
                    samples=n,
                    custom_generate=prefill_rows,
                ),
            )

        def prefill(positions: list[int]) -> tuple[list[int], Prefilled]:
            order, state = prefill_prompts(
                self.model, [ids[p] for p in positions], tok.pad_token_id, generate
            )
            return [positions[i] for i in order], state

        rows = decode_continuously(
            RowQueue(len(prompts), n, prefill),
            capacity=max(self.batch_size, n),
            max_tokens=max_tokens,
            pad_token_id=tok.pad_token_id,
            row_seeds=[
                _row_seed(seed, prompt, sample)
                for seed, prompt in zip(seeds, prompts, strict=True)
                for sample in range(n)
            ],
            on_finished=(lambda _prompt: progress(1)) if progress else None,
        )
        eos = self._eos_ids()
        completions = []
        for p in range(len(prompts)):
            texts, generated = [], 0
            for sample in range(n):
                kept = _strip_after_eos(rows[p * n + sample], eos)
                generated += len(kept)
                texts.append(truncate_at_stop(tok.decode(kept, skip_special_tokens=True), stop))
            completions.append(
                Completion(
                    texts=texts, prompt_tokens=prompt_tokens[p] * n, completion_tokens=generated
                )
            )
        return completions

    def _eos_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        gen_eos = self.model.generation_config.eos_token_id
        if isinstance(gen_eos, int):
            ids.add(gen_eos)
        elif gen_eos:
            ids.update(gen_eos)
        return {i for i in ids if i is not None}

    # -- soft prompts ---------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return int(self.model.get_input_embeddings().weight.shape[1])

    def embedding_std(self) -> float:
        """Spread of the input embeddings, to scale soft prompts to a natural size."""
        return float(self.model.get_input_embeddings().weight.detach().float().std())

    def soft_prompt_inputs(
        self, soft_prompts: torch.Tensor, text: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prepend soft-prompt vectors to the embeddings of `text`.

        soft_prompts: (batch, n_tokens, hidden) in any float dtype.
        Returns inputs_embeds (batch, n_tokens + T, hidden) in the model's dtype
        and an all-ones attention mask (batch, n_tokens + T).
        """
        if soft_prompts.dim() != 3 or soft_prompts.shape[2] != self.hidden_size:
            raise ValueError(
                f"soft prompts must be (batch, n_tokens, {self.hidden_size}), "
                f"got {tuple(soft_prompts.shape)}"
            )
        ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        ids = ids.to(self.device)
        embed = self.model.get_input_embeddings()
        batch = soft_prompts.shape[0]
        text_embeds = embed(ids).expand(batch, -1, -1)
        soft = soft_prompts.to(device=self.device, dtype=text_embeds.dtype)
        inputs = torch.cat([soft, text_embeds], dim=1)
        mask = torch.ones(inputs.shape[:2], dtype=torch.long, device=self.device)
        return inputs, mask

    @torch.inference_mode()
    def generate_from_soft_prompts(
        self,
        soft_prompts: torch.Tensor,
        text: str,
        *,
        max_tokens: int = 48,
        stop: tuple[str, ...] = ("\n",),
    ) -> Completion:
        """Greedy continuation of `text` after each soft prompt (one text per row)."""
        inputs, mask = self.soft_prompt_inputs(soft_prompts, text)
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_tokens,
            "do_sample": False,
            "temperature": None,
            "top_p": None,
            "top_k": None,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if stop:
            kwargs.update(stop_strings=list(stop), tokenizer=self.tokenizer)
        out = self.model.generate(inputs_embeds=inputs, attention_mask=mask, **kwargs)
        texts, generated, eos = [], 0, self._eos_ids()
        for row in out.tolist():  # with inputs_embeds only new tokens come back
            kept = _strip_after_eos(row, eos)
            generated += len(kept)
            texts.append(
                truncate_at_stop(self.tokenizer.decode(kept, skip_special_tokens=True), stop)
            )
        return Completion(
            texts=texts,
            prompt_tokens=int(mask.sum()),
            completion_tokens=generated,
        )

    # -- log-probabilities ---------------------------------------------------------
    @torch.inference_mode()
    def logprobs(self, requests: Sequence[LogprobRequest]) -> list[list[float]]:
        """Sum of log p(continuation tokens | context) for every continuation.

        Context and continuation are tokenized separately and concatenated, so
        the continuation's tokens are exactly the ones scored. Each context runs
        once however many continuations follow it (`continuation_scores`), in
        batches of `batch_size` contexts of similar length.
        """
        contexts = [
            self.tokenizer(self.render(req.messages, req.text), add_special_tokens=False)[
                "input_ids"
            ]
            for req in requests
        ]
        continuations = [
            [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in req.continuations]
            for req in requests
        ]
        order = sorted(range(len(requests)), key=lambda r: len(contexts[r]), reverse=True)
        scores: list[list[float]] = [[] for _ in requests]
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            chunk_scores = score_continuations(
                self.model,
                [contexts[r] for r in chunk],
                [continuations[r] for r in chunk],
                pad_id=self.tokenizer.pad_token_id,
                device=self.device,
            )
            for r, values in zip(chunk, chunk_scores, strict=True):
                scores[r] = values
        return scores


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """Cut the text at the earliest stop string (generation may overshoot it)."""
    cut = len(text)
    for s in stop:
        pos = text.find(s)
        if s and pos != -1:
            cut = min(cut, pos)
    return text[:cut]


def _strip_after_eos(ids: list[int], eos: set[int]) -> list[int]:
    for pos, token in enumerate(ids):
        if token in eos:
            return ids[:pos]
    return ids


def _row_seed(seed: int, prompt: str, sample: int) -> int:
    """The seed of one sample's generator: the same request draws the same samples
    whatever else is decoded with it."""
    digest = hashlib.sha256(repr((seed, prompt, sample)).encode()).digest()
    return int.from_bytes(digest[:8], "big") % (2**63)
