"""Embedding geometry: are an arm's nearest neighbours spelling variants, relatives, or neither?

For probe word families (run, compute, nation, code, act, build, play, work), each query form
that is one GPT-2 token (` run`, `run`, ` Run`, `Run`) gets its top-k nearest neighbours by
cosine over the real vocabulary (ids < 50257) in each arm's input-embedding space, centred
(the vocabulary mean subtracted). A neighbour is a typographic variant when it is the family's
word up to case and surrounding non-alphanumerics (`Run`, ` run`, `.run`), a morphological
relative when it is one of the family's listed relatives (`running`, `runner`, `ran`) in the
same sense, and other otherwise. Reported per space: typographic@k and morph@k (share of
neighbours of each class), and the cosine of byte-similar but unrelated pairs (compute/commute,
nation/notion, ...): the trade-off the paper names.
Spaces: every arm at each --layers value (0 = the token embedding; L >= 1 = the hidden state
after block L with each token fed alone, position 0) and, as references, the untrained Kronecker
codec (the z-normalised codec vectors themselves) and the trigram_hash arm's untrained code (each
id's bucket counts at the arm's defaults, before any learned table). Writes <out>/neighbors.{json,md}.

    python -m eval.neighbors --ckpt bpe=out/bpe_s0/ckpt_004000.pt --ckpt kronecker=out/kronecker_s0/ckpt_004000.pt
    python -m eval.neighbors --ckpt bpe=PATH --ckpt kronecker=PATH --layers 0 1 --k 10
"""
import argparse

import torch

from devices import resolve_device
from embeddings import KroneckerEmbedding, TrigramHashEmbedding
from errors import UserError, run_main
from eval.geometry import CHUNK, CLASSES, classify, nearest, pair_cosines, vocabulary_stats
from eval.probe_common import (add_common_args, arms_markdown, decode, load_arms, md_cell,
                               token_bytes, token_ids_by_bytes, write_report)
from eval.runs import markdown_table
from tokenizer import GPT2_VOCAB

FAMILIES = {  # word -> morphological relatives (lower case)
    "run": ("runs", "running", "runner", "runners", "ran", "rerun"),
    "compute": ("computes", "computed", "computing", "computer", "computers", "computation", "computational",
                "computations", "computable"),
    "nation": ("nations", "national", "nationals", "nationally", "nationality", "nationalities", "nationalism",
               "nationalist", "nationwide", "international"),
    "code": ("codes", "coded", "coding", "coder", "coders", "codebase", "encode", "decode", "encoded", "decoded",
             "encoding", "decoding"),
    "act": ("acts", "acted", "acting", "action", "actions", "active", "actively", "activity", "activities", "actor",
            "actors", "actress", "react", "reaction", "activate", "activation"),
    "build": ("builds", "building", "buildings", "built", "builder", "builders", "rebuild", "rebuilt", "rebuilding"),
    "play": ("plays", "played", "playing", "player", "players", "playful", "replay", "playable"),
    "work": ("works", "worked", "working", "worker", "workers", "rework", "workable"),
}
BYTE_SIMILAR_PAIRS = (("compute", "commute"), ("nation", "notion"), ("form", "from"), ("quite", "quiet"),
                      ("angel", "angle"), ("desert", "dessert"), ("casual", "causal"), ("trail", "trial"),
                      ("diary", "dairy"), ("later", "latter"), ("lose", "loose"), ("accept", "except"),
                      ("bread", "break"), ("card", "cart"), ("house", "horse"), ("marital", "martial"),
                      ("price", "prize"), ("cloud", "could"), ("plant", "plane"))
CODEC_SPACE = "codec (untrained)"
TRIGRAM_SPACE = "trigram buckets (untrained)"
MAX_CODEC_POS_DIM = 128  # the longest GPT-2 token is 128 bytes; more slots would stay empty


# ----------------------------------------------------------------------------- words

def single_token_id(text):
    return token_ids_by_bytes().get(text.encode("utf-8"))


def query_forms(word):
    return (" " + word, word, " " + word.capitalize(), word.capitalize())


def query_tokens():
    """[(word, text, id)] for every family form that is a single GPT-2 token."""
    return [(w, t, single_token_id(t)) for w in FAMILIES for t in query_forms(w) if single_token_id(t) is not None]


