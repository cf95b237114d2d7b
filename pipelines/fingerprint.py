"""Fingerprints of what a run read: the SMPD directory, the files between stages, the code.

* ``smpd_fingerprint``: every file under the SMPD directory by relative name and size; metadata
  files (JSON, txt, anything that is not an image) also by a BLAKE2b hash of their content.
  Images count by name and size only: hashing 486k JPEGs would cost minutes at every run, and a
  JPEG rewritten in place with exactly the same byte size is the one change this does not see
  (``smpp run --force`` then). No modification times: a copied SMPD directory has the same
  fingerprint.
* ``FileHasher``: BLAKE2b content hashes of files and directories, cached by (size, mtime) so
  an unchanged file is read once, whatever the number of runs.
* ``code_version``: the package version, the git commit when the package sits in a git
  checkout, and a hash of the package sources and SQL files (what a stage's fingerprint uses:
  an uncommitted edit changes it too).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import subprocess
from pathlib import Path

from featurestore.atomic import TMP_SUFFIX

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
PACKAGES = ("featurestore", "models", "pipelines", "sql")
_REPO = Path(__file__).resolve().parents[1]
_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


def digest_of(obj: object) -> str:
    """A short stable hash of any JSON-serialisable value (dict keys sorted)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(TMP_SUFFIX)


def walk_files(root: Path) -> list[Path]:
    """Every plain file under ``root`` (sorted by relative path), temporary files of atomic writes excluded."""
    out: list[Path] = []
    stack = [Path(root)]
    while stack:
        d = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                if e.is_dir(follow_symlinks=True):
                    stack.append(Path(e.path))
                elif e.is_file(follow_symlinks=True) and not is_temp(e.name):
                    out.append(Path(e.path))
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


class FileHasher:
    """Content hashes of files and directories, with a cache ``key -> [size, mtime_ns, hash]``.

    ``cache`` is a plain dict so the run manifest can carry it from one run to the next.
    """

    def __init__(self, cache: dict | None = None) -> None:
        self.cache: dict[str, list] = dict(cache or {})

    def file(self, path: Path) -> str:
        st = path.stat()
        key = str(path.resolve())
        hit = self.cache.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        h = file_digest(path)
        self.cache[key] = [st.st_size, st.st_mtime_ns, h]
        return h

    def path(self, path: Path) -> str | None:
        """A file's hash, a directory's hash (its files' relative names and hashes), None when absent."""
        path = Path(path)
        if path.is_file():
            return self.file(path)
        if path.is_dir():
            return digest_of([(p.relative_to(path).as_posix(), self.file(p)) for p in walk_files(path)])
        return None

    def prune(self, keep_under: list[Path]) -> None:
        """Drop cache entries of files that no longer exist or lie outside ``keep_under``."""
        roots = [str(Path(p).resolve()) for p in keep_under]
        self.cache = {k: v for k, v in self.cache.items()
                      if any(k.startswith(r) for r in roots) and os.path.isfile(k)}


def smpd_fingerprint(smpd_dir: Path, hasher: FileHasher | None = None) -> dict:
    """Fingerprint of an SMPD directory (see the module doc): ``{"hash", "files", "images", "bytes", "method"}``."""
    smpd_dir = Path(smpd_dir)
    if not smpd_dir.is_dir():
        raise FileNotFoundError(f"SMPD directory {smpd_dir} does not exist")
    hasher = hasher or FileHasher()
    h = hashlib.blake2b(digest_size=16)
    files = images = size = 0
    for p in walk_files(smpd_dir):
        rel = p.relative_to(smpd_dir).as_posix()
        st = p.stat()
        files += 1
        size += st.st_size
        if p.suffix.lower() in IMAGE_SUFFIXES:
            images += 1
            h.update(f"{rel}\0{st.st_size}\n".encode())
        else:
            h.update(f"{rel}\0{st.st_size}\0{hasher.file(p)}\n".encode())
    return {"hash": h.hexdigest(), "files": files, "images": images, "bytes": size,
            "method": "blake2b over relative name + size of every file, + content hash of non-image files"}


def _git_commit(repo: Path) -> str | None:
    if not (repo / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def source_hash(repo: Path = _REPO) -> str:
    """Hash of every .py/.sql file of the packages (relative name + content)."""
    h = hashlib.blake2b(digest_size=16)
    for pkg in PACKAGES:
        d = repo / pkg
        if not d.is_dir():
            continue
        for p in walk_files(d):
            if p.suffix in (".py", ".sql") and "__pycache__" not in p.parts:
                h.update(f"{p.relative_to(repo).as_posix()}\0{file_digest(p)}\n".encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def code_version() -> dict:
    """``{"package", "version", "git_commit", "source_hash"}`` of the code running now (computed once per process)."""
    try:
        from importlib.metadata import version

        v = version("smpp")
    except Exception:  # noqa: BLE001 - not installed (run from a source tree)
        v = None
    return {"package": "smpp", "version": v, "git_commit": _git_commit(_REPO), "source_hash": source_hash()}


# Modules that run stages but do not change what a stage writes: left out of a stage's code hash.
RUN_MACHINERY = frozenset({"pipelines.cli", "pipelines.runner", "pipelines.manifest", "pipelines.incremental",
                           "pipelines.fingerprint", "pipelines.stage_io"})


def _module_file(mod: str) -> Path | None:
    parts = mod.split(".")
    if parts[0] not in PACKAGES:
        return None
    p = _REPO.joinpath(*parts)
    if (p / "__init__.py").is_file():
        return p / "__init__.py"
    return p.with_suffix(".py") if p.with_suffix(".py").is_file() else None


def _imported(file: Path, mod: str) -> set[str]:
    """Every module name ``file`` imports anywhere (function-level imports too), parents included."""
    pkg = mod if file.name == "__init__.py" else mod.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(file.read_bytes())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            names |= {base} | {f"{base}.{a.name}" for a in node.names}
    return {".".join(n.split(".")[:i]) for n in names for i in range(1, n.count(".") + 2)}


def module_closure(mod: str) -> dict[str, Path]:
    """The package modules ``mod`` imports, directly or not (``RUN_MACHINERY`` left out): name -> file."""
    seen: dict[str, Path] = {}
    todo = [mod]
    while todo:
        m = todo.pop()
        if m in seen or (m in RUN_MACHINERY and m != mod):
            continue
        f = _module_file(m)
        if f is None:
            continue
        seen[m] = f
        todo.extend(_imported(f, m))
    return seen


@functools.lru_cache(maxsize=None)
def stage_code_hash(stage: str) -> str:
    """Hash of the code stage ``stage`` runs: its module's import closure and every SQL file (once per process)."""
    files = set(module_closure(f"pipelines.{stage}").values()) | set((_REPO / "sql").glob("*.sql"))
    h = hashlib.blake2b(digest_size=16)
    for p in sorted(files):
        h.update(f"{p.relative_to(_REPO).as_posix()}\0{file_digest(p)}\n".encode())
    return h.hexdigest()
