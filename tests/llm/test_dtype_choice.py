"""`--dtype auto`: every branch of the decision, and the benchmark read back from its cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptopt.core.errors import ConfigError
from promptopt.llm.dtype_choice import (
    ONEDNN_ISA_VARS,
    DtypeChoice,
    MachineFacts,
    decide_dtype,
    machine_facts,
    machine_key,
    measured_choice,
    read_proc_cpu_flags,
    resolve_dtype,
)

AVX2_ONLY = frozenset({"avx", "avx2", "fma3"})
AVX512_BF16 = AVX2_ONLY | {"avx512_f", "avx512_bf16"}
SAPPHIRE_RAPIDS = AVX512_BF16 | {"amx_tile", "amx_bf16"}


def cpu(
    flags: frozenset[str] | None, onednn: bool | None = True, arch: str = "x86_64"
) -> MachineFacts:
    return MachineFacts(device="cpu", architecture=arch, cpu_flags=flags, onednn_bf16=onednn)


EXPLICIT = "set by --dtype"
NO_BF16 = DtypeChoice("float32", "cpu lacks native bfloat16: float32")
GPU_BF16 = MachineFacts("cuda", cuda_bf16=True)
OLD_GPU = MachineFacts("cuda:1", cuda_bf16=False)
CAPPED = "cpu has avx512_bf16 but torch's oneDNN may not use it: float32"


@pytest.mark.parametrize(
    ("requested", "facts", "expected"),
    [
        # an explicit dtype wins on any machine
        ("float32", cpu(SAPPHIRE_RAPIDS), DtypeChoice("float32", EXPLICIT)),
        ("bfloat16", cpu(AVX2_ONLY), DtypeChoice("bfloat16", EXPLICIT)),
        ("float16", GPU_BF16, DtypeChoice("float16", EXPLICIT)),
        # CUDA
        ("auto", GPU_BF16, DtypeChoice("bfloat16", "gpu supports bfloat16")),
        ("auto", OLD_GPU, DtypeChoice("float16", "gpu lacks bfloat16: float16")),
        # x86 CPUs
        ("auto", cpu(AVX512_BF16), DtypeChoice("bfloat16", "cpu has avx512_bf16")),
        ("auto", cpu(SAPPHIRE_RAPIDS), DtypeChoice("bfloat16", "cpu has amx_bf16")),
        ("auto", cpu(AVX2_ONLY), NO_BF16),
        ("auto", cpu(AVX2_ONLY | {"avx512_f"}), NO_BF16),
        ("auto", cpu(AVX2_ONLY, arch="AMD64"), NO_BF16),
        ("auto", cpu(AVX512_BF16, onednn=None), DtypeChoice("bfloat16", "cpu has avx512_bf16")),
        # ONEDNN_MAX_CPU_ISA=AVX2: bfloat16 emulated, 5x slower than float32
        ("auto", cpu(AVX512_BF16, onednn=False), DtypeChoice("float32", CAPPED)),
        # other devices
        ("auto", MachineFacts("mps"), DtypeChoice("float32", "no rule for device 'mps': float32")),
    ],
)  # fmt: skip
def test_flags_decide(requested: str, facts: MachineFacts, expected: DtypeChoice) -> None:
    assert decide_dtype(requested, facts) == expected


@pytest.mark.parametrize(
    "facts",
    [
        cpu(None),  # flags unreadable
        cpu(frozenset({"neon", "bf16"}), arch="arm64"),  # ARM: no rule, measure
        cpu(frozenset({"neon"}), onednn=None, arch="aarch64"),
    ],
)
def test_flags_that_cannot_decide_ask_for_a_measurement(facts: MachineFacts) -> None:
    assert decide_dtype("auto", facts) is None


def test_unknown_dtype_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown dtype 'fp8'.*auto"):
        decide_dtype("fp8", cpu(AVX2_ONLY))
    with pytest.raises(ConfigError, match="unknown dtype"):
        resolve_dtype("half")


class FakeBench:
    """Rates per dtype, counting how often the benchmark ran."""

    def __init__(self, rates: dict[str, float]) -> None:
        self.rates = rates
        self.runs: list[str] = []

    def __call__(self, dtype: str) -> float:
        self.runs.append(dtype)
        return self.rates[dtype]


def test_measurement_is_cached_and_read_back(tmp_path: Path) -> None:
    cache = tmp_path / "machine" / "dtype_benchmark.json"
    bench = FakeBench({"float32": 100.0, "bfloat16": 250.0})
    first = measured_choice("arm-box", cache, bench)
    assert first == DtypeChoice("bfloat16", "measured: bfloat16 runs at 2.50x float32's speed")
    assert bench.runs == ["float32", "bfloat16"]

    again = measured_choice("arm-box", cache, FakeBench({"float32": 1.0, "bfloat16": 0.0}))
    assert again == first  # read back, not rerun: the second bench would say float32

    other = FakeBench({"float32": 100.0, "bfloat16": 20.0})  # another kind of machine
    assert measured_choice("avx2-box", cache, other).dtype == "float32"
    assert other.runs and measured_choice("arm-box", cache, bench).dtype == "bfloat16"


def test_measurement_prefers_float32_unless_bfloat16_is_clearly_faster(tmp_path: Path) -> None:
    close = measured_choice("k", tmp_path / "a.json", FakeBench({"float32": 100, "bfloat16": 105}))
    assert close == DtypeChoice("float32", "measured: bfloat16 runs at 1.05x float32's speed")
    slow = measured_choice("k", tmp_path / "b.json", FakeBench({"float32": 71, "bfloat16": 14}))
    assert slow.dtype == "float32" and "0.20x" in slow.reason


def test_corrupt_or_unwritable_cache_measures_again(tmp_path: Path) -> None:
    cache = tmp_path / "dtype_benchmark.json"
    cache.write_text("{not json")
    bench = FakeBench({"float32": 100.0, "bfloat16": 300.0})
    assert measured_choice("k", cache, bench).dtype == "bfloat16" and len(bench.runs) == 2
    blocked = tmp_path / "file" / "dtype_benchmark.json"
    (tmp_path / "file").write_text("a file where a folder should be")
    assert measured_choice("k", blocked, FakeBench({"float32": 1, "bfloat16": 2})).dtype == (
        "bfloat16"
    )


def test_resolve_measures_only_where_flags_cannot_decide(tmp_path: Path) -> None:
    cache = tmp_path / "dtype_benchmark.json"
    bench = FakeBench({"float32": 100.0, "bfloat16": 300.0})
    decided = resolve_dtype("auto", facts=cpu(AVX2_ONLY), bench=bench, cache_file=cache)
    assert decided.dtype == "float32" and bench.runs == [] and not cache.exists()
    arm = cpu(frozenset({"bf16"}), arch="arm64")
    measured = resolve_dtype("auto", facts=arm, bench=bench, cache_file=cache)
    assert measured.reason.startswith("measured:") and cache.is_file()
    assert resolve_dtype("float32", facts=arm, bench=bench, cache_file=cache).reason == (
        "set by --dtype"
    )


def test_machine_key_tells_kinds_of_machine_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (*ONEDNN_ISA_VARS, "ATEN_CPU_CAPABILITY"):  # the suite may run capped
        monkeypatch.delenv(var, raising=False)
    arm = cpu(frozenset({"bf16"}), arch="arm64")
    assert machine_key(arm) == machine_key(cpu(frozenset({"bf16"}), arch="arm64"))
    assert machine_key(arm) != machine_key(cpu(frozenset({"neon"}), arch="arm64"))
    before = machine_key(arm)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # a capped ISA is another machine
    assert machine_key(arm) != before


def test_proc_cpuinfo_flags(tmp_path: Path) -> None:
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\n")
    assert read_proc_cpu_flags(x86) == frozenset({"fpu", "avx2", "avx512_bf16"})
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert read_proc_cpu_flags(arm) == frozenset({"fp", "asimd", "bf16"})
    assert read_proc_cpu_flags(tmp_path / "missing") is None


def test_this_machine_is_decided_without_measuring() -> None:
    """CI runs on x86 machines: their flags decide, and no benchmark runs there."""
    facts = machine_facts("cpu")
    if facts.architecture.lower() not in ("x86_64", "amd64"):
        pytest.skip("an x86 question")
    choice = decide_dtype("auto", facts)
    assert choice is not None and choice.dtype in ("bfloat16", "float32")
