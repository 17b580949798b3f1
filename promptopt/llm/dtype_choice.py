"""`--dtype auto`: the float type a local model runs fastest in on this machine.

bfloat16 is not always faster. On CPUs that run it natively (AVX512-BF16 or
AMX) the evaluator decoded 2.5x the tokens/s of float32; on CPUs with AVX2 but
neither, torch emulates it and it was 5x slower (issue 13). A user should not
have to know which CPU they have, so `auto` decides from facts torch reports:

- CUDA: bfloat16 where the GPU supports it, else float16;
- x86 CPU: bfloat16 where the CPU has avx512_bf16 or amx_bf16 and torch's
  oneDNN may use them (ONEDNN_MAX_CPU_ISA can forbid it), else float32;
- anything else (ARM, unknown flags): a one-second matmul benchmark of both,
  cached per kind of machine in the cache directory.

The decision is `decide_dtype`, a pure function of `MachineFacts`, so every
branch is testable without the hardware. Every choice carries its reason,
which runs, exports and `promptopt models list` show.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from promptopt.core.errors import ConfigError
from promptopt.core.paths import cache_root

AUTO = "auto"
DTYPE_NAMES = ("float32", "bfloat16", "float16")
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
X86 = frozenset({"x86_64", "amd64", "x86", "i386", "i686"})
MEASURE_MARGIN = 1.1
"""bfloat16 must measure this much faster to be chosen: on a tie float32 is exact."""
ONEDNN_ISA_VARS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")

Bench = Callable[[str], float]
"""Runs a workload in the named dtype and returns its rate (operations per second)."""


@dataclass(frozen=True)
class DtypeChoice:
    dtype: str
    reason: str


@dataclass(frozen=True)
class MachineFacts:
    """What the choice depends on; gathered by `machine_facts`, or written by tests."""

    device: str
    cuda_bf16: bool | None = None
    """torch.cuda.is_bf16_supported() on a CUDA device."""
    architecture: str = ""
    cpu_flags: frozenset[str] | None = None
    """Instruction-set flags the CPU has; None when they could not be read."""
    onednn_bf16: bool | None = None
    """Whether torch's oneDNN runs bfloat16 here (False when its ISA is capped)."""
    cpu_name: str = ""
    torch_version: str = ""


def decide_dtype(requested: str, facts: MachineFacts) -> DtypeChoice | None:
    """The dtype to load a model in and why; None when only a measurement can tell."""
    if requested != AUTO:
        check_dtype_name(requested)
        return DtypeChoice(requested, "set by --dtype")
    if facts.device.startswith("cuda"):
        if facts.cuda_bf16:
            return DtypeChoice("bfloat16", "gpu supports bfloat16")
        return DtypeChoice("float16", "gpu lacks bfloat16: float16")
    if facts.device != "cpu":
        return DtypeChoice("float32", f"no rule for device '{facts.device}': float32")
    if facts.cpu_flags is None or facts.architecture.lower() not in X86:
        return None
    native = [flag for flag in NATIVE_BF16_FLAGS if flag in facts.cpu_flags]
    if not native:
        return DtypeChoice("float32", "cpu lacks native bfloat16: float32")
    if facts.onednn_bf16 is False:
        return DtypeChoice(
            "float32", f"cpu has {native[0]} but torch's oneDNN may not use it: float32"
        )
    return DtypeChoice("bfloat16", f"cpu has {native[0]}")


def check_dtype_name(name: str) -> None:
    if name != AUTO and name not in DTYPE_NAMES:
        raise ConfigError(
            f"unknown dtype '{name}': use {AUTO} (the default) or one of {', '.join(DTYPE_NAMES)}"
        )


def resolve_dtype(
    requested: str,
    device: str = "cpu",
    *,
    facts: MachineFacts | None = None,
    bench: Bench | None = None,
    cache_file: Path | None = None,
) -> DtypeChoice:
    """`decide_dtype` on this machine's facts, measuring (once per machine) if it must."""
    check_dtype_name(requested)
    if requested != AUTO:
        return DtypeChoice(requested, "set by --dtype")
    facts = facts or machine_facts(device)
    choice = decide_dtype(requested, facts)
    if choice is not None:
        return choice
    return measured_choice(
        machine_key(facts),
        cache_file or cache_root() / "machine" / "dtype_benchmark.json",
        bench or matmul_rate,
    )


