"""Drive a real headless Chromium over a report file: its DOM, a screenshot, and
the requests its page made (from Chromium's net log).

Chromium itself talks to Google in the background (time sync, account checks)
even with background networking disabled; those requests carry the initiator
"not an origin". A request made by the page (an <img>, a stylesheet, a font)
carries the page's origin ("null" for file://). So `page_requests` keeps only
requests with an origin, and the tests prove it sees a page request when there
is one (a control page with an external image).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
BROWSER_INTERNAL = "not an origin"


def chromium_or_skip() -> str:
    """The chromium binary; without one, skip locally and fail in CI (where the
    README's test command installs it, so a missing browser means the install step broke)."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail(
            "chromium is not installed in CI: the README's test command should have "
            "installed it (apt-get install -y chromium)"
        )
    pytest.skip("chromium is not installed (apt-get install -y chromium)")


def run(binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="promptopt-chromium-") as profile:
        return subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )


def dump_dom(binary: str, page: Path) -> str:
    return run(binary, "--dump-dom", page.resolve().as_uri()).stdout


def screenshot(binary: str, page: Path, out: Path, size: tuple[int, int]) -> Path:
    run(
        binary, f"--screenshot={out}", f"--window-size={size[0]},{size[1]}", page.resolve().as_uri()
    )
    return out


def page_requests(binary: str, page: Path, net_log: Path) -> list[str]:
    """URLs of the network requests the page made while it loaded."""
    run(
        binary,
        f"--log-net-log={net_log}",
        "--net-log-capture-mode=Everything",
        "--dump-dom",
        page.resolve().as_uri(),
    )
    text = net_log.read_text(encoding="utf-8")
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # a log cut short at exit lacks its closing brackets
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        event["params"]["url"]
        for event in log["events"]
        if event.get("type") == start_job
        and "url" in event.get("params", {})  # the job's begin (its end has no url)
        and event["params"].get("initiator") != BROWSER_INTERNAL
    ]
