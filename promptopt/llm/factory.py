"""Model specs as users write them (`--model`), as runs record them, and building
the model a spec names.

A spec is a backend name, a model id and that backend's options (`llm.backend`):
`hf:org/model` is read by the hf backend, `openai:gpt-4o-mini` by openai, and a
bare value (`embedded`, `./model.gguf`) by the backend that claims it.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from promptopt.core.errors import ConfigError
from promptopt.llm.backend import Backend, backends, get_backend
from promptopt.llm.base import DEFAULT_TIMEOUT, LLM

DEFAULT_MODEL = "embedded"

LEGACY_OPTIONS: dict[str, Any] = {
    "base_url": None,
    "api": "chat",
    "dtype": "auto",
    "device": "cpu",
    "batch_size": 16,
    "max_concurrency": 8,  # the default then
    "timeout": DEFAULT_TIMEOUT,
}
"""The options (and their defaults) every spec recorded before each backend owned its
own: one spec carried them all. A record may hold those of another backend; they
are ignored, so run configs and exports written then still load and resume."""


@dataclass(frozen=True, init=False)
class ModelSpec:
    backend: str
    model: str
    options: Any
    """The backend's own options (its `Options` dataclass)."""

    def __init__(self, backend: str, model: str, options: Any = None, **values: Any) -> None:
        """`ModelSpec("hf", "embedded", dtype="float32")`, or `ModelSpec(**recorded)`."""
        kind = get_backend(backend)
        unknown = [k for k in values if k not in kind.option_names() and k not in LEGACY_OPTIONS]
        if unknown:
            own = ", ".join(kind.option_names()) or "none"
            raise ConfigError(
                f"model backend '{backend}' has no option '{unknown[0]}' (its options: {own})"
            )
        object.__setattr__(self, "backend", backend)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "options", kind.options_from(values, options))

    def __getattr__(self, name: str) -> Any:
        """The backend's options read as attributes: `spec.dtype`, `spec.base_url`."""
        if name.startswith("__") or name == "options":
            raise AttributeError(name)
        return getattr(self.options, name)

    def __repr__(self) -> str:
        """Without a credential in a server URL, wherever a spec ends up printed."""
        fields = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"ModelSpec({fields})"

    @property
    def kind(self) -> Backend:
        return get_backend(self.backend)

    def option(self, name: str, default: Any = None) -> Any:
        """One option, or `default` when this backend has no such option."""
        return getattr(self.options, name, default)

    def with_options(self, **values: Any) -> ModelSpec:
        """This spec with those `values` its backend owns (the others are not its own)."""
        return replace(self, options=self.kind.options_from(values, self.options))

    def to_dict(self) -> dict[str, Any]:
        """What a run records: no credentials (base URLs are stripped of them)."""
        return {"backend": self.backend, "model": self.model, **self.kind.record(self.options)}

    def identity(self) -> dict[str, Any]:
        """The record without the backend's call settings: what must match to resume
        a run or extend a comparison."""
        calls = self.kind.call_settings
        return {k: v for k, v in self.to_dict().items() if k not in calls}

    def scope(self) -> dict[str, str]:
        """The cache scope the model this spec builds will have (`model_scope`)."""
        return self.kind.scope(self.model, self.options)

    def resolved(self) -> ModelSpec:
        """This spec as its options act on this machine (hf: `auto` -> a dtype)."""
        options = self.kind.resolved(self.options)
        return self if options == self.options else replace(self, options=options)


def recordable_options(backend: Any) -> dict[str, tuple[type, bool]]:
    """The keys a recorded spec of `backend` may hold, each with its value's type and
    whether it may be null: backend, model, its options and the legacy ones (an
    unknown backend: the legacy ones)."""
    keys = {"backend": (str, False), "model": (str, False)}
    keys |= {k: (str if v is None else type(v), v is None) for k, v in LEGACY_OPTIONS.items()}
    try:
        options = get_backend(str(backend)).Options
    except ConfigError:
        return keys
    hints = typing.get_type_hints(options)
    for field in fields(options):
        kinds = typing.get_args(hints[field.name]) or (hints[field.name],)
        real = [k for k in kinds if k is not type(None)]
        keys[field.name] = (real[0], len(real) < len(kinds))
    return keys


