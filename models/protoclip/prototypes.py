"""Per-class prototypes from a diverse subset of TRAIN rows (k-center greedy / farthest-point sampling).

For each class the members are at most ``max_members`` (256, as in the seed method) of its train
rows, chosen for diversity on the L2-normalised embedding: the first member is drawn with
``seed``, every next one is the row farthest (Euclidean, i.e. largest 1 - cosine) from all
members chosen so far; ties go to the lowest row index, so the choice is deterministic under a
seed. A class with at most ``max_members`` rows keeps them all. The prototype is the mean of the
normalised members, normalised again. Only the rows in ``rows`` are ever read: the caller
passes the train mask and val / test / predict rows cannot influence anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featurestore.embeddings import l2_normalise

MAX_MEMBERS = 256


def farthest_point_order(emb: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k-center greedy on the rows of (n, d) ``emb`` (normalised here): (min(k, n),) row indices, in pick order."""
    z = l2_normalise(np.asarray(emb, dtype=np.float64))
    n = len(z)
    k = min(int(k), n)
    if k <= 0:
        return np.zeros(0, np.int64)
    picks = np.empty(k, np.int64)
    picks[0] = np.random.default_rng(seed).integers(n)
    dist = np.linalg.norm(z - z[picks[0]], axis=1)  # (n,) distance to the nearest member so far
    for j in range(1, k):
        picks[j] = int(np.argmax(dist))  # first maximum: deterministic tie-break
        dist = np.minimum(dist, np.linalg.norm(z - z[picks[j]], axis=1))
    return picks


@dataclass(frozen=True)
class Prototypes:
    """Class prototypes of one modality.

    vectors: (C, d) float32, unit rows; all-zero for a class without train rows.
    members: C arrays of row indices into the matrix given to ``class_prototypes``.
    counts:  (C,) int64, train rows per class (before the member cap).
    """
    vectors: np.ndarray
    members: tuple[np.ndarray, ...]
    counts: np.ndarray

    @property
    def present(self) -> np.ndarray:
        """(C,) bool: classes that have a prototype."""
        return self.counts > 0


def class_prototypes(emb: np.ndarray, classes: np.ndarray, *, n_classes: int, rows: np.ndarray | None = None,
                     max_members: int = MAX_MEMBERS, seed: int = 0) -> Prototypes:
    """Diverse-subset prototypes of (n, d) ``emb`` per class code in (n,) ``classes``.

    ``classes``: integer codes in [0, n_classes); anything else (negative, NaN, too large) is
    unknown and ignored. ``rows``: (n,) bool mask of the rows that may be read (the train split);
    None = all. Each class's first member is drawn with ``seed + class code``.
    """
    if max_members < 1:
        raise ValueError("max_members must be >= 1")
    classes = np.asarray(classes, dtype=np.float64)
    allowed = np.ones(len(classes), bool) if rows is None else np.asarray(rows, bool)
    valid = allowed & np.isfinite(classes) & (classes >= 0) & (classes < n_classes)
    idx = np.flatnonzero(valid)
    x = np.asarray(emb[idx], dtype=np.float64)  # only allowed rows are read
    code = classes[idx].astype(np.int64)
    vectors = np.zeros((n_classes, np.shape(emb)[1]), np.float64)
    members, counts = [], np.zeros(n_classes, np.int64)
    for c in range(n_classes):
        local = np.flatnonzero(code == c)
        counts[c] = len(local)
        pick = local[farthest_point_order(x[local], max_members, seed + c)] if len(local) else local
        members.append(idx[pick])
        if len(pick):
            vectors[c] = l2_normalise(l2_normalise(np.asarray(x[pick], dtype=np.float64)).mean(axis=0, keepdims=True))[0]
    return Prototypes(vectors=vectors.astype(np.float32), members=tuple(members), counts=counts)


def modality_prototypes(blocks: dict[str, np.ndarray], classes: np.ndarray, *, n_classes: int,
                        rows: np.ndarray | None = None, max_members: int = MAX_MEMBERS,
                        seed: int = 0) -> dict[str, Prototypes]:
    """``class_prototypes`` of every modality block (e.g. {'image': (n, d_i), 'text': (n, d_t)});
    members are chosen independently in each modality's own space."""
    return {name: class_prototypes(x, classes, n_classes=n_classes, rows=rows, max_members=max_members, seed=seed)
            for name, x in blocks.items()}
