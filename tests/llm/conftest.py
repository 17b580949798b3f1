"""A real llama.cpp OpenAI-compatible server running the embedded model, once per session."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVER_START_TIMEOUT = 60.0
# Checked without importing llama_cpp, which would load libllama into the test process.
SERVER_MODULES = ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "pydantic_settings")


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start `python -m llama_cpp.server` on loopback and yield its base URL (…/v1)."""
    missing = [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(
            f"llama-cpp-python's server is not installed (missing {', '.join(missing)}): "
            "pip install 'llama-cpp-python[server]'"
        )
    from promptopt.llm.models import embedded_gguf_path

    model_path = embedded_gguf_path()
    port = free_port()
    log_path: Path = tmp_path_factory.mktemp("llama_server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", "2048",
        "--seed", "0",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    base_url = f"http://127.0.0.1:{port}/v1"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{tail}")
            try:
                with opener.open(f"{base_url}/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                pytest.fail(
                    f"llama_cpp.server did not answer within {SERVER_START_TIMEOUT:g} s:\n{tail}"
                )
            time.sleep(0.25)
        _first_completion(opener, base_url, process, log_path)
        yield base_url
    finally:
        _stop(process)


def _first_completion(
    opener: urllib.request.OpenerDirector,
    base_url: str,
    process: subprocess.Popen[bytes],
    log_path: Path,
) -> None:
    """One tiny completion before any test: a server whose llama.cpp was built for
    an instruction set this machine will not run (a native build that uses AMX in a
    VM that does not enable it) answers /models and then dies on its first request,
    which every test would otherwise report as "cannot reach the model server"."""
    body = json.dumps({"prompt": "Hi", "max_tokens": 1}).encode()
    request = urllib.request.Request(
        f"{base_url}/completions", body, {"Content-Type": "application/json"}
    )
    try:
        with opener.open(request, timeout=SERVER_START_TIMEOUT) as response:
            response.read()
        return
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        problem = exc
    time.sleep(0.5)
    tail = log_path.read_text(errors="replace")[-1500:]
    pytest.fail(
        f"llama_cpp.server failed its first completion ({problem}; exit code "
        f"{process.poll()}): if it crashed, rebuild llama-cpp-python for this CPU as the "
        "README's test command does (pip cache remove llama_cpp_python; CMAKE_ARGS with "
        f"-DGGML_NATIVE=OFF)\n{tail}"
    )
