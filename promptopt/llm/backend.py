"""What a model backend is, and how a name in `--model NAME:...` finds one.

A backend is one module with a `Backend` subclass: it owns its options, reads its
part of `--model`, says whether it runs locally and what log-probabilities it
gives, and builds the model. Everything else (specs, run configs, the dry run,
pricing, `models list`) asks the backend rather than testing its name, so adding
one touches no other file.

Names come from three places, all through `register_backend`: the built-ins in
`BUILTIN`, the `promptopt.backends` entry-point group (how a third-party package
adds one: `name = "package.module:MyBackend"` in its pyproject), and tests, which
call `register_backend` directly. A descriptor module stays light (it imports
torch or an SDK only inside `build`), so listing backends never loads a model.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, ClassVar

from promptopt.core.domain import Message
from promptopt.core.errors import ConfigError, did_you_mean
from promptopt.llm.base import FULL_LOGPROBS, LLM

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "promptopt.backends"

BUILTIN: dict[str, str] = {
    "hf": "promptopt.llm.hf_backend:HFBackend",
    "openai": "promptopt.llm.openai_backend:OpenAIBackend",
}
"""The backends promptopt ships, loaded like entry points (in this order)."""


@dataclass(frozen=True)
class NoOptions:
    """Options of a backend that takes none."""


@dataclass(frozen=True)
class LocalFiles:
    """What a local model's files on disk tell before its weights load: the dry run
    counts prompt tokens exactly and a search checks the context window with them."""

    name: str
    """The model's name in messages."""
    tokenizer: Any
    """Called like a transformers tokenizer: `tokenizer(text, add_special_tokens=False)`."""
    render: Callable[[Sequence[Message] | None, str | None], str]
    """A request's messages or text as the model will read them."""
    config: Any | None = None
    """Its transformers config (for the context window), None if unreadable."""


class Backend:
    """Subclass this, set the class attributes, and override what differs.

    `Options` is a frozen dataclass whose fields all have defaults; the fields are
    the keys a spec records and the CLI options this backend takes (`--dtype`,
    `--base-url`, ...: each backend keeps the ones named like its fields).
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    usage: ClassVar[str] = ""
    """How to write one, for error messages: e.g. "'openai:<model>'"."""
    examples: ClassVar[str] = ""
    """What `models list` shows under "write"."""
    Options: ClassVar[type] = NoOptions
    local: ClassVar[bool] = False
    """Runs on this machine: it costs nothing and needs no price."""
    call_settings: ClassVar[tuple[str, ...]] = ()
    """Options that say how the model is called, not what it answers: recorded, but a
    resume or a later compare may change them (`ModelSpec.identity`)."""

    def claims(self, text: str) -> bool:
        """Whether a `--model` value without a `NAME:` prefix names one of this
        backend's models (hf: 'embedded', a folder, a .gguf file)."""
        return False

    def parse(self, model: str) -> str:
        """The model id in this backend's part of `--model` (after `NAME:`)."""
        return model

    def resolved(self, options: Any) -> Any:
        """`options` as they act on this machine (hf: `auto` -> the dtype it means), so
        a run recorded here is refused where they would act differently."""
        return options

    def record(self, options: Any) -> dict[str, Any]:
        """The options as a run records them: never a credential."""
        return dataclasses.asdict(options)

    def scope(self, model: str, options: Any) -> dict[str, str]:
        """The cache scope the built model will have (`llm.base.model_scope`)."""
        return {}

    def logprob_scope(self, options: Any) -> str | None:
        """`FULL_LOGPROBS`, `FIRST_TOKEN_LOGPROBS`, or None: no log-probabilities."""
        return FULL_LOGPROBS

    def local_files(self, model: str) -> LocalFiles | None:
        """A local model's tokenizer and config if on disk, without loading weights."""
        return None

    def build(self, model: str, options: Any) -> LLM:
        raise NotImplementedError(f"backend '{self.name}' does not build models")

    def option_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self.Options))

    def options_from(self, values: Mapping[str, Any], base: Any = None) -> Any:
        """`base` (default: the defaults) with those `values` this backend owns; the
        others belong to other backends and are left out."""
        own = {k: v for k, v in values.items() if k in self.option_names()}
        return dataclasses.replace(base if base is not None else self.Options(), **own)

    def options_from_text(
        self, values: Mapping[str, str], base: Any = None, flag: str = "--model-option"
    ) -> Any:
        """`base` with `flag KEY=VALUE` settings (--model-option, --proposer-option), each
        read as its field's type; a key this backend lacks is refused, naming the ones
        it has."""
        types_of = typing.get_type_hints(self.Options)
        read: dict[str, Any] = {}
        for key, text in values.items():
            if key not in types_of:
                own = ", ".join(self.option_names()) or "none"
                raise ConfigError(
                    f"model backend '{self.name}' has no option '{key}': its options are {own}"
                )
            read[key] = _read_value(key, text, types_of[key], flag)
        return dataclasses.replace(base if base is not None else self.Options(), **read)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _read_value(key: str, text: str, kind: Any, flag: str) -> Any:
    """`text` as a value of `kind` (str, int, float, bool, or one of them | None)."""
    allowed = [t for t in typing.get_args(kind) if t is not type(None)]
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        if text.strip().lower() in ("", "none"):
            return None
        kind = allowed[0]
    value = text.strip()
    try:
        if kind is bool:
            if value.lower() not in _TRUE | _FALSE:
                raise ValueError(value)
            return value.lower() in _TRUE
        if kind in (int, float):
            return kind(value)
    except ValueError:
        name = getattr(kind, "__name__", str(kind))
        raise ConfigError(
            f"{flag} {key}={text}: '{text}' is not of type {name}: give {key}=<{name}>"
        ) from None
    return text


