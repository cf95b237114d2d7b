"""HTML and SVG rendering of the analysis pages (``smpp errors``, ``smpp similar``): pure string builders, no JavaScript, no CDN.

The page is one static file that opens offline: charts are hand-written inline SVG, thumbnails are
base64 JPEG data URIs. Every piece of text that comes from the data (titles, user ids, category
names) goes through ``html.escape``. Every post card and neighbour figure carries ``data-pid``.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1500px}
h1{margin-bottom:4px}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td.t,th.t{text-align:left}
.charts{display:flex;flex-wrap:wrap;gap:24px}.charts svg{background:#fafafa;border:1px solid #e4e4e4}
section.worst{margin:12px 0 24px}h3{margin:18px 0 6px}h4{margin:0 0 4px;font-size:14px}
article.post{display:flex;align-items:flex-start;gap:16px;border:1px solid #ddd;border-radius:6px;padding:8px;
margin:8px 0;background:#fff}
article.post .query{width:400px;flex:none;display:flex;align-items:flex-start;gap:8px}
dl{margin:0;font-size:13px;display:grid;grid-template-columns:auto 1fr;gap:1px 8px;align-content:start}
dt{color:#777}dd{margin:0;overflow-wrap:anywhere}
.neighbours{display:flex;gap:8px;flex-wrap:wrap}figure{margin:0;width:NBpx;font-size:12px}
figcaption{line-height:1.3}img.thumb{display:block;max-width:THUMBpx;max-height:THUMBpx}
figure img.thumb{max-width:NBpx;max-height:NBpx}.pic{width:THUMBpx;flex:none}
.noimg{width:NBpx;height:80px;flex:none;display:flex;align-items:center;justify-content:center;background:#eee;
color:#888;font-size:12px}
summary{cursor:pointer;color:#555}tr.query{background:#fff3c4}.over{color:#b2182b}.under{color:#2166ac}.muted{color:#888}
"""

_COLOURS = {"mae": "#5b7fa6", "pos": "#d6604d", "neg": "#4393c3"}


def esc(value: object) -> str:
    """Escaped text of a value ('–' for None)."""
    return "&ndash;" if value is None else html.escape(str(value), quote=True)


def num(value: float | None, digits: int = 3, signed: bool = False) -> str:
    """A number with ``digits`` decimals ('–' for None or NaN)."""
    if value is None or value != value:
        return "&ndash;"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def utc_date(epoch_s: int | None) -> str:
    """'YYYY-MM-DD HH:MM' (UTC) of an epoch-seconds post date."""
    if epoch_s is None:
        return "&ndash;"
    return datetime.fromtimestamp(int(epoch_s), tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def thumbnail_uri(path: Path | None, px: int = 160) -> str | None:
    """A ``data:image/jpeg;base64,...`` thumbnail (longest side <= px) of an image file; None when unreadable."""
    from PIL import Image

    if path is None or not Path(path).is_file():
        return None
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((px, px))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=80)
    except (OSError, ValueError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def bar_chart_svg(labels: list[str], values: list[float | None], *, title: str, width: int = 560,
                  row_px: int = 20, label_px: int = 210) -> str:
    """A horizontal bar chart as inline SVG; negative values extend left of a zero line.

    Bars of positive values are red (over-prediction when the value is a bias), negative ones blue;
    when no value is negative every bar takes the neutral MAE colour. None/NaN values draw no bar.
    """
    vals = [None if v is None or v != v else float(v) for v in values]
    present = [v for v in vals if v is not None] or [0.0]
    lo, hi = min(0.0, min(present)), max(0.0, max(present))
    span = (hi - lo) or 1.0
    plot_w = width - label_px - 70
    zero_x = label_px + plot_w * (-lo / span)
    top = 28
    height = top + row_px * len(labels) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{esc(title)}"><text x="8" y="18" font-size="14" font-weight="bold">{esc(title)}</text>']
    diverging = lo < 0
    max_chars = max(8, int(label_px / 6.8))  # ~6.8 px per 12 px character
    for i, (label, v) in enumerate(zip(labels, vals)):
        y = top + i * row_px
        short = label if len(label) <= max_chars else label[:max_chars - 1] + "\u2026"
        parts.append(f'<text x="{label_px - 6}" y="{y + row_px * 0.7:.1f}" font-size="12" '
                     f'text-anchor="end"><title>{esc(label)}</title>{esc(short)}</text>')
        if v is None:
            parts.append(f'<text x="{zero_x + 4:.1f}" y="{y + row_px * 0.7:.1f}" font-size="11" fill="#999">n/a</text>')
            continue
        w = plot_w * abs(v) / span
        x = zero_x - w if v < 0 else zero_x
        colour = (_COLOURS["neg"] if v < 0 else _COLOURS["pos"]) if diverging else _COLOURS["mae"]
        parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_px - 6}" fill="{colour}">'
                     f'<title>{esc(label)}: {v:.3f}</title></rect>')
        tx = (x + w + 4) if v >= 0 else (x - 4)
        anchor = "start" if v >= 0 else "end"
        if v < 0 and tx < label_px + 30:  # no room left of the bar: write the value right of the zero line
            tx, anchor = zero_x + 4, "start"
        parts.append(f'<text x="{tx:.1f}" y="{y + row_px * 0.7:.1f}" font-size="11" '
                     f'text-anchor="{anchor}">{v:+.2f}</text>' if diverging else
                     f'<text x="{tx:.1f}" y="{y + row_px * 0.7:.1f}" font-size="11">{v:.2f}</text>')
    parts.append(f'<line x1="{zero_x:.1f}" y1="{top - 2}" x2="{zero_x:.1f}" y2="{height - 6}" stroke="#444"/></svg>')
    return "".join(parts)