def pair_tokens():
    """[(a, b, id_a, id_b)] of the byte-similar pairs, as space-prefixed single tokens."""
    ids = [(a, b, single_token_id(" " + a), single_token_id(" " + b)) for a, b in BYTE_SIMILAR_PAIRS]
    missing = [f"{a}/{b}" for a, b, i, j in ids if i is None or j is None]
    if missing:
        raise ValueError(f"byte-similar pairs that are not single GPT-2 tokens: {missing}")
    return ids


# ----------------------------------------------------------------------------- vector spaces

def arm_vectors(model, layers):
    """ids (n,) -> one (n, d) tensor per layer: 0 = token embedding, L = after block L, token alone."""
    @torch.no_grad()
    def vectors(ids):
        emb = model.token_embedding(ids[:, None])[:, 0]
        states = model.hidden_states(ids[:, None]) if max(layers) > 0 else None
        return [emb if layer == 0 else states[layer][:, 0] for layer in layers]
    return vectors


def codec_vectors(codec):
    @torch.no_grad()
    def vectors(ids):
        return [codec.codec(ids)]
    return vectors


def trigram_vectors(hashed):
    def vectors(ids):
        return [hashed.incidence_rows(ids)]
    return vectors


def centred_geometry(vectors, query_ids, pair_ids, k, device, n_vocab=GPT2_VOCAB, chunk=CHUNK):
    """Top-k cosine neighbours (self excluded) of each query over ids < n_vocab, and pair cosines,
    after subtracting the vocabulary mean; one result per tensor that `vectors(ids)` returns.

    Two passes over the vocabulary in chunks (mean, then neighbours; eval/geometry.py), so no
    (V, D) matrix is held.
    """
    all_ids = torch.arange(n_vocab, device=device)
    means = [s["mean"] for s in vocabulary_stats(vectors, all_ids, chunk)]
    q_ids = torch.tensor(query_ids, device=device)
    best = nearest(vectors, vectors(q_ids), all_ids, k, means=means, exclude=q_ids, chunk=chunk)
    a_ids, b_ids = (torch.tensor([p[i] for p in pair_ids], device=device) for i in (0, 1))
    pairs = [pair_cosines(a, b, m) for a, b, m in zip(vectors(a_ids), vectors(b_ids), means)]
    return [dict(neighbour_ids=i.cpu().tolist(), neighbour_cos=v.cpu().tolist(), pair_cos=p.cpu().tolist())
            for (v, i), p in zip(best, pairs)]


# ----------------------------------------------------------------------------- scoring

def score_space(label, geometry, queries, pairs, k):
    rows, counts = [], dict.fromkeys(CLASSES, 0)
    for (word, text, _), ids, cos in zip(queries, geometry["neighbour_ids"], geometry["neighbour_cos"]):
        neighbours = []
        for i, c in zip(ids, cos):
            cls = classify(decode([i]), word, FAMILIES[word])
            counts[cls] += 1
            neighbours.append(dict(id=i, text=decode([i]), cos=c, cls=cls))
        rows.append(dict(family=word, query=text, neighbours=neighbours))
    total = k * len(queries)
    pair_rows = [dict(a=a, b=b, cos=c) for (a, b, _, _), c in zip(pairs, geometry["pair_cos"])]
    return dict(space=label, k=k, typographic_at_k=counts["typographic"] / total,
                morph_at_k=counts["morphological"] / total, other_at_k=counts["other"] / total,
                pair_cos_mean=sum(geometry["pair_cos"]) / len(pairs), pairs=pair_rows, queries=rows)


def space_label(arm, layer):
    return arm.name if layer == 0 else f"{arm.name} after block {layer}"


# ----------------------------------------------------------------------------- report

