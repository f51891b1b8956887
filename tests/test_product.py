"""AXR as a user installs it: one `axr` namespace, a wheel that carries everything, embedded and fetched data."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from axr.reasoning import resources
from axr.reasoning.rulebook_import import load_rules
from tests.captions_layout import synthetic_videos, write_caption_set
from tests.conftest import REPO, SHARED_DATA, run_axr

SETS = ("ped2", "SHTech", "avenue", "UBNormal")


def test_shipped_files_resolve_from_the_package_not_the_checkout():
    from axr.eval.tasks import TASKS_DIR
    from axr.reasoning.prompting import prompts_dir
    from axr.training.recipe import ACCELERATE_DIR, RECIPES_DIR

    for folder in (TASKS_DIR, prompts_dir(), RECIPES_DIR, ACCELERATE_DIR):
        assert folder.is_dir() and any(folder.iterdir())
    import axr

    assert axr.__version__ != "0+unknown"
    assert not any(path.is_file() for path in REPO.glob("*.py"))  # the repository root is no package


def test_embedded_caption_sets_resolve_by_data_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("AXR_DATA", str(tmp_path / "data"))
    ped2 = resources.resolve("data:anomalyruler/ped2")
    assert ped2.is_relative_to(tmp_path / "data" / ".embedded")
    assert len(list((ped2 / "test_frame_description").glob("*.txt"))) == 12
    assert len(list((resources.resolve("data:anomalyruler/SHTech") / "test_frame").glob("*.csv"))) == 107
    book = load_rules("data:anomalyruler/rule/rule_SHTech.txt")
    assert len(book.rules("anomaly")) == 24
    assert "MIT License" in resources.resolve("data:anomalyruler/LICENSE").read_text()
    with pytest.raises(resources.DataError, match=r"data:anomalyruler/avenue: not on this machine; run `axr data"):
        resources.resolve("data:anomalyruler/avenue")
    with pytest.raises(resources.DataError, match="unknown data set 'nope'"):
        resources.resolve("data:nope/x")


@pytest.mark.skipif(not (SHARED_DATA / "anomalyruler").is_dir(), reason="../shared/data is absent")
def test_embedded_archive_holds_exactly_the_published_files(tmp_path, monkeypatch):
    monkeypatch.setenv("AXR_DATA", str(tmp_path))
    root = resources.embedded_root(resources.DATASETS["anomalyruler"])
    shared = SHARED_DATA / "anomalyruler"
    for ours, theirs in [(root / s, shared / s) for s in ("ped2", "SHTech")]:
        names = sorted(p.relative_to(theirs) for p in theirs.rglob("*") if p.is_file())
        assert names == sorted(p.relative_to(ours) for p in ours.rglob("*") if p.is_file())
        assert all((ours / n).read_bytes() == (theirs / n).read_bytes() for n in names)
    # the embedded sets' rule books, as published (Avenue's and UBnormal's come with `axr data fetch`)
    rules = sorted(p.name for p in (root / "rule").iterdir())
    assert rules == ["rule_SHTech.txt", "rule_ped2.txt"]
    assert all((root / "rule" / n).read_bytes() == (shared / "rules" / n).read_bytes() for n in rules)


def test_a_task_whose_data_is_not_fetched_fails_in_one_line(tmp_path):
    result = run_axr("eval", "run", "avenue", check=False, env={"AXR_DATA": str(tmp_path)})
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "data:anomalyruler/avenue: not on this machine; run `axr data fetch anomalyruler`" in line
    listed = run_axr("data", "list", env={"AXR_DATA": str(tmp_path)}).stdout
    assert "ped2" in listed and "SHTech" in listed and "no: axr data fetch anomalyruler" in listed


def upstream_archive(root: Path, sets=SETS) -> bytes:
    """A tar.gz in the layout of AnomalyRuler's GitHub archive: one top folder, the sets, rule/."""
    top = root / "AnomalyRuler-0123abc"
    for name in sets:
        write_caption_set(top / name, synthetic_videos(6, 150))
    (top / "rule").mkdir(parents=True)
    for name in sets:
        shutil.copy(resources.resolve("data:anomalyruler/rule/rule_ped2.txt"), top / "rule" / f"rule_{name}.txt")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(top, arcname=top.name)
    return buffer.getvalue()


@pytest.fixture()
def archive_server(tmp_path):
    """Serves /good.tar.gz, /wrong-layout.tar.gz and /truncated.tar.gz (half the body, then the connection
    closes) from 127.0.0.1."""
    good = upstream_archive(tmp_path / "good")
    files = {"/good.tar.gz": good, "/wrong-layout.tar.gz": upstream_archive(tmp_path / "wrong", SETS[:3])}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = good if self.path == "/truncated.tar.gz" else files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if self.path == "/truncated.tar.gz" else body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hashlib.sha256(good).hexdigest()
    server.shutdown()


@pytest.mark.slow
def test_fetch_installs_the_sets_and_makes_their_tasks_runnable(tmp_path, archive_server):
    url, digest = archive_server
    env = {"AXR_DATA": str(tmp_path / "data")}
    run_axr("data", "fetch", "anomalyruler", "--url", f"{url}/good.tar.gz", env=env)
    source = json.loads((tmp_path / "data" / "anomalyruler" / "SOURCE.json").read_text())
    assert source["sha256"] == digest and source["source"] == f"{url}/good.tar.gz"
    assert f"from {url}/good.tar.gz" in run_axr("data", "list", env=env).stdout
    run_axr("eval", "run", "avenue", "--output", str(tmp_path / "run"), env=env)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["split"]["evaluated_videos"] == 4 and metrics["frame_auc_pooled"] > 0.9
    # ped2 still comes from the embedded copy (the paper's files), not from the fetched archive
    assert resources.resolve("data:anomalyruler/ped2").parent.parent.name == ".embedded"


