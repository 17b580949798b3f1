"""The search command against a real OpenAI-compatible server (llama.cpp on loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_helpers import eval_json, search_via_cli

pytestmark = [pytest.mark.server, pytest.mark.integration]


def test_search_and_eval_with_openai_target(
    llama_server: str, data_dir: Path, isolated_cache: Path, tmp_path: Path
) -> None:
    export, _ = search_via_cli(
        tmp_path,
        "best",
        *f"--task antonyms --model openai:smollm2 --base-url {llama_server}".split(),
        *[
            "--dev-size",
            "4",
            "--test-size",
            "6",
            "-p",
            "num_subsamples=1",
            "-p",
            "proposals_per_subsample=2",
        ],
    )
    assert export["models"]["target"] == {
        "kind": "openai",
        "model": "smollm2",
        "server": llama_server,
        "spec": export["models"]["target"]["spec"],
    }
    assert export["models"]["target"]["spec"]["base_url"] == llama_server
    assert export["models"]["proposer"]["kind"] == "hf"
    assert export["scores"]["test"]["n"] == 6
    assert export["usage"]["search"]["calls"] > 0

    # eval rebuilds the same target from the export and gets the same score.
    report = eval_json(tmp_path / "best.json")
    assert report["score"] == pytest.approx(export["scores"]["test"]["score"])
