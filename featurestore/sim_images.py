"""Procedural JPEGs that carry the planted image properties of each simulated post.

Each image is a function of its parameters and its own seed only (never of the worker that
draws it), so output bytes do not depend on the number of processes. An image is:

* a smooth 3x3-colour background gradient around the post's style hue (``style / 12`` of
  the colour wheel), with saturation ~ ``colourfulness``;
* a fixed-amplitude fine grain texture (so that blur measurably lowers sharpness);
* a subject (ellipse, rectangle or triangle, striped) centred at ``(subject_x, subject_y)``
  (fractions of width/height), ``subject_size`` of the short side, in a contrasting hue;
* a box blur of radius ``blur * size / 320`` px (below 0.25 px: none);
* a gamma curve that sets the mean luma to ``brightness`` (0..1) exactly (up to JPEG error).

Encoded with PIL at quality 85.
"""

from __future__ import annotations

import colorsys
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from featurestore.sim_world import N_STYLES

PARAM_KEYS = ("aspect", "style", "brightness", "colourfulness", "blur", "subject_x", "subject_y", "subject_size",
              "shape", "image_seed")
JPEG_QUALITY = 85
_TILE = 512
_tiles: list[Image.Image] = []
_GAMMAS = np.exp(np.linspace(np.log(0.05), np.log(20.0), 160))  # (G,) candidate gamma curves
_POW = (np.arange(256)[:, None] / 255.0) ** _GAMMAS[None, :]    # (256, G) level**gamma


def _grain() -> list[Image.Image]:
    """Four 512x512 grey grain tiles (128 +- 12 per level) as RGB images; same in every process."""
    if not _tiles:
        g = np.random.default_rng(20160430).normal(128, 12, (4, _TILE, _TILE))
        g = np.clip(np.round(g), 0, 255).astype(np.uint8)
        _tiles.extend(Image.fromarray(np.repeat(t[:, :, None], 3, axis=2), "RGB") for t in g)
    return _tiles


def image_shape(aspect: int, size: int) -> tuple[int, int]:
    """(width, height) in px: 0 landscape 4:3, 1 portrait 3:4, 2 square; longest side ``size``."""
    short = max(8, int(round(size * 0.75)))
    return ((size, short), (short, size), (size, size))[int(aspect)]


def _rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return int(r * 255 + 0.5), int(g * 255 + 0.5), int(b * 255 + 0.5)


def _gamma_lut(img: Image.Image, target: float) -> list[int]:
    """A 768-entry LUT (same curve per channel) that moves the mean luma to ``target`` (0..1)."""
    hist = np.asarray(img.convert("L").histogram(), dtype=np.float64)
    means = hist @ _POW / hist.sum()  # (G,) mean luma after each gamma, decreasing in gamma
    log_g = np.interp(-target, -means, np.log(_GAMMAS))
    curve = np.clip(np.round(255 * (np.arange(256) / 255.0) ** np.exp(log_g)), 0, 255).astype(int).tolist()
    return curve * 3


def render(params: dict, size: int) -> Image.Image:
    """Draw one post's image from its parameters (a dict of PARAM_KEYS scalars)."""
    rng = np.random.default_rng(int(params["image_seed"]))
    w, h = image_shape(int(params["aspect"]), size)
    hue = int(params["style"]) / N_STYLES + rng.normal(0, 0.015)
    sat = float(params["colourfulness"])
    grid = np.array([_rgb(hue + rng.normal(0, 0.03), sat * rng.uniform(0.6, 1.0), rng.uniform(0.4, 0.85))
                     for _ in range(9)], dtype=np.uint8).reshape(3, 3, 3)
    img = Image.fromarray(grid, "RGB").resize((w, h), Image.BILINEAR)
    tile = _grain()[int(rng.integers(4))]
    if w > _TILE or h > _TILE:
        tile = tile.resize((max(w, _TILE), max(h, _TILE)), Image.NEAREST)
    ox, oy = int(rng.integers(0, tile.width - w + 1)), int(rng.integers(0, tile.height - h + 1))
    img = ImageChops.add(img, tile.crop((ox, oy, ox + w, oy + h)), 1.0, -128)
    _draw_subject(img, params, rng, hue, sat)
    radius = float(params["blur"]) * size / 320.0
    if radius >= 0.25:
        img = img.filter(ImageFilter.BoxBlur(radius))
    return img.point(_gamma_lut(img, float(params["brightness"])))


def _draw_subject(img: Image.Image, params: dict, rng: np.random.Generator, hue: float, sat: float) -> None:
    """A striped shape at the planted position, in a complementary or analogous hue."""
    w, h = img.size
    r = float(params["subject_size"]) * min(w, h) / 2
    cx, cy = float(params["subject_x"]) * w, float(params["subject_y"]) * h
    box = (cx - r, cy - r, cx + r, cy + r)
    sub_hue = hue + (0.5 if rng.random() < 0.6 else 0.08)
    fill = _rgb(sub_hue, 0.3 + 0.7 * sat, rng.uniform(0.55, 0.95))
    draw = ImageDraw.Draw(img)
    shape = int(params["shape"])
    if shape == 0:
        draw.ellipse(box, fill=fill)
    elif shape == 1:
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)
    dark = _rgb(sub_hue, 0.3 + 0.7 * sat, 0.25)
    step = max(2.0, r / 4)
    for k in range(-2, 3):
        x = cx + k * step
        draw.line([(x - r / 3, cy - r * 0.7), (x + r / 3, cy + r * 0.7)], fill=dark, width=max(1, int(r / 14)))


def write_images(root: Path, relpaths: list[str], table: dict[str, np.ndarray]) -> int:
    """Render and save each ``root/relpath`` (rows of ``table``, a dict of PARAM_KEYS arrays)."""
    size = int(table["size"])
    for i, rel in enumerate(relpaths):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        img = render({k: table[k][i] for k in PARAM_KEYS}, size)
        img.save(path, "JPEG", quality=JPEG_QUALITY)
    return len(relpaths)


def _job(args: tuple) -> int:
    return write_images(*args)


def write_all_images(root: Path, relpaths: list[str], params: dict[str, np.ndarray], size: int, workers: int,
                     progress: bool = True, chunk: int = 256) -> int:
    """Write every image in ``relpaths`` (P,) with ``params`` (PARAM_KEYS -> (P,) arrays).

    Uses ``workers`` spawned processes (1: in this process). Returns the number written.
    """
    from tqdm import tqdm

    jobs = []
    for a in range(0, len(relpaths), chunk):
        part = {k: np.asarray(params[k][a:a + chunk]) for k in PARAM_KEYS}
        part["size"] = np.int64(size)
        jobs.append((Path(root), relpaths[a:a + chunk], part))
    bar = tqdm(total=len(relpaths), desc="images", unit="img", disable=not progress, mininterval=1.0)
    done = 0
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            done += _job(job)
            bar.update(len(job[1]))
    else:
        ctx = mp.get_context("spawn")
        with ctx.Pool(min(workers, os.cpu_count() or 1, len(jobs))) as pool:
            for n in pool.imap_unordered(_job, jobs):
                done += n
                bar.update(n)
    bar.close()
    return done
