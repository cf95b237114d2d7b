"""Engineered image statistics as pure functions over one decoded image.

Input is an RGB ``uint8`` array ``(H, W, 3)`` (the reduced image of ``image_stats``); the
derived planes are a grey ``uint8`` image ``(H, W)`` (BT.601 luma) and an HSV ``uint8`` image
``(H, W, 3)`` with hue on the full 0..255 circle (``cv2.COLOR_RGB2HSV_FULL``).

Sources: Ke, Tang & Jing (2006) "The design of high-level features for photo quality
assessment" (hue count, edge bounding box, blur); Luo & Tang (2008) (clarity and brightness
contrast of the subject region); Hasler & Suesstrunk (2003) (colourfulness); Khosla, Das
Sarma & Hamid (2014) and the SMP challenge papers (brightness, contrast, entropy, faces).
All values are deterministic functions of the array: no randomness, no global state beyond
the cached face cascade.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import cv2
import numpy as np

HUE_BINS = 20                  # Ke et al.: 20 hue bins
HUE_MIN_SAT = 0.2              # chromatic pixel: saturation > 0.2 ...
HUE_MIN_VALUE = 0.15           # ... and value > 0.15 (Ke's upper bound 0.95 dropped: a pure red counts)
HUE_ALPHA = 0.05               # a hue bin is significant above 5 % of the largest bin
SUBJECT_QUANTILE = 0.05        # subject box: 5 %..95 % of the edge mass along each axis
CANNY_LOW, CANNY_HIGH = 100, 200
FACE_CASCADE = "haarcascade_frontalface_default.xml"
_EPS = 1e-12
_THIRDS = np.array([(x, y) for x in (1 / 3, 2 / 3) for y in (1 / 3, 2 / 3)])  # (4, 2) in unit coords


class Planes(NamedTuple):
    """The derived views every statistic reads; computed once per image."""

    rgb: np.ndarray    # (H, W, 3) uint8
    grey: np.ndarray   # (H, W) uint8, BT.601 luma
    hsv: np.ndarray    # (H, W, 3) uint8, hue 0..255 = 0..360 degrees


def planes(rgb: np.ndarray) -> Planes:
    """Grey and HSV views of an RGB ``uint8`` image ``(H, W, 3)``."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    return Planes(rgb, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL))


def brightness(grey: np.ndarray) -> float:
    """Mean luma in [0, 1]."""
    return float(cv2.sumElems(grey)[0] / (grey.size * 255.0))  # an exact integer sum: a constant v gives v / 255


def rms_contrast(grey: np.ndarray) -> float:
    """Standard deviation of luma (RMS contrast) in [0, 0.5]."""
    return float(cv2.meanStdDev(grey)[1][0, 0] / 255.0)


