"""Where AXR's files come from: package data, embedded data sets, and data sets fetched once by `axr data`.

Everything a command reads by name (prompts, task files, recipes, rule books, caption sets) ships inside the
package or lands in the data folder; nothing is looked up beside a source checkout or in the working
directory. A *data reference* `data:<set>/<path>` (e.g. `data:anomalyruler/ped2`) names a file or folder of a
known data set. It resolves to the set's embedded copy (an xz tar in `axr.reasoning.data`, unpacked once
into the data folder) when that copy has the path, else to what `axr data fetch <set>` downloaded. The data
folder is `$AXR_DATA`, else `$AXR_CACHE/data` (default `~/.cache/axr/data`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from axr.reasoning.data import ucf_crime

DATA_PREFIX = "data:"


class DataError(ValueError):
    """A data set is missing, incomplete or could not be fetched; the message says what to do."""


def package_dir(package: str) -> Path:
    """The folder of an installed AXR package (pip always installs wheels unpacked, so this is a real path)."""
    return Path(str(resources.files(package)))


def cache_dir() -> Path:
    """AXR's cache ($AXR_CACHE, default ~/.cache/axr): built models, embeddings, captions. Read when called,
    so a process (or a test) that changes $AXR_CACHE is heard at once."""
    return Path(os.environ.get("AXR_CACHE", Path.home() / ".cache" / "axr")).expanduser()


def data_root() -> Path:
    if env := os.environ.get("AXR_DATA"):
        return Path(env).expanduser()
    return cache_dir() / "data"


@dataclass(frozen=True)
class DataSet:
    name: str
    description: str
    url: str  # the public archive `axr data fetch` downloads
    required: tuple[str, ...]  # paths a complete copy has (the layout check)
    embedded: str | None = None  # archive in axr.reasoning.data holding part of the set
    # A set built from files instead of unpacked from an archive: their paths under `url` (a raw-file root such
    # as raw.githubusercontent.com, or a mirror of it), and the function writing the layout from them
    sources: tuple[str, ...] = ()
    build: Callable[[dict[str, Path], Path], int] | None = None


ANOMALYRULER_COMMIT = "210ce0b5470152ac0361691706bf49e291e1c47d"
DATASETS = {
    "anomalyruler": DataSet(
        name="anomalyruler",
        description="AnomalyRuler's per-frame captions, labels and rule books (MIT): ped2, SHTech, avenue, UBNormal",
        url=f"https://github.com/Yuchen413/AnomalyRuler/archive/{ANOMALYRULER_COMMIT}.tar.gz",
        required=tuple(
            f"{s}/{part}"
            for s in ("ped2", "SHTech", "avenue", "UBNormal")
            for part in ("test_frame_description", "test_frame")
        )
        + tuple(f"rule/rule_{s}.txt" for s in ("ped2", "SHTech", "avenue", "UBNormal")),
        embedded="anomalyruler.tar.xz",
    ),
    "ucf-crime": DataSet(
        name="ucf-crime",
        description="UCF-Crime's 290 test videos as CoReVAD's captions (a line a second; no licence: fetched, "
        "never shipped) with VadCLIP's labels (Apache-2.0)",
        url="https://raw.githubusercontent.com",
        required=("test_frame_description", "test_frame"),
        sources=ucf_crime.SOURCES,
        build=ucf_crime.build,
    ),
}


def is_data_ref(value: str | os.PathLike | None) -> bool:
    return isinstance(value, str) and value.startswith(DATA_PREFIX)


def resolve(value: str | os.PathLike) -> Path:
    """A path as given (`~` expanded), or the file/folder a `data:` reference names."""
    if not is_data_ref(value):
        return Path(value).expanduser()
    name, _, inner = str(value)[len(DATA_PREFIX) :].partition("/")
    dataset = _dataset(name)
    for root in (embedded_root(dataset), fetched_root(dataset)):
        if root is not None and (root / inner).exists():
            return root / inner
    raise DataError(
        f"{value}: not on this machine; run `axr data fetch {name}` (downloads {dataset.url}), "
        f"or unpack that archive by hand into {data_root() / name}"
    )


def _dataset(name: str) -> DataSet:
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def embedded_root(dataset: DataSet) -> Path | None:
    """The embedded copy, unpacked once into the data folder (a folder named by the archive's hash, so a new
    AXR release with new data never reads an old copy)."""
    if dataset.embedded is None:
        return None
    archive = package_dir("axr.reasoning.data") / dataset.embedded
    target = data_root() / ".embedded" / f"{dataset.name}-{_digest(archive)}"
    if not target.is_dir():
        _unpack(archive, target, dataset.name)
    return target


@functools.cache
def _digest(archive: Path) -> str:
    """The shipped archive never changes while AXR runs: hash it once per process, not per data reference."""
    return hashlib.sha256(archive.read_bytes()).hexdigest()[:12]


def fetched_root(dataset: DataSet) -> Path | None:
    root = data_root() / dataset.name  # `axr data fetch` puts it here, with SOURCE.json; a person may too
    return root if root.is_dir() else None


def _unpack(archive: Path, target: Path, top: str) -> None:
    """Unpack `archive` (whose members sit under one top folder) into `target`, atomically: a reader never
    sees half a data set, and two processes unpacking at once both end with a whole one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".unpack-") as scratch:
        try:
            with tarfile.open(archive) as tar:
                _extract(tar, Path(scratch))
        except (tarfile.TarError, EOFError, OSError) as error:
            raise DataError(f"{archive}: not a complete archive ({error})") from None
        tops = [p for p in Path(scratch).iterdir()]
        if len(tops) != 1 or not tops[0].is_dir():
            raise DataError(f"{archive}: expected one top folder ({top}/...), found {len(tops)} entries")
        try:
            tops[0].rename(target)
        except OSError:
            if not target.is_dir():  # somebody else's rename won the race only if the folder is now there
                raise


