"""The run manifest ``<root>/run.json``: what a run is, so everything that reads it knows.

``smpp run`` writes it at the start (status ``running``), after every stage and at the end
(``complete``, ``failed`` or ``interrupted``). In a DVC checkout the ``catalog`` stage, the last
one ``dvc repro`` runs, writes it (``created_by: dvc repro``), and every stage run on its own
(``python -m pipelines.<stage>``) first marks it ``incomplete``.

It holds the params (after the ``--mode`` overrides), the SMPD directory, the SMPD fingerprint
(``fingerprint.smpd_fingerprint``), the code version, the mode, and per stage its status,
seconds and the fingerprint ``smpp run`` uses to skip unchanged stages (``pipelines.incremental``).

Readers (``smpp predict``, ``similar``, ``errors``, ``sql``) call ``open_run``: a root with no
manifest, or whose run is not complete, is refused with a one-line ``RunRefused``; nothing falls
back to default params or to ``<root>/data/raw/smpd``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from featurestore.config import load_params
from pipelines.fingerprint import FileHasher, code_version, smpd_fingerprint
from pipelines.stage_cli import write_json

log = logging.getLogger(__name__)

MANIFEST = "run.json"
VERSION = 1
OUTPUT_DIRS = ("data", "reports")  # what a run writes under its root; all `--force` removes
SMPP_RUN, DVC_RUN = "smpp run", "dvc repro"


class RunRefused(Exception):
    """A run that cannot be read or written as asked; the message is one line saying what to do."""


def manifest_path(root: Path) -> Path:
    return Path(root) / MANIFEST


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def read_manifest(root: Path) -> dict | None:
    """The manifest of ``root``; None when there is none; RunRefused when it cannot be read."""
    path = manifest_path(root)
    if not path.is_file():
        return None
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise RunRefused(f"{path}: unreadable run manifest ({e})") from None
    if not isinstance(m, dict) or m.get("manifest_version") != VERSION:
        raise RunRefused(f"{path}: not a version-{VERSION} run manifest")
    return m


def write_manifest(root: Path, manifest: dict) -> None:
    write_json(manifest_path(root), manifest)


# ---------------------------------------------------------------- readers

@dataclass(frozen=True)
class RunView:
    """A complete run, as its readers need it."""

    root: Path
    manifest: dict
    params: dict
    smpd_dir: Path


def require_complete(root: Path) -> dict:
    """The manifest of a complete run under ``root``; RunRefused otherwise."""
    m = read_manifest(root)
    if m is None:
        raise RunRefused(f"{root}: no run manifest ({MANIFEST}): run `dvc repro` (DVC checkout) or "
                         f"`smpp run --workdir {root} ...` first")
    status = m.get("status")
    if status == "complete":
        return m
    where = f"the run in {root}"
    if status == "running":
        raise RunRefused(f"{where} has not finished (status running since {m.get('started_at')}, pid "
                         f"{m.get('pid')}): wait for it, or rerun `smpp run` if it was killed")
    if status in ("failed", "interrupted"):
        raise RunRefused(f"{where} {status} at stage {m.get('failed_stage')}: {m.get('error')}; "
                         f"fix it and rerun `smpp run` (unchanged stages are skipped)")
    raise RunRefused(f"{where} is {status}: {m.get('note', 'not every stage finished')}")


def _smpd_of(root: Path, m: dict) -> Path:
    d = Path(m["smpd_dir"])
    return d if d.is_absolute() else Path(root) / d


def open_run(root: Path, smpd_dir: Path | None = None, params_file: Path | None = None,
             need_smpd: bool = False) -> RunView:
    """The complete run under ``root``: its manifest, params and SMPD directory.

    ``smpd_dir`` overrides the recorded directory (a data set that moved); ``params_file`` is
    only accepted when it holds the run's own params. ``need_smpd``: refuse when the SMPD
    directory is gone (prediction reads images and user history from it).
    """
    m = require_complete(root)
    params = m.get("params") or {}
    if params_file is not None:
        given = load_params(params_file)
        if given != params:
            diff = sorted(k for k in set(given) | set(params) if given.get(k) != params.get(k))
            raise RunRefused(f"{params_file} is not the params of the run in {root} (sections differ: "
                             f"{', '.join(diff)}); leave out --params to use the run's own")
    smpd = Path(smpd_dir) if smpd_dir is not None else _smpd_of(root, m)
    if need_smpd and not smpd.is_dir():
        raise RunRefused(f"the SMPD directory of the run in {root}, {smpd}, does not exist: pass --smpd-dir")
    return RunView(root=Path(root), manifest=m, params=params, smpd_dir=smpd)


# ---------------------------------------------------------------- smpp run

def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_outputs(root: Path) -> list[Path]:
    """``--force``: remove ``<root>/data`` and ``<root>/reports`` (and nothing else); returns what went."""
    gone = []
    for name in OUTPUT_DIRS:
        d = Path(root) / name
        if d.is_symlink() or d.is_file():
            d.unlink()
            gone.append(d)
        elif d.is_dir():
            shutil.rmtree(d)
            gone.append(d)
    return gone


def check_workdir(root: Path, smpd_dir: Path, force: bool) -> dict | None:
    """The previous manifest ``smpp run`` may build on, or None for a fresh run; refuses a workdir it cannot reuse.

    Reused: a workdir whose manifest was written by ``smpp run`` on the same SMPD directory (changed
    params or file contents only rerun the stages they affect). Refused without ``force``: outputs
    with no manifest, another run's manifest (DVC, or another SMPD directory). Always refused: a
    run still writing there. ``force`` removes data/ and reports/ first.
    """
    root = Path(root)
    try:
        prev = read_manifest(root)
    except RunRefused:
        prev = {"created_by": "unknown"}
    if prev and prev.get("status") == "running" and prev.get("host") == socket.gethostname() \
            and _pid_alive(prev.get("pid")) and prev.get("pid") != os.getpid():
        raise RunRefused(f"another smpp run (pid {prev['pid']}) is writing {root}; wait for it or stop it")
    problem = None
    if prev is None:
        present = [n for n in OUTPUT_DIRS if (root / n).exists()]
        if present:
            problem = f"{root} holds {' and '.join(n + '/' for n in present)} but no run manifest ({MANIFEST})"
    elif prev.get("created_by") != SMPP_RUN:
        problem = f"{root} holds a run made by {prev.get('created_by')}, not by smpp run"
    elif Path(prev.get("smpd_dir", "")) != Path(smpd_dir).resolve():
        problem = f"{root} holds a run on {prev.get('smpd_dir')}, not on {Path(smpd_dir).resolve()}"
    if problem is None:
        return prev
    if not force:
        raise RunRefused(f"{problem}: use another --workdir, or --force to delete {root}/data and {root}/reports first")
    smpd = Path(smpd_dir).resolve()
    for name in OUTPUT_DIRS:
        if smpd.is_relative_to((root / name).resolve()):
            raise RunRefused(f"{problem}, and --force would delete the SMPD directory {smpd} with {root / name}: "
                             f"use another --workdir")
    gone = clean_outputs(root)
    log.warning("--force: removed %s", ", ".join(map(str, gone)) or "nothing")
    return None


def new_manifest(*, smpd_dir: Path, params: dict, mode: str, stages: tuple[str, ...], hasher: FileHasher,
                 created_by: str = SMPP_RUN) -> dict:
    """A manifest with status ``running``: inputs fingerprinted, every stage pending."""
    return {"manifest_version": VERSION, "created_by": created_by, "status": "running", "mode": mode,
            "smpd_dir": str(Path(smpd_dir).resolve()), "params": params,
            "inputs": smpd_fingerprint(smpd_dir, hasher), "code": code_version(),
            "started_at": now(), "finished_at": None, "seconds": None, "pid": os.getpid(),
            "host": socket.gethostname(), "failed_stage": None, "error": None,
            "stages": {s: {"status": "pending"} for s in stages}}


# ---------------------------------------------------------------- DVC

def mark_incomplete(root: Path, stage: str) -> None:
    """A stage is about to run on its own: the recorded run no longer describes ``root`` until a full run."""
    try:
        m = read_manifest(root)
    except RunRefused:
        return
    if m is None or m.get("status") == "running":
        return
    m.update(status="incomplete", note=f"stage {stage} ran on its own after the run was recorded; `dvc repro` "
                                       f"(or `smpp run`) records a complete run again")
    write_manifest(root, m)


def record_dvc_run(root: Path, params_file: Path, smpd_dir: Path | None) -> dict:
    """The manifest of a ``dvc repro`` checkout (written by the catalog stage, the last one)."""
    from pipelines.runner import select_stages
    from pipelines.stage_io import resolve, stage_io
    from featurestore.paths import Paths

    root = Path(root)
    params = load_params(params_file) if Path(params_file).is_file() else {}
    paths = Paths(root=root, smpd=smpd_dir)
    stages = select_stages(params)
    done = {s: all(resolve(o, paths).exists() for o in stage_io(s, params).outputs) for s in stages}
    smpd = paths.smpd_dir.resolve()
    try:
        smpd_rec = str(smpd.relative_to(root.resolve()))
    except ValueError:
        smpd_rec = str(smpd)
    m = {"manifest_version": VERSION, "created_by": DVC_RUN, "mode": "dvc",
         "status": "complete" if all(done.values()) else "incomplete",
         "smpd_dir": smpd_rec, "params": params, "inputs": smpd_fingerprint(smpd), "code": code_version(),
         "finished_at": now(), "failed_stage": None, "error": None,
         "stages": {s: {"status": "done" if ok else "missing"} for s, ok in done.items()}}
    if not all(done.values()):
        m["note"] = f"outputs missing of stage(s) {', '.join(s for s, ok in done.items() if not ok)}: run `dvc repro`"
    write_manifest(root, m)
    return m