def saturation_mean(hsv: np.ndarray) -> float:
    """Mean HSV saturation in [0, 1]."""
    return float(cv2.sumElems(hsv)[1] / (hsv.shape[0] * hsv.shape[1] * 255.0))


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler-Suesstrunk colourfulness on the 0..255 scale (0 for any grey image, ~100+ for vivid ones).

    The opponent planes are exact int16: r - g and 2 yb = r + g - 2b. Their sums are exact
    integers, and halving a mean or a standard deviation is exact, so this equals the float
    formula on yb = (r + g) / 2 - b bit for bit.
    """
    r, g, b = cv2.split(rgb)
    rg = cv2.subtract(r, g, dtype=cv2.CV_16S)                                                      # (H, W)
    yb2 = cv2.addWeighted(cv2.add(r, g, dtype=cv2.CV_16S), 1.0, b, -2.0, 0.0, dtype=cv2.CV_16S)    # (H, W)
    m_rg, s_rg = (float(v[0, 0]) for v in cv2.meanStdDev(rg))
    m_yb, s_yb = (float(v[0, 0]) / 2 for v in cv2.meanStdDev(yb2))
    return float(np.hypot(s_rg, s_yb) + 0.3 * np.hypot(m_rg, m_yb))


def laplacian(grey: np.ndarray) -> np.ndarray:
    """4-neighbour Laplacian of the grey image, int16 ``(H, W)`` in grey levels (|value| <= 1020)."""
    return cv2.Laplacian(grey, cv2.CV_16S, ksize=1, borderType=cv2.BORDER_REPLICATE)


def sharpness(lap: np.ndarray) -> float:
    """Variance of the Laplacian (grey levels squared): 0 for a flat image, large for fine detail."""
    return float(cv2.meanStdDev(lap)[1][0, 0] ** 2)


def gradients(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """3x3 Sobel derivatives ``(dx, dy)``, int16 ``(H, W)``, replicated border: what Canny computes inside."""
    return (cv2.Sobel(grey, cv2.CV_16S, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE),
            cv2.Sobel(grey, cv2.CV_16S, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE))


def edge_density(grey: np.ndarray, grads: tuple[np.ndarray, np.ndarray] | None = None) -> float:
    """Share of Canny edge pixels (thresholds 100/200 on 0..255 grey) in [0, 1].

    ``grads``: the ``gradients`` of ``grey`` when already computed (Canny then skips its own Sobel).
    """
    dx, dy = grads if grads is not None else gradients(grey)
    return float(cv2.countNonZero(cv2.Canny(dx, dy, CANNY_LOW, CANNY_HIGH)) / grey.size)


def entropy_bits(counts: np.ndarray) -> float:
    """Shannon entropy in bits of a histogram of counts (0 for a single occupied bin or an empty one)."""
    counts = np.asarray(counts, dtype=np.float64).ravel()
    total = counts.sum()
    if total <= 0:
        return 0.0
    p = counts[counts > 0] / total
    return float(max(0.0, -(p * np.log2(p)).sum()))


def grey_entropy(grey: np.ndarray) -> float:
    """Entropy (bits, 0..8) of the 256-bin grey-level histogram."""
    return entropy_bits(cv2.calcHist([grey], [0], None, [256], [0, 256]))


def colour_entropy(rgb: np.ndarray) -> float:
    """Entropy (bits, 0..9) of the RGB histogram quantised to 8 levels per channel (512 bins)."""
    return entropy_bits(cv2.calcHist([rgb], [0, 1, 2], None, [8, 8, 8], [0, 256, 0, 256, 0, 256]))


def hue_histogram(hsv: np.ndarray) -> np.ndarray:
    """Counts ``(HUE_BINS,)`` of chromatic pixels (saturation > 0.2 and value > 0.15) per hue bin."""
    lower = (0, int(HUE_MIN_SAT * 255) + 1, int(HUE_MIN_VALUE * 255) + 1)  # strict ">" on integer levels
    chromatic = cv2.inRange(hsv, lower, (255, 255, 255))                    # (H, W) uint8 mask
    return cv2.calcHist([hsv], [0], chromatic, [HUE_BINS], [0, 256]).ravel().astype(np.float64)


def hue_count(hist: np.ndarray, alpha: float = HUE_ALPHA) -> float:
    """Number of significant hue bins (count > alpha x largest bin); 0 when no pixel is chromatic."""
    top = hist.max(initial=0.0)
    return float(np.count_nonzero(hist > alpha * top)) if top > 0 else 0.0


def dominant_hues(hist: np.ndarray, n_pixels: int, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest hue bins as (hue centre in [0, 1) of the circle, share of all pixels).

    Ties go to the lower bin; empty slots get hue NaN and share 0. Returns two ``(k,)`` arrays.
    """
    order = np.argsort(-hist, kind="stable")[:k]
    hues = np.full(k, np.nan)
    shares = np.zeros(k)
    for i, b in enumerate(order):
        if hist[b] > 0:
            hues[i] = (b + 0.5) / len(hist)
            shares[i] = hist[b] / max(n_pixels, 1)
    return hues, shares