def default_model_spec() -> ModelSpec:
    """The model a search, compare or eval uses when none is given."""
    return parse_model_spec(DEFAULT_MODEL)


def model_identity(recorded: Any) -> Any:
    """What must match in a recorded spec (`ModelSpec.to_dict`, or one written before
    backends owned their options) to resume a run or extend a comparison: the spec
    without its call settings, read the way this version records it. Anything not a
    spec comes back as is."""
    if not isinstance(recorded, dict):
        return recorded
    try:
        return ModelSpec(**recorded).identity()
    except (ConfigError, TypeError):  # a backend not installed here: compare as recorded
        return {k: v for k, v in recorded.items() if k not in ("timeout", "max_concurrency")}


def with_call_settings(
    spec: ModelSpec, timeout: float | None = None, max_concurrency: int | None = None
) -> ModelSpec:
    """`spec` with the `--timeout` and `--concurrency` given (None keeps its own),
    checked: a bad value is a one-line ConfigError before anything runs. A backend
    without these options keeps none of them."""
    if timeout is not None and not (timeout > 0 and math.isfinite(timeout)):
        raise ConfigError(
            f"--timeout must be a positive number of seconds, got {timeout:g}: "
            f"e.g. --timeout {DEFAULT_TIMEOUT:g}"
        )
    if max_concurrency is not None and max_concurrency < 1:
        raise ConfigError(
            f"--concurrency must be at least 1, got {max_concurrency}: "
            "e.g. --concurrency 1 for one request at a time"
        )
    given = {"timeout": None if timeout is None else float(timeout)}
    given["max_concurrency"] = max_concurrency
    return spec.with_options(**{k: v for k, v in given.items() if v is not None})


def with_model_options(
    spec: ModelSpec, items: Sequence[str] | None, flag: str = "--model-option"
) -> ModelSpec:
    """`spec` with `flag KEY=VALUE` items, each checked by its backend (an option
    without a CLI flag of its own is set this way)."""
    values: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} expects KEY=VALUE, got '{item}': e.g. batch_size=8")
        values[key.strip()] = value
    if not values:
        return spec
    return replace(spec, options=spec.kind.options_from_text(values, spec.options, flag))


def parse_model_spec(
    text: str, timeout: float | None = None, max_concurrency: int | None = None, **options: Any
) -> ModelSpec:
    """A `--model` or `--proposer` value with the CLI's model options (each backend
    keeps those it owns); `timeout` and `max_concurrency` are checked
    (`with_call_settings`), None means the default."""
    kind, model = _read_model(text.strip())
    spec = ModelSpec(kind.name, model, kind.options_from(options))
    return with_call_settings(spec, timeout, max_concurrency)


def _read_model(text: str) -> tuple[Backend, str]:
    name, sep, rest = text.partition(":")
    known = {b.name: b for b in backends()}
    if sep and rest and name in known:
        return known[name], known[name].parse(rest)
    for kind in known.values():
        if kind.claims(text):
            return kind, kind.parse(text)
    ways = " or ".join(b.usage or f"'{b.name}:<model>'" for b in known.values())
    raise ConfigError(f"cannot read model '{text}': write {ways} (see `promptopt models list`)")


_LOADED: dict[ModelSpec, LLM] = {}


def build_llm(spec: ModelSpec) -> LLM:
    """One instance per spec per process: target and proposer may share a model."""
    if spec not in _LOADED:
        _LOADED[spec] = spec.kind.build(spec.model, spec.options)
    return _LOADED[spec]