@pytest.mark.parametrize(
    "path, message",
    [
        ("truncated.tar.gz", "truncated download"),
        ("wrong-layout.tar.gz", "not anomalyruler's layout (missing UBNormal/test_frame_description"),
        ("missing.tar.gz", "HTTP 404"),
    ],
)
def test_a_bad_fetch_installs_nothing_and_says_why(tmp_path, archive_server, path, message):
    url, _ = archive_server
    result = run_axr(
        "data", "fetch", "anomalyruler", "--url", f"{url}/{path}", check=False, env={"AXR_DATA": str(tmp_path)}
    )
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "anomalyruler").exists() and not list(tmp_path.glob(".fetch-*"))


def test_fetch_offline_names_the_url_and_where_files_go_by_hand(tmp_path):
    closed = "http://127.0.0.1:9/AnomalyRuler.tar.gz"  # the discard port: nothing listens
    result = run_axr("data", "fetch", "anomalyruler", "--url", closed, check=False, env={"AXR_DATA": str(tmp_path)})
    [line] = result.stderr.strip().splitlines()
    assert result.returncode == 2 and f"cannot download {closed}" in line
    assert f"unpack it by hand into {tmp_path / 'anomalyruler'}" in line and "--archive FILE" in line


def test_fetch_from_an_archive_already_on_disk(tmp_path):
    archive = tmp_path / "AnomalyRuler.tar.gz"
    archive.write_bytes(upstream_archive(tmp_path / "src"))
    run_axr("data", "fetch", "anomalyruler", "--archive", str(archive), env={"AXR_DATA": str(tmp_path / "d")})
    assert (tmp_path / "d" / "anomalyruler" / "UBNormal" / "test_frame").is_dir()


def test_train_configs_lists_recipes_and_launcher_configs():
    listed = run_axr("train", "configs").stdout
    assert "tiny-sft" in listed and "qwen2.5-vl-7b-grpo-full" in listed and "zero3" in listed
    path = Path(run_axr("train", "configs", "--path", "zero2").stdout.strip())
    assert path.name == "zero2.yaml" and path.is_file()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """`pip wheel` of a copy of the checkout (no network: the build uses this venv's setuptools)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    ignore = shutil.ignore_patterns(".git", ".venv", "runs", "test-artifacts", "build", "*.egg-info", "__pycache__")
    shutil.copytree(REPO, source, dirs_exist_ok=True, ignore=ignore)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    [built] = out.glob("axr-*.whl")
    return built


def test_the_wheel_carries_everything_under_one_import_name(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"axr", wheel.name.split("-py3")[0] + ".dist-info"}
    for needed in (
        "axr/__main__.py",
        "axr/eval/tasks/ped2.yaml",
        "axr/eval/tasks/_images.yaml",
        "axr/training/recipes/tiny-sft.yaml",
        "axr/training/accelerate/zero3.yaml",
        "axr/prompts/direct_system.jinja",
        "axr/prompts/README.md",
        "axr/reasoning/data/anomalyruler.tar.xz",
    ):
        assert needed in names, needed
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "axr = axr.cli:main" in entry_points


@pytest.mark.slow
def test_the_main_job_from_an_empty_folder_after_a_plain_wheel_install(wheel, tmp_path):
    """A fresh venv with the wheel installed without -e. Its dependencies are borrowed from this venv through a
    path entry (a .pth *line* adds the folder to sys.path, but .pth files inside it, such as the editable
    install's finder, are not run), so nothing of the checkout can leak in."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True)
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = next(p for p in sys.path if p.endswith("site-packages"))
    (Path(site) / "borrowed_dependencies.pth").write_text(ours + "\n")
    folder = tmp_path / "empty"
    folder.mkdir()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(Path.home()),
        "AXR_DATA": str(tmp_path / "data"),
        "HF_HUB_OFFLINE": "1",
        "COLUMNS": "200",
    }

    def run(*args, check=True):
        return subprocess.run(list(args), cwd=folder, env=env, capture_output=True, text=True, check=check)

    for module in ("reasoning", "eval", "training", "prompts"):
        assert run(str(python), "-c", f"import {module}", check=False).returncode == 1, module
    assert run(str(python), "-c", "import axr.eval.runner, axr.training.recipe").returncode == 0
    validate = run("axr", "eval", "validate", check=False)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    result = run("axr", "eval", "run", "ped2")
    assert "pooled frame AUC 98.00% on 8 held-out videos" in " ".join(result.stderr.split())
    metrics = json.loads((folder / "runs" / "ped2" / "metrics.json").read_text())
    assert round(metrics["frame_auc_pooled"], 4) == 0.98
    assert "tiny-sft" in run(str(python), "-m", "axr", "train", "configs").stdout
    no_dataset = run("axr", "train", "sft", "--config", "tiny-sft", "--dataset", str(folder / "absent"), check=False)
    assert no_dataset.returncode == 2 and "absent" in no_dataset.stderr and "unknown recipe" not in no_dataset.stderr