def edge_mass(grey: np.ndarray, grads: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Sobel gradient magnitude, float32 ``(H, W)``: the saliency proxy of the composition measures.

    Integer Sobel responses (``grads`` when already computed), then an exactly rounded square
    root in numpy: ``cv2.magnitude`` approximates it (off by 1 ulp for many values), this cannot.
    """
    dx, dy = grads if grads is not None else gradients(grey)
    mass, gy = dx.astype(np.float32), dy.astype(np.float32)
    mass *= mass  # squares and sum are exact in float32 (|g| <= 1020)
    gy *= gy
    mass += gy
    return np.sqrt(mass, out=mass)


def marginals(mass: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column and row sums of a mass image ``(H, W)``: float64 ``(W,)`` and ``(H,)``.

    Exact for an ``edge_mass`` image: its non-zero values are float32 >= 1 (multiples of 2^-23),
    so any sum below 2^30 is exact in float64 and the summation order (threads, SIMD) cannot matter.
    """
    return (cv2.reduce(mass, 0, cv2.REDUCE_SUM, dtype=cv2.CV_64F).ravel(),
            cv2.reduce(mass, 1, cv2.REDUCE_SUM, dtype=cv2.CV_64F).ravel())


def centroid(cols: np.ndarray, rows: np.ndarray) -> tuple[float, float]:
    """Mass centroid (x, y) in unit coordinates (pixel centres, 0..1) from the marginals; the centre for zero mass."""
    total = float(cols.sum())
    if total <= _EPS:
        return 0.5, 0.5
    w, h = len(cols), len(rows)
    return float(cols @ ((np.arange(w) + 0.5) / w) / total), float(rows @ ((np.arange(h) + 0.5) / h) / total)


def composition(cx: float, cy: float) -> tuple[float, float]:
    """(distance to the nearest rule-of-thirds point, distance to the centre), unit coordinates.

    0 is on the point; a corner is 0.471 from the nearest thirds point and 0.707 from the centre.
    """
    thirds = float(np.hypot(_THIRDS[:, 0] - cx, _THIRDS[:, 1] - cy).min())
    return thirds, float(np.hypot(cx - 0.5, cy - 0.5))


def _quantile_span(marginal: np.ndarray, q: float) -> tuple[int, int]:
    """Index range [lo, hi) holding the central 1 - 2q of a non-negative 1-D mass with positive total."""
    c = np.cumsum(marginal)
    lo = int(np.searchsorted(c, q * c[-1], side="right"))          # first index past the lower q tail
    hi = int(np.searchsorted(c, (1 - q) * c[-1], side="left")) + 1  # one past the upper 1 - q point
    return lo, min(hi, len(c))


def subject_box(cols: np.ndarray, rows: np.ndarray, q: float = SUBJECT_QUANTILE) -> tuple[int, int, int, int]:
    """Ke et al.'s edge bounding box ``(y0, y1, x0, x1)``: the central 1 - 2q of the edge mass per axis.

    From the marginals of ``edge_mass``; the whole image when there is no edge mass.
    """
    if float(cols.sum()) <= _EPS:
        return 0, len(rows), 0, len(cols)
    y0, y1 = _quantile_span(rows, q)
    x0, x1 = _quantile_span(cols, q)
    return y0, y1, x0, x1


def clarity_contrast(lap: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """High-frequency energy per pixel inside the subject box over that of the whole image.

    Mean squared Laplacian ratio; 1 for a uniform image (flat or evenly textured), > 1 when the
    detail concentrates in the subject. The squares are exact in float32 and ``cv2.mean`` sums
    them in float64, exactly (``cv2.norm(NORM_L2SQR)`` does not: it is off in the last bit).
    """
    y0, y1, x0, x1 = box
    e2 = cv2.multiply(lap, lap, dtype=cv2.CV_32F)
    return float((cv2.mean(e2[y0:y1, x0:x1])[0] + _EPS) / (cv2.mean(e2)[0] + _EPS))


def brightness_contrast(grey: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Mean luma inside the subject box minus mean luma outside it, in [-1, 1]; 0 without a background."""
    y0, y1, x0, x1 = box
    inside = grey[y0:y1, x0:x1]
    n_in, n_all = inside.size, grey.size
    if n_in >= n_all:
        return 0.0
    s_in, s_all = float(inside.sum(dtype=np.int64)), float(grey.sum(dtype=np.int64))
    return (s_in / n_in - (s_all - s_in) / (n_all - n_in)) / 255.0


def box_area(box: tuple[int, int, int, int], shape: tuple[int, ...]) -> float:
    """Area of a box as a share of the image, in (0, 1]."""
    y0, y1, x0, x1 = box
    return (y1 - y0) * (x1 - x0) / float(shape[0] * shape[1])


@lru_cache(maxsize=1)
def face_cascade() -> cv2.CascadeClassifier:
    """OpenCV's frontal-face Haar cascade (loaded once per process)."""
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + FACE_CASCADE)
    if cascade.empty():
        raise RuntimeError(f"could not load {FACE_CASCADE} from {cv2.data.haarcascades}")
    return cascade


def face_count(grey: np.ndarray, max_side: int = 192) -> float:
    """Frontal faces found by the Haar cascade in the grey image shrunk to at most ``max_side`` px.

    The cascade's window is 24 px, so faces smaller than 24 / max_side of the longest side are
    not seen. No histogram equalisation: the cascade normalises every window by its own
    standard deviation, and equalising noisy flat regions made detection 2-3x slower.
    """
    h, w = grey.shape
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        grey = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    if min(grey.shape) < 24:
        return 0.0
    found = face_cascade().detectMultiScale(grey, scaleFactor=1.2, minNeighbors=5)
    return float(len(found))


MEASURES: tuple[str, ...] = (
    "brightness", "contrast", "saturation", "colourfulness", "sharpness", "edge_density", "grey_entropy",
    "colour_entropy", "hue_count", "chromatic_share", "dom_hue_1", "dom_share_1", "dom_hue_2", "dom_share_2",
    "dom_hue_3", "dom_share_3", "clarity_contrast", "brightness_contrast", "subject_area", "centroid_x",
    "centroid_y", "thirds_distance", "centre_distance", "face_count",
)


def measure(rgb: np.ndarray, faces: bool = True, face_size: int = 192) -> dict[str, float]:
    """Every statistic of ``MEASURES`` for one RGB ``uint8`` image ``(H, W, 3)``.

    ``face_count`` is NaN when ``faces`` is False (not run), else counted at ``face_size`` px.
    """
    p = planes(rgb)
    lap = laplacian(p.grey)
    grads = gradients(p.grey)
    mass = edge_mass(p.grey, grads)
    cols, rows = marginals(mass)
    box = subject_box(cols, rows)
    hist = hue_histogram(p.hsv)
    hues, shares = dominant_hues(hist, p.grey.size)
    cx, cy = centroid(cols, rows)
    thirds, centre = composition(cx, cy)
    out = {
        "brightness": brightness(p.grey), "contrast": rms_contrast(p.grey), "saturation": saturation_mean(p.hsv),
        "colourfulness": colourfulness(p.rgb), "sharpness": sharpness(lap), "edge_density": edge_density(p.grey, grads),
        "grey_entropy": grey_entropy(p.grey), "colour_entropy": colour_entropy(p.rgb), "hue_count": hue_count(hist),
        "chromatic_share": float(hist.sum() / p.grey.size),
        "clarity_contrast": clarity_contrast(lap, box), "brightness_contrast": brightness_contrast(p.grey, box),
        "subject_area": box_area(box, p.grey.shape), "centroid_x": cx, "centroid_y": cy,
        "thirds_distance": thirds, "centre_distance": centre,
        "face_count": face_count(p.grey, face_size) if faces else float("nan"),
    }
    for i in range(3):
        out[f"dom_hue_{i + 1}"], out[f"dom_share_{i + 1}"] = float(hues[i]), float(shares[i])
    return {k: out[k] for k in MEASURES}
