"""torch threads: physical cores in the affinity, capped by the cgroup quota; the user's
choice wins. Machines are faked: affinity, topology, quota files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from promptopt.llm import threads
from promptopt.llm.threads import (
    ThreadChoice,
    cgroup_quota,
    choose_threads,
    cpu_topology,
    parse_cfs,
    parse_cpu_max,
    usable_cores,
)

# 4 cores with 2 hyperthreads each: logical CPUs 0-3 are cores 0-3, 4-7 their siblings
HYPERTHREADED = {cpu: (0, cpu % 4) for cpu in range(8)}


def test_physical_cores_in_the_affinity() -> None:
    every_cpu = usable_cores(range(8), HYPERTHREADED, None)
    assert every_cpu == (4, "4 physical cores this process may use")
    assert usable_cores({0, 4}, HYPERTHREADED, None)[0] == 1  # both threads of one core
    assert usable_cores({0, 1, 4, 5}, HYPERTHREADED, None)[0] == 2
    assert usable_cores({2}, HYPERTHREADED, None) == (1, "1 physical core this process may use")
    assert usable_cores({0, 1, 2}, {}, None)[0] == 3  # topology unknown: each CPU a core
    two_sockets = {0: (0, 0), 1: (1, 0)}  # same core id on two packages: two cores
    assert usable_cores({0, 1}, two_sockets, None)[0] == 2


def test_cgroup_quota_caps_the_cores() -> None:
    assert usable_cores(range(8), HYPERTHREADED, 2.0) == (2, "cgroup CPU quota of 2 CPUs")
    assert usable_cores(range(8), HYPERTHREADED, 1.5) == (1, "cgroup CPU quota of 1.5 CPUs")
    assert usable_cores(range(8), HYPERTHREADED, 0.5)[0] == 1  # never below one
    assert usable_cores({0, 1}, HYPERTHREADED, 6.0)[0] == 2  # a loose quota changes nothing


def test_the_users_choice_wins() -> None:
    usable = (2, "cgroup CPU quota of 2 CPUs")
    env = {"OMP_NUM_THREADS": "1"}
    assert choose_threads(env, 1, {8, 16}, usable) == ThreadChoice(
        1, "OMP_NUM_THREADS=1 set by the user"
    )
    assert choose_threads({"MKL_NUM_THREADS": "3"}, 3, {8}, usable).threads == 3
    by_torch = choose_threads({}, 5, {8, 16}, usable)  # torch.set_num_threads(5) before loading
    assert by_torch == ThreadChoice(5, "set by torch.set_num_threads before loading")
    assert choose_threads({"OMP_NUM_THREADS": ""}, 8, {8, 16}, usable).changed  # empty: unset


def test_torch_default_is_replaced_by_what_the_process_may_use() -> None:
    usable = (2, "cgroup CPU quota of 2 CPUs")
    assert choose_threads({}, 8, {8, 16}, usable) == ThreadChoice(
        2, "cgroup CPU quota of 2 CPUs", changed=True
    )
    same = choose_threads({}, 2, {2}, (2, "2 physical cores this process may use"))
    assert same.threads == 2 and not same.changed
    assert same.describe() == "torch threads 2 (2 physical cores this process may use)"


def test_quota_files() -> None:
    assert parse_cpu_max("max 100000") is None
    assert parse_cpu_max("200000 100000") == 2.0
    assert parse_cpu_max("150000 100000") == 1.5
    assert parse_cpu_max("garbage") is None
    assert parse_cfs("-1", "100000") is None
    assert parse_cfs("50000", "100000") == 0.5
    assert parse_cfs("x", "100000") is None


def test_cgroup_quota_reads_v2_and_v1_and_takes_the_tightest(tmp_path: Path) -> None:
    assert cgroup_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("300000 100000\n")
    assert cgroup_quota(tmp_path) == 3.0
    v1 = tmp_path / "cpu"
    v1.mkdir()
    (v1 / "cpu.cfs_quota_us").write_text("150000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_quota(tmp_path) == 1.5


def test_topology_from_sysfs(tmp_path: Path) -> None:
    for cpu, (package, core) in {0: (0, 0), 1: (0, 0), 2: (0, 1)}.items():
        folder = tmp_path / f"cpu{cpu}" / "topology"
        folder.mkdir(parents=True)
        (folder / "physical_package_id").write_text(f"{package}\n")
        (folder / "core_id").write_text(f"{core}\n")
    assert cpu_topology({0, 1, 2, 3}, tmp_path) == {0: (0, 0), 1: (0, 0), 2: (0, 1)}


def test_configured_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """After promptopt sets torch's count, a second look must not call it the user's."""
    set_to: list[int] = []
    monkeypatch.setattr(threads, "_CONFIGURED", None)
    monkeypatch.setattr(torch, "set_num_threads", set_to.append)
    choice = ThreadChoice(1, "cgroup CPU quota of 1 CPUs", changed=True)
    monkeypatch.setattr(threads, "this_machine", lambda: choice)
    assert threads.configure_torch_threads() is choice
    monkeypatch.setattr(threads, "this_machine", lambda: pytest.fail("looked twice"))
    assert threads.configure_torch_threads() is choice
    assert set_to == [1]


def test_this_machine_respects_omp_num_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    choice = threads.this_machine()
    assert choice.reason == "OMP_NUM_THREADS=1 set by the user" and not choice.changed
