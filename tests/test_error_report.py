"""Error report (``smpp errors``): its tables against numpy, the HTML cards, escaping, time-safe
neighbours, and the page rendered by headless Chromium (skipped when /usr/bin/chromium is absent)."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from featurestore.table_specs import get_table
from featurestore.features_sequence import SequenceConfig, earlier_neighbours, sequence_tables
from featurestore.paths import Paths
from pipelines.analysis.error_report import error_tables, main, render_error_report
from pipelines.analysis.similar import similar_posts
from run_manifest import write_complete_manifest

CHROMIUM = Path("/usr/bin/chromium")
T0 = 1_420_070_400  # 2015-01-01 UTC
EVIL = '<script>alert("x")</script> & co'
OVER, UNDER, NO_IMAGE, TWIN = 30, 31, 29, 28  # planted posts; TWIN shares OVER's post date
SEQ = SequenceConfig(k=4, l=4)


def _posts() -> list[dict]:
    """32 posts an hour apart: 20 train, 4 val, 8 test; labels over every bin, small errors except the plants."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(32):
        pid = i + 1
        split = "train" if i < 20 else "val" if i < 24 else "test"
        label = round(float(1.5 + (i * 1.7) % 14), 2)
        rows.append({"pid": pid, "uid": f"u{i % 3}@N0", "postdate": T0 + 3600 * i, "split": split, "label": label,
                     "pred": round(label + float(rng.normal(0, 0.5)), 3), "category": "Animal" if i % 2 else "Food",
                     "subcategory": "Cats" if i % 2 else "Cakes", "concept": "cat" if i % 2 else "cake",
                     "title": f"post {pid}"})
    by = {r["pid"]: r for r in rows}
    by[OVER].update(label=2.0, pred=9.0, title=EVIL)     # worst over-prediction of bin [1,3)
    by[UNDER].update(label=12.0, pred=4.0)               # worst under-prediction of bin [11,13)
    by[TWIN].update(postdate=by[OVER]["postdate"])       # same second: not earlier than OVER
    return rows


def _write(root: Path, name: str, cols: dict) -> None:
    path = root / get_table(name).path
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols), path)


def _image_path(r: dict) -> str:
    return f"train/{r['uid']}/{r['pid']}.jpg"