def measured_choice(key: str, cache_file: Path, bench: Bench) -> DtypeChoice:
    """Benchmark float32 against bfloat16, or read the result measured before.

    Keyed by the kind of machine (`machine_key`), so a cache directory shared
    by identical runners measures once, and a different CPU measures again.
    """
    rates = _read_rates(cache_file).get(key)
    if rates is None:
        rates = {name: bench(name) for name in ("float32", "bfloat16")}
        _write_rate(cache_file, key, rates)
    ratio = rates["bfloat16"] / rates["float32"] if rates["float32"] > 0 else 0.0
    dtype = "bfloat16" if ratio >= MEASURE_MARGIN else "float32"
    return DtypeChoice(dtype, f"measured: bfloat16 runs at {ratio:.2f}x float32's speed")


def machine_key(facts: MachineFacts) -> str:
    """Identity of what the benchmark measured: CPU, flags, torch and their knobs."""
    knobs = {var: os.environ.get(var, "") for var in (*ONEDNN_ISA_VARS, "ATEN_CPU_CAPABILITY")}
    blob = json.dumps(
        [
            facts.device,
            facts.architecture,
            facts.cpu_name,
            sorted(facts.cpu_flags or ()),
            facts.onednn_bf16,
            facts.torch_version,
            knobs,
        ]
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _read_rates(cache_file: Path) -> dict[str, dict[str, float]]:
    try:
        data = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_rate(cache_file: Path, key: str, rates: dict[str, float]) -> None:
    """Merge one machine's rates in, atomically: a reader never sees half a file."""
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        data = _read_rates(cache_file)
        data[key] = rates
        staging = cache_file.with_name(f".{cache_file.name}.{os.getpid()}")
        staging.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(staging, cache_file)
    except OSError:
        pass  # a read-only cache measures again next time; the choice still stands


# -- facts and the benchmark (need torch) -------------------------------------------
def machine_facts(device: str) -> MachineFacts:
    import torch

    if device.startswith("cuda"):
        supported = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return MachineFacts(device=device, cuda_bf16=supported, torch_version=torch.__version__)
    if device != "cpu":
        return MachineFacts(device=device, torch_version=torch.__version__)
    architecture, name, flags = _cpu_facts()
    return MachineFacts(
        device="cpu",
        architecture=architecture,
        cpu_flags=flags,
        onednn_bf16=_onednn_bf16(),
        cpu_name=name,
        torch_version=torch.__version__,
    )


def _cpu_facts() -> tuple[str, str, frozenset[str] | None]:
    """(architecture, CPU name, flags): torch's cpuinfo, else /proc/cpuinfo."""
    import torch

    get_capabilities = getattr(torch.cpu, "get_capabilities", None)  # recent torch only
    if get_capabilities is not None:
        caps = dict(get_capabilities())
        flags = frozenset(k for k, v in caps.items() if v is True)
        architecture = str(caps.get("architecture", platform.machine()))
        return architecture, str(caps.get("cpu_name", "")), flags
    return platform.machine(), "", read_proc_cpu_flags(Path("/proc/cpuinfo"))


def read_proc_cpu_flags(path: Path) -> frozenset[str] | None:
    """The first CPU's flags ('flags' on x86, 'Features' on ARM); None if unreadable."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None


def _onednn_bf16() -> bool | None:
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return None


def matmul_rate(dtype: str, seconds: float = 0.5) -> float:
    """Linear layers of a small LM's shape (batch 32, 576 -> 1536) per second."""
    import torch

    torch_dtype = getattr(torch, dtype)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(32, 576, generator=generator).to(torch_dtype)
    w = torch.randn(1536, 576, generator=generator).to(torch_dtype)
    with torch.inference_mode():
        for _ in range(3):
            torch.nn.functional.linear(x, w)
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            for _ in range(10):
                torch.nn.functional.linear(x, w)
            done += 10
    return done / (time.perf_counter() - started)
