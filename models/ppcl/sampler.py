"""Hierarchical batch sampler: batches in which most anchors have positives at every tree level.

A uniformly shuffled batch of 256 out of ~16k posts over 668 concepts rarely holds two posts of
the same concept, so the concept-level SupCon term of CRD would have almost no positives. One
epoch here is built in four steps, all drawn from ``numpy.random.default_rng([seed, epoch])``:

1. *Pieces*: the rows of each tree path (category, subcategory, concept; an unknown code, < 0,
   counts as one more value) are shuffled and cut into pieces of ``posts_per_concept`` rows.
   A remainder of one row joins the path's last piece, so a piece has one row only when its
   path has one row in all.
2. *Order*: categories, subcategories inside them, and concepts inside those get random ranks;
   the pieces are ordered by (category rank, subcategory rank, concept rank), so neighbouring
   pieces share the subcategory, and then the category.
3. *Segments*: ``pieces_per_segment`` consecutive pieces form a segment (with the defaults
   ~16 rows: 4 concepts x 4 posts, mostly of one subcategory).
4. *Batches*: the segments are shuffled, concatenated, and cut into batches of exactly
   ``batch_size`` rows (the last batch holds the rest). A batch thus mixes segments from
   different categories (negatives at every level) while each anchor keeps its piece-mates
   (positives at the concept level, hence at every coarser level too).

Epoch semantics: every row is yielded exactly once per epoch; the batches of epoch e depend
only on (seed, e) and the paths. ``uniform_batches`` is the plain shuffled alternative.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def _dense(keys: np.ndarray) -> np.ndarray:
    """(n, k) integer keys -> (n,) dense group ids (equal rows, equal ids)."""
    return np.unique(keys, axis=0, return_inverse=True)[1].reshape(-1)


def _ranks(group: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n,) dense group ids -> (n,) a random rank of each row's group."""
    perm = rng.permutation(group.max() + 1)
    return perm[group]


def hierarchical_batches(paths: np.ndarray, batch_size: int, rng: np.random.Generator, *,
                         posts_per_concept: int = 4, pieces_per_segment: int = 4) -> list[np.ndarray]:
    """One epoch of batches (row-index arrays) over ``paths`` (n, 3) integer codes, < 0 = unknown."""
    paths = np.where(np.asarray(paths) < 0, -1, np.asarray(paths)).astype(np.int64)
    n = len(paths)
    if n == 0:
        return []
    cat, sub, con = (_dense(paths[:, :k]) for k in (1, 2, 3))  # group ids of each path prefix
    # step 2: random ranks per level; step 1: a random order inside each concept path
    key = np.lexsort((rng.random(n), _ranks(con, rng), _ranks(sub, rng), _ranks(cat, rng)))
    con_sorted = con[key]
    start = np.r_[True, con_sorted[1:] != con_sorted[:-1]]  # first row of each path run
    run_start = np.maximum.accumulate(np.where(start, np.arange(n), 0))
    pos = np.arange(n) - run_start  # position inside the run
    run_len = np.bincount(con_sorted, minlength=con.max() + 1)[con_sorted]
    piece = pos // posts_per_concept
    lone = (run_len % posts_per_concept == 1) & (pos == run_len - 1) & (run_len > 1)
    piece = np.where(lone, piece - 1, piece)  # a remainder of one row joins the previous piece
    new_piece = np.r_[True, (piece[1:] != piece[:-1]) | start[1:]]
    piece_id = np.cumsum(new_piece) - 1  # global piece index in the ordered sequence
    segment = piece_id // pieces_per_segment  # step 3
    order = np.lexsort((np.arange(n), rng.permutation(segment.max() + 1)[segment]))  # step 4
    rows = key[order]
    return [rows[a:a + batch_size] for a in range(0, n, batch_size)]


def uniform_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of uniformly shuffled batches of ``batch_size`` rows (the last holds the rest)."""
    rows = rng.permutation(n)
    return [rows[a:a + batch_size] for a in range(0, n, batch_size)]


class HierarchicalBatchSampler:
    """Batch sampler over tree paths (n, 3); ``set_epoch(e)`` selects the epoch's batches.

    Iterating yields lists of row indices (torch's ``batch_sampler`` protocol); ``len`` is the
    number of batches of an epoch, ceil(n / batch_size).
    """

    def __init__(self, paths: np.ndarray, batch_size: int, *, seed: int = 0, posts_per_concept: int = 4,
                 pieces_per_segment: int = 4):
        if batch_size < 1 or posts_per_concept < 1 or pieces_per_segment < 1:
            raise ValueError("batch_size, posts_per_concept and pieces_per_segment must be >= 1")
        paths = np.asarray(paths)
        if paths.ndim != 2 or paths.shape[1] != 3:
            raise ValueError(f"paths must be (n, 3) codes (category, subcategory, concept), got {paths.shape}")
        self.paths = paths
        self.batch_size = batch_size
        self.seed = seed
        self.posts_per_concept = posts_per_concept
        self.pieces_per_segment = pieces_per_segment
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch])
        return hierarchical_batches(self.paths, self.batch_size, rng, posts_per_concept=self.posts_per_concept,
                                    pieces_per_segment=self.pieces_per_segment)

    def __iter__(self) -> Iterator[list[int]]:
        return (b.tolist() for b in self.batches())

    def __len__(self) -> int:
        return -(-len(self.paths) // self.batch_size)
