"""The scoring stage under faults, a kill and a Ray actor's death: a short soak in the default run, the 10k-caption
soak of `axr eval bench soak` under the `soak` marker (pytest -m soak)."""

from __future__ import annotations

import json

import pytest

from axr.eval.soak import SoakSettings, run_soak, soak_captions, summary_lines
from tests.conftest import run_axr


def _assert_whole(figures: dict, captions: int) -> None:
    assert figures["captions_scored"] == captions and figures["duplicates"] == 0 and figures["lost"] == 0
    assert figures["unanswered"] == 0 and figures["faults_injected"] > 0 and figures["retries"] > 0
    assert figures["forwarded"] >= captions  # each caption reached the server at least once


def test_soak_captions_are_distinct_and_fixed():
    assert len(set(soak_captions(5000))) == 5000 and soak_captions(3) == soak_captions(3)


def test_a_short_soak_scores_each_caption_once_through_faults_and_a_sigkill(tmp_path, vllm_server):
    figures = run_soak(SoakSettings(vllm_server.base_url, captions=200, seed=1), tmp_path / "soak", print)
    print("\n".join(summary_lines(figures)))
    _assert_whole(figures, 200)
    assert figures["killed_at"] is not None and 40 <= figures["killed_at"] < 200
    assert figures["rerun_asked"] == 200 - figures["killed_at"] and figures["rerun_asked_only_missing"]
    assert json.loads((tmp_path / "soak" / "soak.json").read_text()) == figures


def test_a_short_soak_on_ray_survives_an_actor_killed_while_scoring(tmp_path, vllm_server, ray_head):
    settings = SoakSettings(vllm_server.base_url, captions=200, engine="ray", ray_address=ray_head, seed=2)
    figures = run_soak(settings, tmp_path / "soak", print)
    print("\n".join(summary_lines(figures)))
    _assert_whole(figures, 200)
    assert figures["actor_killed"] and figures["killed_at"] is None


def test_the_bench_command_prints_the_figures_and_fails_on_a_server_that_is_not_there(tmp_path):
    from axr.reasoning.vllm_server import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    args = ("eval", "bench", "soak", "--base-url", url, "--captions", "20", "--no-kill", "--time-limit", "120")
    result = run_axr(*args, "--out", str(tmp_path / "s"), check=False)
    figures = json.loads((tmp_path / "s" / "soak.json").read_text())
    assert result.returncode == 1 and figures["lost"] == 20 and figures["unanswered"] == 20
    assert "lost 20" in result.stdout


@pytest.mark.soak
def test_the_10k_caption_soak(tmp_path, vllm_server):
    figures = run_soak(SoakSettings(vllm_server.base_url, captions=10_000), tmp_path / "soak", print)
    print("\n".join(summary_lines(figures)))
    _assert_whole(figures, 10_000)
    assert figures["rerun_asked_only_missing"]
    assert figures["peak_rss_mb_at_end"] < 1.5 * figures["peak_rss_mb_at_1k"]  # memory flat, not growing with N