def html_table(df: pl.DataFrame, columns: list[str] | None = None, text_cols: tuple[str, ...] = (), *,
               images: dict[int, str | None] | None = None, highlight_first: bool = False) -> str:
    """A plain HTML table of a polars frame; floats with 3 decimals, text escaped.

    images: pid -> thumbnail URI; adds a first ``image`` column (needs a ``pid`` column).
    highlight_first: mark the first row (``tr.query``), e.g. the query post of ``smpp similar``.
    """
    cols = columns or df.columns
    head = ("<th>image</th>" if images is not None else "") + \
        "".join(f'<th class="{"t" if c in text_cols else ""}">{esc(c)}</th>' for c in cols)
    rows = []
    for i, rec in enumerate(df.iter_rows(named=True)):
        cells = "".join(f'<td class="t">{esc(rec[c])}</td>' if c in text_cols else
                        f"<td>{num(rec[c]) if isinstance(rec[c], float) else esc(rec[c])}</td>" for c in cols)
        if images is not None:
            cells = f"<td>{_image(images.get(int(rec['pid'])), rec['pid'])}</td>" + cells
        rows.append(f'<tr class="query">{cells}</tr>' if highlight_first and i == 0 else f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _image(uri: str | None, pid: int) -> str:
    return f'<img class="thumb" src="{uri}" alt="post {pid}">' if uri else '<div class="noimg">no image</div>'


def category_path(rec: dict) -> str:
    """'category / subcategory / concept' of a record (missing levels skipped)."""
    return " / ".join(str(rec[c]) for c in ("category", "subcategory", "concept") if rec.get(c) is not None)


def neighbour_figure(nb: dict, uri: str | None) -> str:
    """One earlier neighbour: thumbnail, pid, date, label, prediction and cosine similarity."""
    return (f'<figure class="neighbour" data-pid="{int(nb["pid"])}" data-postdate="{int(nb["postdate"])}">'
            f'{_image(uri, nb["pid"])}<figcaption><b>{int(nb["pid"])}</b> {utc_date(nb["postdate"])}<br>'
            f'label {num(nb.get("label"), 2)} &middot; pred {num(nb.get("pred"), 2)}<br>'
            f'sim {num(nb.get("similarity"), 3)} <span class="muted">{esc(nb.get("split"))}</span>'
            "</figcaption></figure>")


def post_card(rec: dict, uri: str | None, neighbours: list[dict], nb_uris: dict[int, str | None], k: int) -> str:
    """A worst-post card: its thumbnail and facts, then its nearest earlier neighbours."""
    pid = int(rec["pid"])
    cls = "over" if rec["error"] > 0 else "under"
    facts = (f"<dt>pid</dt><dd><b>{pid}</b> (#{rec['rank']})</dd><dt>user</dt><dd>{esc(rec.get('uid'))}</dd>"
             f"<dt>date</dt><dd>{utc_date(rec.get('postdate'))}</dd>"
             f"<dt>category</dt><dd>{esc(category_path(rec))}</dd><dt>title</dt><dd>{esc(rec.get('title'))}</dd>"
             f"<dt>label</dt><dd>{num(rec['label'], 2)}</dd><dt>pred</dt><dd>{num(rec['pred'], 2)}</dd>"
             f'<dt>error</dt><dd class="{cls}"><b>{num(rec["error"], 2, signed=True)}</b></dd>')
    nbs = "".join(neighbour_figure(nb, nb_uris.get(int(nb["pid"]))) for nb in neighbours) or \
        '<span class="muted">no earlier neighbour</span>'
    postdate = "" if rec.get("postdate") is None else f' data-postdate="{int(rec["postdate"])}"'
    return (f'<article class="post" data-pid="{pid}"{postdate} data-direction="{cls}">'
            f'<div class="query"><div class="pic">{_image(uri, pid)}</div><dl>{facts}</dl></div>'
            f'<div><h4>{k} nearest earlier posts</h4><div class="neighbours">{nbs}</div></div></article>')


def section_id(lo: float, hi: float, direction: str) -> str:
    """The HTML id of one (label bin, direction) section, e.g. ``worst-1-3-over``."""
    return f"worst-{lo:g}-{hi:g}-{direction}"


def page(title: str, headline: str, body: list[str], thumb_px: int) -> str:
    """The whole document around already-rendered body sections."""
    css = CSS.replace("THUMB", str(int(thumb_px))).replace("NB", str(int(thumb_px * 0.8)))
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{css}</style></head><body><h1>{esc(title)}</h1><p>{headline}</p>"
            + "\n".join(body) + "</body></html>")


