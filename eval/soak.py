"""The scoring stage under faults at scale (`axr eval bench soak`).

N distinct captions are scored (one token each, `CaptionScorer`) through a server behind the fault proxy
(`axr.eval.fault_proxy`: a share of the requests meets 1-2 dropped connections, 5xx, 429 or hangs). The run
is a child process, SIGKILLed at a seeded random point and run again; on Ray (`engine="ray"`) one actor of
the pool is killed as well while it scores. Then the journal is read back: every caption scored exactly
once (no duplicate key, none lost), and the rerun asked only what the killed run had not journaled. The child
reports its peak memory as the journal grows, so a leak shows as a climb from 1k to 10k captions.
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPORT = "soak-report "  # the child's progress lines on stdout start with this
SUBJECTS = ["A man", "A woman", "Two people", "A child", "A worker", "A cyclist", "A group of students", "An old man"]
ACTIONS = ["walks", "runs", "stands", "rides a bicycle", "carries a box", "waits", "talks on a phone", "sits"]
PLACES = ["on the walkway", "near the trees", "by the building", "on the road", "at the gate", "in the square"]


def soak_captions(n: int) -> list[str]:
    """n distinct captions in the shape captioners write (the frame number keeps each one distinct)."""
    shapes = [(s, a, p) for s in SUBJECTS for a in ACTIONS for p in PLACES]
    return [f"{s} {a} {p}. Frame {i}." for i, (s, a, p) in ((i, shapes[i % len(shapes)]) for i in range(n))]


@dataclass
class SoakSettings:
    base_url: str  # the real server (e.g. `axr serve smollm2`); the proxy stands in front of it
    model: str = "smollm2"
    captions: int = 10_000
    fault_share: float = 0.3  # requests whose first try meets a fault
    kill: bool = True  # SIGKILL the first run at a random point, then rerun
    engine: str = "local"  # or ray: the requests go through a pool of actors, one of which is killed
    workers: int = 2
    ray_address: str | None = None
    concurrency: int = 8
    seed: int = 0
    time_limit_s: float = 3600.0
    rules: str = "surveillance"


@dataclass
class ChildRun:
    """What one scoring process reported: its progress lines and how it ended."""

    reports: list[dict] = field(default_factory=list)
    returncode: int | None = None
    killed: bool = False
    actor_killed: bool = False
    seconds: float = 0.0


def run_soak(settings: SoakSettings, folder: Path, on_message=print) -> dict:
    """The soak's figures; `folder` holds the captions, the journal and each run's log."""
    from axr.eval.fault_proxy import FaultProxy

    folder.mkdir(parents=True, exist_ok=True)
    captions = soak_captions(settings.captions)
    (folder / "captions.json").write_text(json.dumps(captions))
    journal = folder / "scores.jsonl"
    journal.unlink(missing_ok=True)
    rng = random.Random(settings.seed)
    # on Ray the driver stays (a killed driver would orphan the Ray it started); one of its actors is killed
    on_ray = settings.engine == "ray"
    kill_at = int(settings.captions * rng.uniform(0.2, 0.8)) if settings.kill and not on_ray else None
    deadline = time.monotonic() + settings.time_limit_s
    started = time.perf_counter()
    with FaultProxy(settings.base_url, seed=settings.seed, share=settings.fault_share) as proxy:
        child = {**settings.__dict__, "base_url": proxy.base_url, "folder": str(folder)}
        runs = [_run_child(child, folder / "run-1.log", kill_at, on_ray and settings.kill, deadline, on_message)]
        if runs[0].killed:
            before = len({record["key"] for record in _journal_records(journal)})
            on_message(f"killed the run at {before} journaled captions; running it again")
            runs.append(_run_child(child, folder / "run-2.log", None, False, deadline, on_message))
        else:
            before = None
        wall = time.perf_counter() - started
        figures = _figures(settings, captions, journal, runs, before, proxy, wall)
    (folder / "soak.json").write_text(json.dumps(figures, indent=2))
    return figures


def _run_child(child: dict, log: Path, kill_at: int | None, kill_actor: bool, deadline: float, on_message):
    """One scoring process (`python -m axr.eval.soak`), SIGKILLed once `kill_at` captions are journaled; with
    `kill_actor`, one Ray actor is SIGKILLed once a tenth of the captions are."""
    run = ChildRun()
    started = time.perf_counter()
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "axr.eval.soak", json.dumps(child)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        for line in process.stdout:
            if not line.startswith(REPORT):
                continue  # what else the child's libraries print (Ray's worker logs)
            report = json.loads(line.removeprefix(REPORT))
            run.reports.append(report)
            if kill_actor and not run.actor_killed and report["journal"] >= child["captions"] // 10:
                run.actor_killed = _kill_an_actor(on_message)
            if (kill_at is not None and report["journal"] >= kill_at) or time.monotonic() > deadline:
                process.send_signal(signal.SIGKILL)
                run.killed = True
                break
        run.returncode = process.wait()
    run.seconds = time.perf_counter() - started
    if run.returncode not in (0, -signal.SIGKILL):
        raise RuntimeError(f"the scoring run exited {run.returncode}; see {log}")
    return run


def _kill_an_actor(on_message) -> bool:
    """SIGKILL one process Ray titled `ray::BackendActor` (a pool actor); Ray restarts it and retries its call."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::BackendActor"):
            os.kill(int(entry.name), signal.SIGKILL)
            on_message(f"killed a Ray actor (pid {entry.name}) while it scored")
            return True
    return False