_REGISTERED: dict[str, Backend] = {}
_loaded = False


def register_backend(backend: Backend | type[Backend]) -> Backend:
    """Make `backend` answer to its name. Registering the same class again is a
    no-op; another backend under a taken name is refused (a plugin shadowing hf
    would silently change what a run means)."""
    instance = backend() if isinstance(backend, type) else backend
    if not isinstance(instance, Backend):
        raise ConfigError(f"{backend!r} is not a promptopt Backend")
    known = _REGISTERED.get(instance.name)
    if known is not None and type(known) is not type(instance):
        raise ConfigError(
            f"backend name '{instance.name}' is taken by {type(known).__module__}: "
            "give the new backend another name"
        )
    _REGISTERED.setdefault(instance.name, instance)
    return _REGISTERED[instance.name]


def unregister_backend(name: str) -> None:
    """Forget a backend (tests that registered one clean up with this)."""
    _REGISTERED.pop(name, None)


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _load_all() -> None:
    """Built-ins, then every installed plugin; once per process. A plugin that fails
    to load is logged and skipped, so it cannot take the built-ins down with it."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for target in BUILTIN.values():
        register_backend(_load(target))
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            register_backend(point.load())
        except Exception as error:  # a broken plugin must not break the others
            log.warning("backend plugin '%s' (%s) not loaded: %s", point.name, point.value, error)


def backends() -> list[Backend]:
    """Every registered backend, built-ins first."""
    _load_all()
    return list(_REGISTERED.values())


def get_backend(name: str) -> Backend:
    _load_all()
    if name not in _REGISTERED:
        raise ConfigError(
            f"unknown backend '{name}'{did_you_mean(name, list(_REGISTERED))}: "
            "run `promptopt models list`"
        )
    return _REGISTERED[name]


def is_local(recorded: Mapping[str, Any]) -> bool:
    """Whether a recorded spec ({"backend": ...}) names a local model; an unknown
    backend (a plugin not installed here) counts as not local."""
    try:
        return get_backend(str(recorded.get("backend", ""))).local
    except ConfigError:
        return False