def report_markdown(arms, spaces, k, layers):
    class_mark = dict(typographic="ᵀ", morphological="ᴹ", other="")
    pairs = spaces[0]["pairs"]
    parts = [
        "# Embedding geometry: nearest neighbours and byte-similar pairs", arms_markdown(arms),
        f"Cosine in each space after subtracting the mean over the real vocabulary (ids < {GPT2_VOCAB}); "
        f"top-{k} neighbours of every single-token form of the probe words; layers {list(layers)} "
        "(0 = token embedding; L = after block L, each token fed alone). "
        f"`{CODEC_SPACE}` is the z-normalised Kronecker codec itself, before any projection; "
        f"`{TRIGRAM_SPACE}` is each id's bucket counts under the trigram_hash arm's hash (its defaults), "
        "before any learned table.",
        "## Neighbour classes",
        markdown_table(["space", f"typographic@{k}", f"morph@{k}", f"other@{k}", "byte-similar pair cos (mean)"],
                       [[s["space"], f"{s['typographic_at_k']:.3f}", f"{s['morph_at_k']:.3f}",
                         f"{s['other_at_k']:.3f}", f"{s['pair_cos_mean']:.3f}"] for s in spaces]),
        "## Byte-similar, unrelated pairs (cosine)",
        markdown_table(["pair"] + [s["space"] for s in spaces],
                       [[f"{p['a']} / {p['b']}"] + [f"{s['pairs'][i]['cos']:.3f}" for s in spaces]
                        for i, p in enumerate(pairs)]),
        f"## Top-{k} neighbours (ᵀ typographic variant, ᴹ morphological relative)",
    ]
    for s in spaces:
        parts.append(f"### {s['space']}\n\n" + markdown_table(
            ["query", "neighbours"],
            [[md_cell(q["query"]), " ".join(md_cell(n["text"]) + class_mark[n["cls"]] for n in q["neighbours"])]
             for q in s["queries"]]))
    return "\n\n".join(parts)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p)
    p.add_argument("--k", type=int, default=10, help="neighbours per query (default: %(default)s)")
    p.add_argument("--layers", type=int, nargs="+", default=[0],
                   help="0 = token embedding, L = after block L (default: 0)")
    p.add_argument("--codec-pos-dim", type=int, default=16, help="pos_dim of the reference codec (default: 16)")
    args = p.parse_args(argv)
    if args.k < 1 or min(args.layers) < 0:
        raise UserError("need --k >= 1 and --layers >= 0")
    if not 1 <= args.codec_pos_dim <= MAX_CODEC_POS_DIM:
        raise UserError(f"--codec-pos-dim must be in 1..{MAX_CODEC_POS_DIM} (bytes per token kept; GPT-2 uses 16), "
                        f"got {args.codec_pos_dim}")
    return args


def main(argv=None):
    args = parse_args(argv)
    device = resolve_device(args.device)
    arms = load_arms(args.ckpt, device)
    layers = list(dict.fromkeys(args.layers))
    for arm in arms:
        if max(layers) > arm.model.config.n_layer:
            raise UserError(f"--layers {max(layers)} but arm {arm.name} has {arm.model.config.n_layer} blocks")
    queries, pairs = query_tokens(), pair_tokens()
    query_ids, pair_ids = [q[2] for q in queries], [(p[2], p[3]) for p in pairs]
    codec = KroneckerEmbedding(token_bytes(), n_embd=1, pos_dim=args.codec_pos_dim).to(device)
    sources = [([space_label(arm, layer) for layer in layers], arm_vectors(arm.model, layers)) for arm in arms]
    hashed = TrigramHashEmbedding(token_bytes(), n_embd=1).to(device)
    sources += [([CODEC_SPACE], codec_vectors(codec)), ([TRIGRAM_SPACE], trigram_vectors(hashed))]
    spaces = []
    for labels, vectors in sources:
        geometries = centred_geometry(vectors, query_ids, pair_ids, args.k, device)
        spaces += [score_space(label, g, queries, pairs, args.k) for label, g in zip(labels, geometries)]
    data = dict(k=args.k, layers=layers, codec_pos_dim=args.codec_pos_dim, arms=[a.describe() for a in arms],
                spaces=spaces)
    paths = write_report(args.out, "neighbors", data, report_markdown(arms, spaces, args.k, layers))
    for s in spaces:
        print(f"{s['space']}: typographic@{args.k} {s['typographic_at_k']:.3f}, morph@{args.k} "
              f"{s['morph_at_k']:.3f}, byte-similar pair cos {s['pair_cos_mean']:.3f}")
    print(f"wrote {paths[0]} and {paths[1]}")


if __name__ == "__main__":
    run_main(main)