def build_root(root: Path) -> tuple[Path, list[dict]]:
    """A work root with the ingest tables, predictions_stack, two feature tables and tiny JPEGs."""
    rows, smpd = _posts(), root / "smpd"
    col = lambda k: [r[k] for r in rows]  # noqa: E731
    pid = pa.array(col("pid"), pa.int64())
    _write(root, "posts", {"pid": pid, "uid": col("uid"), "postdate": pa.array(col("postdate"), pa.int64()),
                           "split": ["train"] * len(rows), "row": pa.array(range(len(rows)), pa.int32()),
                           "labelled": [True] * len(rows)})
    _write(root, "categories", {"pid": pid, "category": col("category"), "subcategory": col("subcategory"),
                                "concept": col("concept")})
    _write(root, "text", {"pid": pid, "title": col("title"), "alltags": [""] * len(rows),
                          "mediatype": ["photo"] * len(rows)})
    _write(root, "images", {"pid": pid, "path": [_image_path(r) for r in rows],
                            "url": pa.nulls(len(rows), pa.string()), "exists": [r["pid"] != NO_IMAGE for r in rows]})
    _write(root, "labels", {"pid": pid, "label": col("label")})
    _write(root, "predictions_stack", {"pid": pid, "split": col("split"), "label": col("label"), "pred": col("pred"),
                                       "pred_lgbm": [p + 0.1 for p in col("pred")]})
    rng = np.random.default_rng(1)
    date = pa.array(col("postdate"), pa.int64())
    _write(root, "split", {"pid": pid, "postdate": date, "split": col("split"),
                           "label_visible": [r["split"] == "train" for r in rows]})
    emb = rng.normal(size=(len(rows), 6)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    _write(root, "embed_engineered", {"pid": pid, "postdate": date,
                                      "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), 6)})
    _, ids = sequence_tables(Paths(root=root), SEQ)  # the neighbours the sequence features were computed from
    _write(root, "sequence_ids", {n: ids[n] for n in ids.column_names})
    for r in rows:
        if r["pid"] != NO_IMAGE:
            path = smpd / _image_path(r)
            path.parent.mkdir(parents=True, exist_ok=True)
            colour = tuple(int(c) for c in rng.integers(0, 255, 3))
            Image.new("RGB", (48 + r["pid"], 32), colour).save(path, "JPEG")
    return smpd, rows


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("errors")
    smpd, rows = build_root(root)
    write_complete_manifest(root, smpd_dir=smpd)
    tables = error_tables(root, "test", top=2)
    out = render_error_report(tables, root, smpd, root / "reports/errors.html", k=3, thumb_px=64)
    return {"root": root, "smpd": smpd, "rows": rows, "tables": tables, "html": out, "text": out.read_text()}


class _Cards(HTMLParser):
    """section id -> [(pid, postdate, [(neighbour pid, neighbour postdate)])] of the worst-post sections."""

    def __init__(self):
        super().__init__()
        self.sections: dict[str, list] = {}
        self.current: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section" and "worst" in (a.get("class") or ""):
            self.current = a["id"]
            self.sections[self.current] = []
        elif tag == "article" and self.current:
            self.sections[self.current].append((int(a["data-pid"]), int(a["data-postdate"]), []))
        elif tag == "figure" and self.current:
            self.sections[self.current][-1][2].append((int(a["data-pid"]), int(a["data-postdate"])))


def _cards(text: str) -> dict[str, list]:
    p = _Cards()
    p.feed(text)
    return p.sections


# ---------------------------------------------------------------- tables

def test_metrics_per_bin_and_category_match_numpy(work):
    t, test = work["tables"], [r for r in work["rows"] if r["split"] == "test"]
    y, p = np.array([r["label"] for r in test]), np.array([r["pred"] for r in test])
    overall = t["overall"].filter(t["overall"]["split"] == "test").row(0, named=True)
    assert overall["n"] == len(test) and overall["mae"] == pytest.approx(np.abs(p - y).mean())
    assert overall["bias"] == pytest.approx((p - y).mean())
    for b in t["by_bin"].iter_rows(named=True):
        m = (y >= b["lo"]) & (y < b["hi"])
        assert b["n"] == m.sum()
        if m.any():
            assert b["mae"] == pytest.approx(np.abs(p - y)[m].mean()) and b["bias"] == pytest.approx((p - y)[m].mean())
    cats = np.array([r["category"] for r in test])
    for c in t["by_category"].iter_rows(named=True):
        m = cats == c["category"]
        assert c["n"] == m.sum() and c["mae"] == pytest.approx(np.abs(p - y)[m].mean())
    assert t["by_subcategory"]["n"].sum() == len(test)
    assert set(t["learners"]["model"]) == {"stack", "lgbm"}


def test_worst_posts_are_the_planted_ones(work):
    w = work["tables"]["worst"]
    first_over = w.filter((w["bin"] == "[1,3)") & (w["direction"] == "over") & (w["rank"] == 1))
    assert first_over["pid"].to_list() == [OVER] and first_over["error"][0] == pytest.approx(7.0)
    assert first_over["title"][0] == EVIL and first_over["date"][0].startswith("2015-01-02")
    first_under = w.filter((w["bin"] == "[11,13)") & (w["direction"] == "under") & (w["rank"] == 1))
    assert first_under["pid"].to_list() == [UNDER]
    assert (w["direction"] == "over").eq(w["error"] > 0).all()
    assert w.group_by("bin", "direction").len()["len"].max() <= 2  # --top 2
    assert set(w["pid"]) <= {r["pid"] for r in work["rows"] if r["split"] == "test"}


# ---------------------------------------------------------------- HTML

def test_cards_in_their_sections_and_titles_escaped(work):
    text, cards = work["text"], _cards(work["text"])
    assert [c[0] for c in cards["worst-1-3-over"]][:1] == [OVER]
    assert UNDER in [c[0] for c in cards["worst-11-13-under"]]
    shown = {pid for cs in cards.values() for pid, _, _ in cs}
    assert shown == set(work["tables"]["worst"]["pid"])
    assert "<script>" not in text and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in text
    assert text.count('src="data:image/jpeg;base64,') >= len(shown) - 1
    assert "no image" in text and "<svg" in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")


def test_neighbours_are_strictly_earlier(work):
    cards = _cards(work["text"])
    pairs = [(pd, nbs) for cs in cards.values() for _, pd, nbs in cs]
    assert any(nbs for _, nbs in pairs)
    assert all(nd < pd for pd, nbs in pairs for _, nd in nbs)
    over = next(c for c in cards["worst-1-3-over"] if c[0] == OVER)
    assert TWIN not in [nb for nb, _ in over[2]] and len(over[2]) == 3


def test_a_neighbour_finder_that_leaks_is_filtered(work, tmp_path):
    later = max(r["pid"] for r in work["rows"])  # the last post: later than every other
    leaky = lambda pids, k: {p: [(later, 0.99), (1, 0.5)] for p in pids}  # noqa: E731
    out = render_error_report(work["tables"], work["root"], work["smpd"], tmp_path / "r.html", neighbours=leaky, k=3)
    for cs in _cards(out.read_text()).values():
        for pid, _, nbs in cs:
            assert [nb for nb, _ in nbs] == [1]  # "later" (itself or a later post) is dropped


def test_report_shows_the_neighbours_the_sequence_features_saw(work):
    """One neighbour source: the report's neighbours of a post are its stored sequence neighbours, and
    ``smpp similar --before-only`` finds the same posts by the same search."""
    stored = pq.read_table(work["root"] / get_table("sequence_ids").path).to_pylist()
    by_pid = {r["pid"]: [r[f"seq_nb_pid_{i}"] for i in range(3) if r[f"seq_nb_pid_{i}"] is not None] for r in stored}
    cards = [c for cs in _cards(work["text"]).values() for c in cs]
    assert cards and any(nbs for _, _, nbs in cards)
    for pid, _, nbs in cards:
        assert [nb for nb, _ in nbs] == by_pid[pid]
        df = similar_posts(work["root"], pid, k=3, before_only=True, sequence=SEQ)
        assert df["pid"][1:].to_list() == by_pid[pid]


def test_earlier_neighbours_against_brute_force(work):
    root = work["root"]
    table = pq.read_table(root / get_table("embed_engineered").path)
    pids, dates = table["pid"].to_numpy(), table["postdate"].to_numpy()
    E = np.stack(table["embedding"].to_numpy(zero_copy_only=False))
    got = earlier_neighbours(Paths(root=root), [1, OVER, 32, 999], 6, SEQ)
    for q in (1, OVER, 32):
        i = int(np.flatnonzero(pids == q)[0])
        cand = [j for j in range(len(pids)) if dates[j] < dates[i]]
        want = sorted(cand, key=lambda j: (-float(E[j] @ E[i]), dates[j], pids[j]))[:6]
        assert [p for p, _ in got[q]] == [int(pids[j]) for j in want]
    assert got[1] == [] and got[999] == [] and TWIN not in [p for p, _ in got[OVER]]


def test_more_neighbours_than_stored_is_a_clear_error(work, tmp_path):
    with pytest.raises(SystemExit, match="at most 4"):
        main(["--root", str(work["root"]), "--smpd-dir", str(work["smpd"]), "--k", "5", "--html",
              str(tmp_path / "e.html")])


def test_cli_writes_the_report(work, tmp_path, capsys):
    out = tmp_path / "e.html"
    assert main(["--root", str(work["root"]), "--smpd-dir", str(work["smpd"]), "--top", "1", "--k", "2",
                 "--split", "val", "--html", str(out)]) == 0
    assert "val: SRC" in capsys.readouterr().out and 'data-pid="' in out.read_text()
    with pytest.raises(SystemExit):
        main(["--root", str(tmp_path / "nowhere")])


# ---------------------------------------------------------------- headless Chromium

_COUNT_IMAGES = ("<script>window.addEventListener('load', () => { const im = [...document.images]; "
                 "document.body.setAttribute('data-decoded', im.filter(i => i.complete && i.naturalWidth > 0).length"
                 " + '/' + im.length); });</script>")


def _chromium(tmp: Path, *args: str) -> str:
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
           f"--user-data-dir={tmp / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout


@pytest.mark.skipif(not CHROMIUM.is_file(), reason="headless browser test needs /usr/bin/chromium "
                                                   "(apt-get install -y chromium)")
def test_page_renders_in_headless_chromium(work, tmp_path):
    probe = tmp_path / "probe.html"
    probe.write_text(work["text"].replace("</body>", _COUNT_IMAGES + "</body>"))
    dom = _chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.resolve().as_uri())
    shown = {int(p) for p in re.findall(r'<article class="post" data-pid="(\d+)"', dom)}
    assert shown == set(work["tables"]["worst"]["pid"])
    decoded, total = map(int, re.search(r'data-decoded="(\d+)/(\d+)"', dom).groups())
    assert total == work["text"].count("<img ") and decoded == total > 0
    png = tmp_path / "shot.png"
    _chromium(tmp_path, f"--screenshot={png}", "--window-size=1280,2000", work["html"].resolve().as_uri())
    with Image.open(png) as im:
        assert im.size == (1280, 2000)
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50  # text, charts, thumbnails
