"""``smpp run`` into a workdir it ran before: skip what is unchanged, the way ``dvc repro`` does.

A stage's fingerprint is (the values of its params sections, the hash of the code it runs (its
module's import closure in the package and the SQL files, ``fingerprint.stage_code_hash``), the
content hash of each input file or directory, ``pipelines.stage_io``). A stage reruns when its last
record is not ``done``/``skipped``, when a part of its fingerprint changed, or when one of its
outputs is missing or was modified; otherwise it is skipped ("skipped (unchanged)").

No old output is ever left beside new ones: before anything runs, the outputs of every stage
that will rerun and of every stage downstream of one are moved aside (``data/.stale``). A
downstream stage whose inputs turn out unchanged once its upstream reran (same bytes) gets its
outputs back and is skipped; the others rerun. Whatever is still aside when the run ends, fails
or is interrupted is deleted, as are the partial outputs of a failed stage, so the workdir only
holds outputs of stages the manifest records as done.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from tqdm.auto import tqdm

from featurestore.paths import Paths
from pipelines.fingerprint import FileHasher, digest_of, stage_code_hash
from pipelines.manifest import now, write_manifest
from pipelines.stage_cli import write_json
from pipelines.stage_meter import measure
from pipelines.stage_io import PERSIST, SMPD, overlaps, resolve, stage_io

log = logging.getLogger(__name__)
STASH = "data/.stale"
HASH_CACHE = "data/.hash_cache.json"  # path -> [size, mtime_ns, hash]: files are read again only when they change
DONE = ("done", "skipped")


class IncrementalRun:
    """Runs ``stages`` into ``paths.root``, updating ``manifest`` (written after every stage)."""

    def __init__(self, paths: Paths, params: dict, manifest: dict, previous: dict | None,
                 hasher: FileHasher) -> None:
        self.paths, self.params, self.m, self.hasher = paths, params, manifest, hasher
        self.prev = (previous or {}).get("stages", {})
        self.root = Path(paths.root)
        self.stash = self.root / STASH
        self.m["stage_order"] = list(self.m["stages"])

    # ------------------------------------------------------------ fingerprints

    def _params_of(self, name: str) -> dict:
        from pipelines.runner import stage_module

        return {s: self.params.get(s) for s in stage_module(name).PARAMS}

    def _inputs(self, name: str) -> dict[str, str | None]:
        out = {}
        for rel in stage_io(name, self.params).inputs:
            out[rel] = self.m["inputs"]["hash"] if rel == SMPD else self.hasher.path(resolve(rel, self.paths))
        return out

    def check(self, name: str) -> dict:
        """This stage's fingerprint now: params digest, code, input hashes, and their combined hash."""
        rec = {"params": digest_of(self._params_of(name)), "code": stage_code_hash(name),
               "inputs": self._inputs(name)}
        rec["fingerprint"] = digest_of(rec)
        return rec

    def _outputs(self, name: str) -> dict[str, str | None]:
        return {rel: self.hasher.path(resolve(rel, self.paths))
                for rel in stage_io(name, self.params).outputs if rel not in PERSIST}

    def why(self, name: str, check: dict, outputs: bool = True) -> str | None:
        """Why ``name`` must run, or None when it may be skipped."""
        prev = self.prev.get(name)
        if not prev or prev.get("status") not in DONE or "fingerprint" not in prev:
            return "no earlier run" if not prev or prev.get("status") == "pending" else f"last {prev.get('status')}"
        if prev["params"] != check["params"]:
            return f"params changed ({', '.join(self._params_of(name))})"
        if prev["code"] != check["code"]:
            return "code changed"
        changed = [k for k, v in check["inputs"].items() if prev["inputs"].get(k) != v]
        if changed or set(prev["inputs"]) != set(check["inputs"]):
            return f"input changed ({', '.join(changed) or 'other inputs'})"
        if outputs:
            now_out = self._outputs(name)
            missing = [k for k, v in now_out.items() if v is None]
            if missing:
                return f"output missing ({', '.join(missing)})"
            if any(prev["outputs"].get(k) != v for k, v in now_out.items()):
                return "output modified since the last run"
        return None

    # ------------------------------------------------------------ plan

    def plan(self, stages: tuple[str, ...]) -> tuple[dict[str, str], set[str]]:
        """(stage -> why it reruns, the set of stages whose outputs go aside: those and everything downstream)."""
        rerun = {s: r for s in stages if (r := self.why(s, self.check(s))) is not None}
        affected = set(rerun)
        for s in stages:  # stages are in topological order: one pass finds everything downstream
            ins = stage_io(s, self.params).inputs
            if s not in affected and any(overlaps(i, o) for a in affected for o in stage_io(a, self.params).outputs
                                         for i in ins):
                affected.add(s)
        return rerun, affected

    def _move(self, rel: str, src_root: Path, dst_root: Path) -> None:
        src, dst = src_root / rel, dst_root / rel
        if src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            if dst.exists():
                shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
            os.replace(src, dst)

    def _aside(self, stages: set[str]) -> None:
        outs = {o for s in stages for o in stage_io(s, self.params).outputs if o not in PERSIST}
        for name, rec in self.prev.items():  # outputs of stages this run does not select
            if name not in self.m["stages"] and rec.get("outputs"):
                outs |= set(rec["outputs"]) - PERSIST
        for rel in sorted(outs):
            self._move(rel, self.root, self.stash)

    def _remove_outputs(self, name: str) -> None:
        for rel in stage_io(name, self.params).outputs:
            p = resolve(rel, self.paths)
            if rel in PERSIST or not p.exists():
                continue
            shutil.rmtree(p) if p.is_dir() else p.unlink()

    # ------------------------------------------------------------ run

    def _save(self) -> None:
        self.hasher.prune([self.root, self.paths.smpd_dir, self.paths.oracle])
        write_json(self.root / HASH_CACHE, self.hasher.cache)
        write_manifest(self.root, self.m)

    def run(self, stages: tuple[str, ...]) -> dict[str, object]:
        from pipelines.runner import stage_module

        t_run = time.perf_counter()
        results: dict[str, object] = {}
        name = None
        try:
            self._save()  # status running before anything in the workdir moves
            shutil.rmtree(self.stash, ignore_errors=True)  # left by a run that was killed
            rerun, affected = self.plan(stages)
            self._aside(affected)
            self._save()
            for name in tqdm(stages, desc="smpp run", unit="stage"):
                check = self.check(name)
                reason = rerun.get(name) or (self.why(name, check, outputs=False) if name in affected else None)
                rec = self.m["stages"][name]
                if reason is None:
                    for rel in stage_io(name, self.params).outputs:
                        if rel not in PERSIST:
                            self._move(rel, self.stash, self.root)
                    prev = self.prev[name]
                    rec.update({k: v for k, v in prev.items() if k not in ("status", "seconds", "reason", "cost")},
                               status="skipped", seconds=0.0, reason="unchanged",
                               computed_cost=prev.get("cost") or prev.get("computed_cost"))  # of the run that made them
                    log.info("stage %s skipped (unchanged)", name)
                    self._save()
                    continue
                log.info("stage %s runs: %s", name, reason)
                rec.update(status="running", reason=reason, started_at=now(), **check)
                self._save()
                with measure() as cost:
                    results[name] = stage_module(name).run(self.paths, self.params)
                rec.update(status="done", seconds=cost.wall_s, outputs=self._outputs(name), cost=asdict(cost))
                self._save()
                log.info("stage %s done in %.1f s (CPU %.1f s, peak RSS %.0f MiB)", name, cost.wall_s, cost.cpu_s,
                         cost.peak_rss_mb)
        except BaseException as e:
            status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
            if name is not None and self.m["stages"][name].get("status") == "running":
                self._remove_outputs(name)  # partial outputs of the stage that did not finish
                self.m["stages"][name]["status"] = status
            self.m.update(status=status, failed_stage=name, error=one_line(e) or type(e).__name__)
            raise
        else:
            self.m["status"] = "complete"
        finally:
            shutil.rmtree(self.stash, ignore_errors=True)
            self.m.update(finished_at=now(), seconds=round(time.perf_counter() - t_run, 2))
            self._save()
        return results


def one_line(e: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(e).split())


def load_hash_cache(root: Path) -> dict:
    """The file-hash cache a previous run left in ``root`` (empty when absent or unreadable)."""
    try:
        return json.loads((Path(root) / HASH_CACHE).read_text())
    except (OSError, ValueError):
        return {}