def overview_sections(tables: dict[str, pl.DataFrame]) -> list[str]:
    """Overall metrics per split and per learner, then MAE/bias charts per label bin and per category."""
    out = ['<section id="overall"><h2>Overall metrics (stacked model)</h2>'
           + html_table(tables["overall"], ["split", "n", "src", "mae", "mse", "bias"], ("split",))]
    if "learners" in tables and tables["learners"].height:
        out.append("<h3>Per learner on this split</h3>"
                   + html_table(tables["learners"], ["model", "n", "src", "mae", "mse", "bias"], ("model",)))
    out.append("</section>")
    b = tables["by_bin"]
    labels = [f"{r['bin']} (n={r['n']})" for r in b.iter_rows(named=True)]
    out.append('<section id="by-bin"><h2>Error per label bin</h2><div class="charts">'
               + bar_chart_svg(labels, b["mae"].to_list(), title="MAE per label bin")
               + bar_chart_svg(labels, b["bias"].to_list(), title="Bias (pred - label) per label bin")
               + "</div>" + html_table(b, ["bin", "n", "mae", "bias"], ("bin",)) + "</section>")
    c, s = tables["by_category"], tables["by_subcategory"]
    clabels = [f"{r['category']} (n={r['n']})" for r in c.iter_rows(named=True)]
    slabels = [f"{r['subcategory']} (n={r['n']})" for r in s.iter_rows(named=True)]
    out.append('<section id="by-category"><h2>Error per category</h2><div class="charts">'
               + bar_chart_svg(clabels, c["mae"].to_list(), title="MAE per category")
               + bar_chart_svg(clabels, c["bias"].to_list(), title="Bias per category")
               + bar_chart_svg(slabels, s["mae"].to_list(), title=f"MAE per subcategory (top {s.height} by count)")
               + bar_chart_svg(slabels, s["bias"].to_list(), title=f"Bias per subcategory (top {s.height} by count)")
               + "</div><details><summary>Subcategory table</summary>"
               + html_table(s, ["category", "subcategory", "n", "mae", "bias"], ("category", "subcategory"))
               + "</details></section>")
    return out


def worst_sections(bins: list[tuple[float, float]], worst: pl.DataFrame, uris: dict[int, str | None],
                   neighbours: dict[int, list[dict]], k: int) -> str:
    """One ``section.worst`` per (label bin, direction) with its post cards, inside ``section#worst``."""
    parts = ['<section id="worst"><h2>Worst predictions per label bin</h2>'
             "<p>Over-prediction: pred &gt; label; under-prediction: pred &lt; label. Neighbours are the most "
             "similar posts published strictly earlier than the post.</p>"]
    for lo, hi in bins:
        parts.append(f"<h3>Label in [{lo:g}, {hi:g})</h3>")
        for direction in ("over", "under"):
            rows = worst.filter((pl.col("lo") == lo) & (pl.col("direction") == direction)).sort("rank")
            cards = "".join(post_card(r, uris.get(int(r["pid"])), neighbours.get(int(r["pid"]), []), uris, k)
                            for r in rows.iter_rows(named=True)) or '<p class="muted">none</p>'
            parts.append(f'<section class="worst" id="{section_id(lo, hi, direction)}" data-bin="[{lo:g},{hi:g})" '
                         f'data-direction="{direction}"><h4 class="{direction}">Worst {direction}-predictions</h4>'
                         f"{cards}</section>")
    parts.append("</section>")
    return "\n".join(parts)
