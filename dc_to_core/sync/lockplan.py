"""Lock-safe groups of rows: the org locks every locking parent of a row while it writes it,
so rows that share a parent must not be spread over chunks the org processes at once.

- **One locking parent**: the rows of a parent form its group.
- **Several**: rows that share any locking parent belong together, transitively: the groups
  are the connected components of the graph whose nodes are the parents and whose edges are
  the rows. A component that fits in a chunk stays whole; a larger one is dealt into waves
  (``sync.loading``), one chunk of it per wave.
- **Where components merge** (a random graph has one giant component), keeping them whole
  would serialise the load: a component larger than ``MAX_WAVES`` chunks is grouped by its
  first locking parent instead, with parents that share other parents placed next to each
  other, so the conflicts left are few and the re-pass heals them.

Groups come in an order shuffled by ``salt`` (the partition), so partitions loading at once
do not reach the same groups at the same moments.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MAX_WAVES = 4   # a component spread over more chunks than this is split by its first parent


@dataclass
class LockPlan:
    group: pa.Array   # string per row: rows of one group go together (null: no parent)
    rank: pa.Array    # int64 per row: groups' shuffled order (sort by rank, then sub)
    sub: pa.Array     # int64 per row: order within the rank
    components: int = 0
    largest: int = 0  # rows of the largest component
    split: int = 0    # rows in components too large to keep whole


def _shuffled(labels: np.ndarray, salt: str) -> np.ndarray:
    distinct = np.unique(labels)
    ranks = np.array([zlib.crc32(f"{salt}\x1f{v}".encode()) for v in distinct.tolist()],
                     np.int64)
    return ranks[np.searchsorted(distinct, labels)]


def _nodes(parents: list[pa.Array]) -> tuple[np.ndarray, int]:
    """An (rows x parents) matrix of node ids, one id space across all parents (-1: null)."""
    columns, offset = [], 0
    for values in parents:
        encoded = pc.dictionary_encode(values).combine_chunks() if isinstance(
            values, pa.ChunkedArray) else pc.dictionary_encode(values)
        idx = np.asarray(encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False),
                         np.int64)
        columns.append(np.where(idx >= 0, idx + offset, -1))
        offset += len(encoded.dictionary)
    return np.stack(columns, axis=1), offset


def components(nodes: np.ndarray, n_nodes: int) -> np.ndarray:
    """The component label (its smallest node id) of every node, by hooking and pointer
    jumping over the rows' edges, vectorised."""
    labels = np.arange(n_nodes, dtype=np.int64)
    first = nodes[:, 0]
    pairs = [np.stack([first, nodes[:, k]], axis=1) for k in range(1, nodes.shape[1])]
    edges = np.concatenate(pairs) if pairs else np.empty((0, 2), np.int64)
    edges = edges[(edges >= 0).all(axis=1)]
    if not len(edges):
        return labels
    edges = np.unique(edges, axis=0)
    u, v = edges[:, 0], edges[:, 1]
    while True:
        lu, lv = labels[u], labels[v]
        if np.array_equal(lu, lv):
            return labels
        low = np.minimum(lu, lv)
        np.minimum.at(labels, lu, low)
        np.minimum.at(labels, lv, low)
        while True:
            jumped = labels[labels]
            if np.array_equal(jumped, labels):
                break
            labels = jumped


def lock_plan(parents: list[pa.Array], chunk_rows: int, salt: str,
              max_waves: int = MAX_WAVES) -> LockPlan:
    """The lock groups of rows whose locking parents are ``parents`` (one folded text array
    per locking lookup, aligned with the rows)."""
    n = len(parents[0]) if parents else 0
    if not n:
        empty = pa.array([], pa.int64())
        return LockPlan(pa.array([], pa.string()), empty, empty)
    nodes, n_nodes = _nodes(parents)
    if n_nodes == 0:
        nothing = pa.array(np.full(n, -1, np.int64))
        return LockPlan(pa.nulls(n, pa.string()), nothing, nothing)
    # a row's first parent present anchors it (a row may lack its first parent)
    present = nodes >= 0
    anchor = nodes[np.arange(n), np.argmax(present, axis=1)]
    anchor = np.where(present.any(axis=1), anchor, -1)
    nodes = np.concatenate([anchor[:, None], nodes], axis=1)
    label = components(nodes, n_nodes)
    comp = np.where(anchor >= 0, label[np.maximum(anchor, 0)], -1)
    sizes = np.bincount(comp[comp >= 0], minlength=n_nodes)
    too_big = sizes > max_waves * chunk_rows
    split = (comp >= 0) & too_big[np.maximum(comp, 0)]
    # within a split component: by the anchor, anchors sharing another parent side by side
    rest = nodes[:, 1:]
    other = np.where((rest >= 0) & (rest != anchor[:, None]), rest, n_nodes).min(
        axis=1, initial=n_nodes)
    nearest = np.full(n_nodes, n_nodes, np.int64)
    np.minimum.at(nearest, np.maximum(anchor, 0)[split], other[split])
    group = np.where(split, -2 - anchor, comp)  # whole components >= 0, split rows < -1
    # one rank per component (its shuffled place, then its label: no two share one)
    rank = np.where(comp >= 0, (_shuffled(np.maximum(comp, 0), salt) >> 8 << 31) + comp, -1)
    # shuffled too (partitions loading at once must not walk the shared parents in step)
    near = nearest[np.maximum(anchor, 0)]
    sub = np.where(split, (_shuffled(near, salt) >> 8 << 31) + np.maximum(anchor, 0),
                   np.maximum(anchor, 0))
    text = pc.cast(pa.array(group), pa.string())
    labels = pc.if_else(pa.array(comp >= 0), text, pa.scalar(None, pa.string()))
    used = sizes[sizes > 0]
    return LockPlan(labels, pa.array(rank, pa.int64()), pa.array(sub, pa.int64()),
                    len(used), int(used.max()) if len(used) else 0,
                    int(split.sum()))
