"""The front door and the documentation: the README stays short and every command of it runs (or, where it
needs a server, a GPU, the network or the user's own files, its --help does); the site builds in strict mode;
no link leaves the repository except to public upstream projects."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import REPO, run_axr

README = REPO / "README.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def readme_commands() -> list[tuple[list[str], bool]]:
    """(arguments after `axr`, runnable here) for every `axr` line of the README's bash blocks; a line whose
    comment says it "needs" something (a server, a GPU, the network, your files) is checked by --help."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for line in block.splitlines():
            code, _, comment = line.partition(" # ")
            words = shlex.split(code.strip())
            if words and words[0].endswith("axr"):
                commands.append((words[1:], "needs" not in comment))
    return commands


def command_path(args: list[str]) -> list[str]:
    """The subcommand names at the start of `args` (`eval run`, `data fetch`)."""
    from axr.cli import click_command

    path, command = [], click_command
    for word in args:
        children = getattr(command, "commands", {})
        if word not in children:
            break
        path.append(word)
        command = children[word]
    return path


def test_the_readme_is_a_short_front_door():
    lines = README.read_text().splitlines()
    assert len(lines) <= 150
    commands = readme_commands()
    assert ["eval", "run", "ped2"] in [args for args, _ in commands]
    assert len(commands) >= 10 and sum(runnable for _, runnable in commands) >= 5


@pytest.mark.parametrize("args, runnable", readme_commands(), ids=lambda x: " ".join(x) if isinstance(x, list) else "")
def test_every_readme_command_runs_or_explains_itself(args, runnable):
    if runnable:
        run_axr(*args)
    else:
        path = command_path(args)
        assert path, f"axr {' '.join(args)}: not an axr command"
        usage = " ".join(run_axr(*path, "--help").stdout.split())
        assert f"{' '.join(path)} [OPTIONS]" in usage


def test_links_stay_in_the_repository_or_go_upstream():
    pages = [README, *(REPO / "docs").rglob("*.md")]
    for page in pages:
        for target in LINK.findall(page.read_text()):
            if target.startswith(("http://", "https://")):
                assert "shared/" not in target, f"{page.name}: {target}"
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            assert path.is_relative_to(REPO) and path.exists(), f"{page.relative_to(REPO)}: broken link {target}"


def test_the_site_builds_strictly_with_the_cli_reference_and_data_cards(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr
    cli = (tmp_path / "site" / "cli" / "index.html").read_text()
    for command in ("eval run", "eval suite", "eval bench cost", "data fetch", "train sft", "detect"):
        assert f"axr {command}" in cli
    card = (tmp_path / "site" / "datasets" / "ucf_crime_captions" / "index.html").read_text()
    assert "VadCLIP" in card
    assert "pretty_name" not in (tmp_path / "site" / "datasets" / "mvtec_ad" / "index.html").read_text()
    assert (tmp_path / "site" / "assets" / "ui-verdict.png").stat().st_size > 10_000
