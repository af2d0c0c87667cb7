"""Cosine geometry of embedding spaces over a vocabulary, read in chunks (no (V, d) copy is made).

A source of spaces is a function `vectors(ids) -> [tensor (n, d_s), ...]`: one tensor per space,
so several spaces (an arm's layers, or one table seen raw and centred) share one pass over the
vocabulary; `ids` is a 1-D int64 tensor of the vocabulary rows that count.
- `vocabulary_stats`: per space the mean vector, the mean row norm and the anisotropy, the mean
  cosine over all pairs of distinct rows (Ethayarajh 2019), exact in one pass:
  (|sum of unit rows|^2 - n) / (n (n - 1));
- `nearest`: each query's top-k rows by cosine, raw or after subtracting a mean vector;
- `normalise` / `classify`: a token's canonical form (case, surrounding non-alphanumerics) and
  its class against a word family: typographic variant / morphological relative / other.
Used by eval/neighbors.py and eval/cross_model.py. Not a script.
"""
import re

import torch
import torch.nn.functional as F

CHUNK = 4096  # vocabulary rows per step
CLASSES = ("typographic", "morphological", "other")


# ----------------------------------------------------------------------------- words and classes

def normalise(text):
    """The canonical form: lower case, without leading/trailing characters that are not letters or
    digits (any script): ` Run.` -> `run`."""
    return re.sub(r"^[\W_]+|[\W_]+$", "", text.lower())


def classify(neighbour, word, relatives):
    """'typographic' (the neighbour's canonical form is `word`), 'morphological' (it is one of
    `relatives`, canonical forms) or 'other', for a neighbour token's text."""
    norm = normalise(neighbour)
    if norm == word:
        return "typographic"
    return "morphological" if norm in relatives else "other"


# ----------------------------------------------------------------------------- chunked passes

def unit_centred(x, mean=None):
    """Rows of x (float32), minus `mean` when given, scaled to unit L2 norm (zero rows stay 0)."""
    x = x.float()
    return F.normalize(x if mean is None else x - mean, dim=-1)


def vocabulary_stats(vectors, ids, chunk=CHUNK):
    """One dict per space over the rows `ids`: mean (d,) float32, mean_norm (float, |mean|),
    mean_row_norm (float), anisotropy (float, mean cosine over pairs of distinct rows; needs
    2+ rows). Sums are float64, so the result does not depend on the chunk size beyond rounding."""
    totals = None
    for part in ids.split(chunk):
        parts = [(r.sum(0, dtype=torch.float64), unit_centred(r).sum(0, dtype=torch.float64),
                  r.float().norm(dim=-1).sum(dtype=torch.float64)) for r in vectors(part)]
        totals = parts if totals is None else [tuple(a + b for a, b in zip(t, p)) for t, p in zip(totals, parts)]
    count = len(ids)
    stats = []
    for s, u, n in totals:
        mean = s / count
        stats.append(dict(mean=mean.float(), mean_norm=float(mean.norm()), mean_row_norm=float(n / count),
                          anisotropy=float((u.dot(u) - count) / (count * (count - 1)))))
    return stats


def nearest(vectors, queries, ids, k, means=None, exclude=None, chunk=CHUNK):
    """Top-k rows of `ids` by cosine to each query, per space.

    queries: one (n_q, d_s) tensor per space; means: one (d_s,) tensor or None (raw cosine) per
    space, subtracted from queries and rows alike (default: all raw); exclude: (n_q,) int64, the
    id each query may not return (its own token; -1 for none). Returns per space (cos (n_q, k)
    float32, ids (n_q, k) int64), best first; k is capped at len(ids).
    """
    means = means if means is not None else [None] * len(queries)
    k = min(k, len(ids))
    units = [unit_centred(q, m) for q, m in zip(queries, means)]
    n_q = len(units[0])
    best = [(torch.full((n_q, k), -2.0, device=ids.device), torch.zeros((n_q, k), dtype=torch.long, device=ids.device))
            for _ in units]
    for part in ids.split(chunk):
        for s, (v, m) in enumerate(zip(vectors(part), means)):
            sims = units[s] @ unit_centred(v, m).T
            if exclude is not None:
                sims = sims.masked_fill(exclude[:, None] == part[None, :], float("-inf"))
            values = torch.cat([best[s][0], sims], dim=1)
            candidates = torch.cat([best[s][1], part.expand(n_q, -1)], dim=1)
            top = values.topk(k, dim=1)
            best[s] = (top.values, candidates.gather(1, top.indices))
    return best


def pair_cosines(a, b, mean=None):
    """(n,) cosine of row i of a with row i of b, after subtracting `mean` when given."""
    return (unit_centred(a, mean) * unit_centred(b, mean)).sum(-1)