def _journal_records(journal: Path) -> list[dict]:
    records = []
    for line in journal.read_text(encoding="utf-8").splitlines() if journal.is_file() else []:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a torn last line of the killed run: the rerun's journal drops it
    return records


def _figures(settings, captions, journal, runs, before, proxy, wall) -> dict:
    from axr.reasoning.scoring import normalise

    records = _journal_records(journal)
    keys = [record["key"] for record in records]
    scored = {record["caption"] for record in records}
    last = runs[-1].reports[-1] if runs[-1].reports else {}
    peaks = [(r["journal"], r["peak_rss_mb"]) for run in runs for r in run.reports]
    return {
        "captions": len(captions),
        "engine": settings.engine,
        "fault_share": settings.fault_share,
        "requests_sent": sum(proxy.tries.values()),
        "faults_injected": sum(proxy.injected.values()),
        "faults_by_kind": dict(proxy.injected),
        "retries": sum(proxy.tries.values()) - len(proxy.schedules),
        "forwarded": proxy.forwarded,
        "captions_scored": len(set(keys)),
        "duplicates": len(keys) - len(set(keys)),
        "lost": len({normalise(c) for c in captions} - scored),
        "actor_killed": any(run.actor_killed for run in runs),
        "killed_at": before,
        "rerun_asked": last.get("asked") if before is not None else None,
        "rerun_asked_only_missing": None if before is None else last.get("asked") == len(captions) - before,
        "unanswered": last.get("unanswered"),
        "peak_rss_mb_at_1k": next((mb for n, mb in peaks if n >= 1000), None),
        "peak_rss_mb_at_kill": runs[0].reports[-1]["peak_rss_mb"] if before is not None and runs[0].reports else None,
        "peak_rss_mb_at_end": peaks[-1][1] if peaks else None,
        "wall_s": round(wall, 1),
    }


def _peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM where Linux has it (getrusage's maxrss carries the parent's
    peak across fork and exec, so a child of a large process would report its parent's)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)  # kB
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def score_in_this_process(child: dict) -> None:
    """The child: score every caption not in the journal yet, printing a JSON report after each chunk."""
    from axr.eval.task_config import RecheckConfig
    from axr.reasoning.backends import settings_backend
    from axr.reasoning.rulebook_import import load_rules
    from axr.reasoning.scoring import CaptionScorer

    folder = Path(child["folder"])
    captions = json.loads((folder / "captions.json").read_text())
    endpoint = RecheckConfig(
        model=child["model"], base_url=child["base_url"], concurrency=child["concurrency"], timeout_s=600
    )
    book, journal = load_rules(child["rules"]), folder / "scores.jsonl"
    if child["engine"] == "ray":
        from axr.eval.ray_engine import PooledBackend, ray_cluster

        with ray_cluster(child["ray_address"], lambda message: None):
            pool = PooledBackend(endpoint, child["workers"], text_only=True)
            _score(CaptionScorer(pool, book, journal), captions)
        return
    _score(CaptionScorer(settings_backend(endpoint, text_only=True), book, journal), captions)


def _score(scorer, captions: list[str]) -> None:
    def report(done: int, total: int) -> None:
        line = {"asked": scorer.asked, "journal": len(scorer.journal.records), "peak_rss_mb": _peak_rss_mb()}
        print(REPORT + json.dumps(line), flush=True)

    scorer.score(captions, on_progress=report)
    line = {"asked": scorer.asked, "unanswered": scorer.unanswered, "journal": len(scorer.journal.records)}
    print(REPORT + json.dumps({**line, "peak_rss_mb": _peak_rss_mb(), "done": True}), flush=True)


def summary_lines(figures: dict) -> list[str]:
    """The soak's figures as a person reads them."""
    f = figures
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(Counter(f["faults_by_kind"]).items()))
    lines = [
        f"{f['captions']} distinct captions on {f['engine']}, {f['fault_share']:.0%} of requests faulted: "
        f"{f['requests_sent']} requests sent, {f['faults_injected']} faults injected ({kinds}), "
        f"{f['retries']} retries",
        f"scored {f['captions_scored']}, duplicates {f['duplicates']}, lost {f['lost']}, "
        f"unanswered {f['unanswered']}; wall {f['wall_s']} s",
    ]
    peaks = {
        "at 1k captions journaled": "peak_rss_mb_at_1k",
        "when killed": "peak_rss_mb_at_kill",
        "at the end": "peak_rss_mb_at_end",
    }
    said = [f"{f[key]} MB {when}" for when, key in peaks.items() if f[key] is not None]
    lines.append(f"peak memory of the scoring process: {', '.join(said)}")
    if f["actor_killed"]:
        lines.append("a Ray actor was SIGKILLed while it scored; Ray restarted it and retried its call")
    if f["killed_at"] is not None:
        lines.append(
            f"SIGKILLed at {f['killed_at']} journaled; the rerun asked {f['rerun_asked']} "
            f"({'only the missing ones' if f['rerun_asked_only_missing'] else 'NOT only the missing ones'})"
        )
    return lines


if __name__ == "__main__":
    score_in_this_process(json.loads(sys.argv[1]))