def _extract(tar: tarfile.TarFile, into: Path) -> None:
    # The "data" filter refuses absolute paths, `..`, links out of the folder and device files.
    if hasattr(tarfile, "data_filter"):
        tar.extractall(into, filter="data")
        return
    for member in tar.getmembers():  # Python without extraction filters: refuse the same things by hand
        if member.name.startswith("/") or ".." in Path(member.name).parts or not (member.isfile() or member.isdir()):
            raise tarfile.TarError(f"unsafe member {member.name!r}")
    tar.extractall(into)


def missing_paths(root: Path, dataset: DataSet) -> list[str]:
    return [p for p in dataset.required if not (root / p).exists()]


def fetch(
    name: str, url: str | None = None, archive: Path | None = None, timeout: float = 60.0, on_bytes=None
) -> Path:
    """Download (or take from `archive`) the set's public archive, check its layout, and install it as
    `<data folder>/<name>` with a SOURCE.json (source, sha256, size, date). Returns that folder."""
    dataset = _dataset(name)
    if archive and dataset.sources:
        raise DataError(f"{name} is built from files, not an archive: use --url with a mirror of {dataset.url}")
    source = str(archive) if archive else (url or dataset.url).rstrip("/")
    root = data_root()
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".fetch-{name}-") as scratch:
        unpacked = Path(scratch) / "unpacked"
        if dataset.sources:
            record = _build(dataset, source, Path(scratch), unpacked, timeout, on_bytes)
        else:
            download = (
                Path(archive) if archive else _download(source, Path(scratch) / "archive", dataset, timeout, on_bytes)
            )
            _unpack(download, unpacked, f"{name} archive")
            record = {"source": source, **_file_record(download)}
        missing = missing_paths(unpacked, dataset)
        if missing:
            shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
            raise DataError(f"{source}: not {name}'s layout (missing {shown}); nothing was installed")
        record["fetched"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        (unpacked / "SOURCE.json").write_text(json.dumps(record, indent=2) + "\n")
        target = root / name
        if target.exists():
            shutil.rmtree(target)
        unpacked.rename(target)
    return target


def _file_record(path: Path) -> dict:
    return {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "bytes": path.stat().st_size}


def _build(dataset: DataSet, root_url: str, scratch: Path, into: Path, timeout: float, on_bytes) -> dict:
    """Download each of the set's source files under `root_url` and build its layout from them into `into`."""
    files = {}
    for i, source in enumerate(dataset.sources):
        files[source] = _download(f"{root_url}/{source}", scratch / f"source-{i}", dataset, timeout, on_bytes)
    try:
        videos = dataset.build(files, into)
    except ValueError as error:
        raise DataError(f"{dataset.name}: {error}; nothing was installed") from None
    return {
        "source": root_url,
        "files": {f"{root_url}/{source}": _file_record(path) for source, path in files.items()},
        "videos": videos,
    }


def _download(url: str, into: Path, dataset: DataSet, timeout: float, on_bytes) -> Path:
    import httpx

    by_hand = (
        f"download it elsewhere and run `axr data fetch {dataset.name} --archive FILE`, "
        f"or unpack it by hand into {data_root() / dataset.name}"
        if not dataset.sources
        else f"run `axr data fetch {dataset.name} --url ROOT` with a mirror of {dataset.url}"
    )
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=timeout) as response:
            if response.status_code != 200:
                raise DataError(f"cannot download {url}: HTTP {response.status_code}; {by_hand}")
            expected = int(response.headers.get("content-length") or 0) or None
            received = 0
            with into.open("wb") as out:
                for chunk in response.iter_bytes(1 << 16):
                    out.write(chunk)
                    received += len(chunk)
                    if on_bytes:
                        on_bytes(received, expected)
    except httpx.HTTPError as error:
        kind = "truncated download" if isinstance(error, httpx.RemoteProtocolError) else "cannot download"
        raise DataError(f"{kind} {url} ({type(error).__name__}: {error}); {by_hand}") from None
    if expected is not None and received != expected:
        raise DataError(f"truncated download {url}: {received} of {expected} bytes; {by_hand}")
    return into


def describe() -> list[dict]:
    """What each known set has on this machine: embedded parts, the fetched copy and its source."""
    rows = []
    for dataset in DATASETS.values():
        embedded = embedded_root(dataset)
        fetched = fetched_root(dataset)
        source_file = fetched / "SOURCE.json" if fetched else None
        source = json.loads(source_file.read_text()) if source_file and source_file.is_file() else None
        rows.append(
            {
                "name": dataset.name,
                "description": dataset.description,
                "embedded": sorted(p.name for p in embedded.iterdir()) if embedded else [],
                "fetched": str(fetched) if fetched else None,
                "source": source,
                "url": dataset.url,
            }
        )
    return rows
