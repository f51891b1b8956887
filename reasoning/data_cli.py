"""`axr data ...`: what data AXR ships, what it can fetch, and where fetched data goes."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from axr.reasoning import resources
from axr.reasoning.console import err

app = typer.Typer(help="Data sets: embedded in AXR, or fetched once for users with the network.", no_args_is_help=True)


@app.command("list", epilog="Examples:\n\n  axr data list\n\n  AXR_DATA=/big/disk axr data list")
def list_data():
    """What is embedded, what can be fetched, and where fetched data goes ($AXR_DATA or ~/.cache/axr/data)."""
    table = Table(title=f"data folder: {resources.data_root()}", title_justify="left")
    for column in ("set", "embedded", "fetched", "what"):
        table.add_column(column, overflow="fold")
    for row in resources.describe():
        fetched = row["fetched"] or f"no: axr data fetch {row['name']}"
        if row["source"]:
            fetched += f"\n(from {row['source']['source']})"
        table.add_row(row["name"], ", ".join(row["embedded"]) or "-", fetched, row["description"])
    Console(width=max(Console().width, 120)).print(table)
    err.print("tasks read these as data:SET/PATH, e.g. data:anomalyruler/ped2", highlight=False)


@app.command(
    "fetch",
    epilog="Examples:\n\n  axr data fetch anomalyruler\n\n"
    "  axr data fetch anomalyruler --archive AnomalyRuler-main.tar.gz   (downloaded elsewhere)\n\n"
    "  axr data fetch ucf-crime                        (3 files from raw.githubusercontent.com, ~4 MB)",
)
def fetch(
    name: str = typer.Argument(..., help="a data set from `axr data list`"),
    url: str = typer.Option(
        None, help="download from here instead of the set's public archive (a set built from files: a mirror root)"
    ),
    archive: Path = typer.Option(None, help="a copy of the archive already on this machine (no network)"),
    timeout: float = typer.Option(60.0, help="seconds to wait for the server between bytes"),
):
    """Download a data set's public archive, check its layout, and install it into the data folder."""
    with Progress(
        TextColumn(f"fetch {name}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err, transient=True
    ) as bar:
        job = bar.add_task(name, total=None)

        def show(done: int, total: int | None) -> None:
            bar.update(job, completed=done, total=total)

        folder = resources.fetch(name, url=url, archive=archive, timeout=timeout, on_bytes=show)
    err.print(f"installed {name} in {folder} (source and sha256 in {folder / 'SOURCE.json'})", highlight=False)
