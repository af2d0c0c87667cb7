"""Spelling robustness: how much does a one-word typo move each arm's next-token prediction?

For every clean/typo prompt pair (eval/data/typo_pairs.jsonl, or --pairs, see eval/typo_pairs.py)
and every checkpoint, at the last position:
- top-1 next-token id for clean and typo prompt, and whether they match ("stable");
- KL(clean || typo) of the next-token distributions over the real vocabulary (ids < 50257), nats;
- cosine of the final hidden states (after ln_f);
- log-prob drop of the clean top-1 token: log p_clean(t) - log p_typo(t);
- token counts of both prompts (a prompt longer than the context is cut to its last block_size
  tokens, and the report says how many were).
An arm may have several checkpoints (`--ckpt kronecker=a.pt --ckpt kronecker=b.pt`, one per seed):
its per-pair values are averaged over them. Per arm: top-1 stability and mean KL with 95% bootstrap
intervals over prompt pairs, median KL, mean cosine and log-prob drop, overall and per category.
Per pair of arms (A listed before B): McNemar's exact test on top-1 stability over (seed, prompt
pair) units matched by training seed (by order when a checkpoint has no seed); the differences
B - A in stability and mean KL with bootstrap intervals; and per category a win/tie/loss of B
against A, where a difference whose bootstrap interval contains 0, or that is within the tie
tolerance (--tie-stability, absolute; --tie-kl, relative to the pair's mean KL), is a tie.
Writes <out>/robustness.{json,md}.

    python -m eval.robustness --ckpt bpe=out/bpe_s0/ckpt_004000.pt --ckpt kronecker=out/kronecker_s0/ckpt_004000.pt
    python -m eval.robustness --ckpt bpe=b0.pt --ckpt bpe=b1.pt --ckpt kronecker=k0.pt --ckpt kronecker=k1.pt
"""
import argparse
import itertools
import os
import statistics

import numpy as np
import torch
import torch.nn.functional as F

from devices import resolve_device
from errors import UserError, run_main
from eval.probe_common import (add_common_args, arms_markdown, context_note, decode, fit_context, fmt,
                               arms_tokenizer, load_arms, md_cell, write_report)
from eval.runs import markdown_table
from eval.stats import bootstrap_interval, fmt_interval, fmt_p, mcnemar_exact, t_interval
from eval.typo_pairs import DEFAULT_PAIRS, flag_counts, flags_text, load_pairs
from tokenizer import GPT2_VOCAB

TIE_STABILITY = 0.05  # stability differences up to 5 points are ties
TIE_KL = 0.10  # mean-KL differences up to 10% of the two arms' mean KL are ties


# ----------------------------------------------------------------------------- metrics

def real_vocab_logprobs(logits, n_vocab=GPT2_VOCAB):
    """Log-probabilities over the tokenizer's n_vocab ids: padding ids (GPT-2: >= 50257) are
    dropped first."""
    return F.log_softmax(logits[..., :n_vocab].float(), dim=-1)


def compare_next_token(logp_clean, logp_typo):
    """Top-1 ids and match, KL(clean || typo), and the log-prob drop of the clean top-1 token."""
    top1_clean, top1_typo = int(logp_clean.argmax()), int(logp_typo.argmax())
    kl = float((logp_clean.exp() * (logp_clean - logp_typo)).sum())
    return dict(top1_clean=top1_clean, top1_typo=top1_typo, top1_match=top1_clean == top1_typo,
                kl=kl, logprob_drop=float(logp_clean[top1_clean] - logp_typo[top1_clean]))


@torch.no_grad()
def last_position(model, ids, device, n_vocab=GPT2_VOCAB):
    """(next-token log-probs over the real vocabulary, final hidden state) at the last position."""
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    hidden = model.hidden_states(idx)[-1][0, -1]  # after ln_f, so lm_head gives the logits
    return real_vocab_logprobs(model.lm_head(hidden), n_vocab).cpu(), hidden.float().cpu()


def probe_pair(model, enc, pair, device):
    block_size = model.config.block_size
    clean_ids, cut_clean = fit_context(enc.encode_ordinary(pair["clean"]), block_size)
    typo_ids, cut_typo = fit_context(enc.encode_ordinary(pair["typo"]), block_size)
    logp_clean, h_clean = last_position(model, clean_ids, device, enc.n_vocab)
    logp_typo, h_typo = last_position(model, typo_ids, device, enc.n_vocab)
    row = dict(pair, tokens_clean=len(clean_ids) + cut_clean, tokens_typo=len(typo_ids) + cut_typo,
               cut_clean=cut_clean, cut_typo=cut_typo, **compare_next_token(logp_clean, logp_typo),
               cos=float(F.cosine_similarity(h_clean, h_typo, dim=0)))
    row.update(top1_clean_text=decode([row["top1_clean"]], enc.name),
               top1_typo_text=decode([row["top1_typo"]], enc.name))
    return row


# ----------------------------------------------------------------------------- checkpoints of an arm

def checkpoint_labels(ckpts):
    """Per checkpoint: the arm name alone when it is the arm's only one, else 'arm s<seed>' ('arm #k'
    when the seed is unknown or repeats)."""
    labels = []
    for name, index in group_by_arm(ckpts).items():
        seeds = [ckpts[i].seed for i in index]
        for k, (i, seed) in enumerate(zip(index, seeds), start=1):
            unique_seed = seed is not None and seeds.count(seed) == 1
            labels.append((i, name if len(index) == 1 else f"{name} s{seed}" if unique_seed else f"{name} #{k}"))
    return [label for _, label in sorted(labels)]


def group_by_arm(ckpts):
    """arm name -> positions of its checkpoints in ckpts, arms in command-line order."""
    arms = {}
    for i, ckpt in enumerate(ckpts):
        arms.setdefault(ckpt.name, []).append(i)
    return arms


def matched_checkpoints(a_index, b_index, ckpts):
    """([(i, j)], how): positions of two arms' checkpoints paired by training seed when they share
    seeds, else by command-line order (how = "seed" or "order")."""
    seeds_a, seeds_b = [ckpts[i].seed for i in a_index], [ckpts[j].seed for j in b_index]
    shared = set(seeds_a) & set(seeds_b) - {None}
    if not shared:
        return list(zip(a_index, b_index)), "order"
    b_by_seed = dict(zip(seeds_b, b_index))
    return [(i, b_by_seed[seed]) for i, seed in zip(a_index, seeds_a) if seed in shared], "seed"


def per_pair(rows_list, key):
    """(n_pairs,) float64: a metric per prompt pair, averaged over checkpoints (a list of row lists)."""
    return np.mean([[float(r[key]) for r in rows] for rows in rows_list], axis=0)


# ----------------------------------------------------------------------------- aggregates

def interval_dict(values):
    low_high = bootstrap_interval(values)
    return dict(mean=float(np.mean(values)), low=low_high and low_high[0], high=low_high and low_high[1])


def aggregate(rows_list, index):
    """One arm's metrics over the prompt pairs in `index` (list of positions), seeds averaged per pair."""
    stab, kl = per_pair(rows_list, "top1_match")[index], per_pair(rows_list, "kl")[index]
    first = [rows_list[0][i] for i in index]
    return dict(n_pairs=len(index), n_checkpoints=len(rows_list), top1_stability=interval_dict(stab),
                kl_mean=interval_dict(kl), kl_median=float(np.median(kl)),
                cos_mean=float(per_pair(rows_list, "cos")[index].mean()),
                logprob_drop_mean=float(per_pair(rows_list, "logprob_drop")[index].mean()),
                tokens_clean_mean=statistics.fmean(r["tokens_clean"] for r in first),
                tokens_typo_mean=statistics.fmean(r["tokens_typo"] for r in first))


def category_index(pairs):
    """category -> positions of its pairs, in file order."""
    index = {}
    for i, pair in enumerate(pairs):
        index.setdefault(pair["category"], []).append(i)
    return index


def difference(rows_a, rows_b, key, index):
    """B - A on one metric over the prompt pairs in `index`, from matched checkpoint pairs.

    mean; low/high: 95% bootstrap over prompt pairs (per-pair differences averaged over seeds);
    seed_low/seed_high: 95% t interval over the matched seeds (None with one seed: the
    seed-to-seed spread is then unknown), n_seeds.
    """
    per_seed = [np.array([float(b[i][key]) - float(a[i][key]) for i in index]) for a, b in zip(rows_a, rows_b)]
    seed_interval = t_interval([d.mean() for d in per_seed])
    return dict(interval_dict(np.mean(per_seed, axis=0)), n_seeds=len(per_seed),
                seed_low=seed_interval and seed_interval[0], seed_high=seed_interval and seed_interval[1])


def verdict(diff, tolerance, higher_is_better):
    """'win', 'tie' or 'loss' of B against A from a difference() dict.

    A tie when |mean| <= tolerance, when the bootstrap interval over prompt pairs contains 0, or
    when the interval over seeds contains 0 or is missing (one seed per arm cannot tell an arm
    from its seed: two untrained models of one arm differ by tens of stability points).
    """
    intervals = [(diff["low"], diff["high"]), (diff["seed_low"], diff["seed_high"])]
    if abs(diff["mean"]) <= tolerance or any(low is None or low <= 0 <= high for low, high in intervals):
        return "tie"
    return "win" if (diff["mean"] > 0) == higher_is_better else "loss"


def mcnemar_table(matched_rows):
    """Both stable / only A / only B / neither over (seed, pair) units, and the exact McNemar p."""
    counts = dict(both=0, only_a=0, only_b=0, neither=0)
    for rows_a, rows_b in matched_rows:
        for a, b in zip(rows_a, rows_b):
            key = {(True, True): "both", (True, False): "only_a", (False, True): "only_b"}.get(
                (a["top1_match"], b["top1_match"]), "neither")
            counts[key] += 1
    return dict(counts, n=sum(counts.values()), p=mcnemar_exact(counts["only_a"], counts["only_b"]))


def compare_arms(name_a, name_b, ckpts, rows, arms, categories, tie_stability, tie_kl):
    """McNemar on stability, B - A differences with bootstrap intervals, per-category W/T/L."""
    matched, matched_by = matched_checkpoints(arms[name_a], arms[name_b], ckpts)
    rows_a, rows_b = [rows[i] for i, _ in matched], [rows[j] for _, j in matched]
    mean_kl = (per_pair(rows_a, "kl") + per_pair(rows_b, "kl")) / 2
    per_category = {}
    for category, index in categories.items():
        stab, kl = difference(rows_a, rows_b, "top1_match", index), difference(rows_a, rows_b, "kl", index)
        per_category[category] = dict(
            n_pairs=len(index), stability_diff=stab, kl_diff=kl,
            stability=verdict(stab, tie_stability, higher_is_better=True),
            kl=verdict(kl, tie_kl * float(mean_kl[index].mean()), higher_is_better=False))
    wtl = {m: {v: sum(c[m] == v for c in per_category.values()) for v in ("win", "tie", "loss")}
           for m in ("stability", "kl")}
    return dict(a=name_a, b=name_b, n_matched_checkpoints=len(matched), matched_by=matched_by,
                seeds=[ckpts[i].seed for i, _ in matched], mcnemar=mcnemar_table(list(zip(rows_a, rows_b))),
                stability_diff=difference(rows_a, rows_b, "top1_match", range(len(rows_a[0]))),
                kl_diff=difference(rows_a, rows_b, "kl", range(len(rows_a[0]))),
                per_category=per_category, categories_won_tied_lost=wtl)


def summarise(pairs, ckpts, rows, tie_stability=TIE_STABILITY, tie_kl=TIE_KL):
    """(per-arm aggregates, comparisons of every pair of arms in command-line order).

    rows[i] are checkpoint ckpts[i]'s per-pair rows (probe_pair), in pair-file order.
    """
    arms = group_by_arm(ckpts)
    categories = category_index(pairs)
    everything = list(range(len(pairs)))
    summary = {}
    for name, index in arms.items():
        rows_list = [rows[i] for i in index]
        summary[name] = dict(seeds=[ckpts[i].seed for i in index], overall=aggregate(rows_list, everything),
                             categories={c: aggregate(rows_list, i) for c, i in categories.items()})
    comparisons = [compare_arms(a, b, ckpts, rows, arms, categories, tie_stability, tie_kl)
                   for a, b in itertools.combinations(arms, 2)]
    return summary, comparisons


# ----------------------------------------------------------------------------- report

def pct_interval(d):
    return f"{100 * d['mean']:.1f}% {fmt_interval(d['low'] and 100 * d['low'], d['high'] and 100 * d['high'], 1)}"


def value_interval(d, digits=4):
    return f"{d['mean']:.{digits}f} {fmt_interval(d['low'], d['high'], digits)}"


def seed_interval_text(d, scale=1.0, digits=4):
    """The t interval over seeds of a difference() dict, or why there is none."""
    if d["seed_low"] is None:
        return "n/a (1 seed)"
    return f"{fmt_interval(scale * d['seed_low'], scale * d['seed_high'], digits)} ({d['n_seeds']} seeds)"


def wtl_text(counts):
    return f"{counts['win']}/{counts['tie']}/{counts['loss']}"


def seeds_text(seeds):
    return ", ".join("?" if s is None else str(s) for s in seeds)


def comparison_tables(comparisons, args):
    done = comparisons
    unmatched = [f"{c['b']} vs {c['a']}: no shared training seed; checkpoints paired in command-line order"
                 for c in comparisons if c["matched_by"] == "order"]
    head = ("## Arm pairs: McNemar's exact test on top-1 stability, differences B - A\n\n"
            "Units are (seed, prompt pair) with checkpoints matched by training seed; only A / only B: "
            "pairs where only that arm keeps its top-1. p is the exact two-sided binomial test of the "
            "discordant counts (McNemar); it and the prompt intervals (95% percentile bootstrap over prompt "
            "pairs) compare these checkpoints. Whether an arm differs from another needs the interval over "
            "seeds (95% t, n - 1 df), which one seed per arm cannot give: two untrained models of one arm "
            "already differ by tens of stability points.")
    mcnemar = markdown_table(
        ["B vs A", "seeds", "n units", "both", "only A", "only B", "neither", "McNemar p",
         "stability B - A [95% CI prompts]", "over seeds", "mean KL B - A [95% CI prompts]", "over seeds"],
        [[f"{c['b']} vs {c['a']}", seeds_text(c["seeds"]), c["mcnemar"]["n"], c["mcnemar"]["both"],
          c["mcnemar"]["only_a"], c["mcnemar"]["only_b"], c["mcnemar"]["neither"], fmt_p(c["mcnemar"]["p"]),
          pct_interval(c["stability_diff"]), seed_interval_text(c["stability_diff"], 100, 1),
          value_interval(c["kl_diff"]), seed_interval_text(c["kl_diff"])] for c in done])
    rule = (f"A category is a tie when the difference B - A is within the tolerance ({100 * args.tie_stability:g} "
            f"points of stability; {100 * args.tie_kl:g}% of the two arms' mean KL), or its 95% interval over "
            "prompt pairs or over seeds contains 0, or there is one seed per arm (no interval over seeds); "
            "otherwise B wins (higher stability, lower KL) or loses.")
    wtl = markdown_table(["B vs A", "categories", "top-1 stability W/T/L", "mean KL W/T/L"],
                         [[f"{c['b']} vs {c['a']}", len(c["per_category"]),
                           wtl_text(c["categories_won_tied_lost"]["stability"]),
                           wtl_text(c["categories_won_tied_lost"]["kl"])] for c in done])
    return [head, mcnemar, "## Categories won/tied/lost by B against A", rule, wtl] + (
        ["\n".join(f"- {u}" for u in unmatched)] if unmatched else [])


def report_markdown(ckpts, labels, summary, comparisons, pairs, rows, args, notes):
    overall = markdown_table(
        ["arm", "checkpoints (seeds)", "pairs", "top-1 stability [95% CI]", "mean KL [95% CI]", "median KL",
         "mean cos", "mean log-prob drop", "tokens clean/typo"],
        [[n, f"{s['overall']['n_checkpoints']} ({seeds_text(s['seeds'])})", s["overall"]["n_pairs"],
          pct_interval(s["overall"]["top1_stability"]), value_interval(s["overall"]["kl_mean"]),
          fmt(s["overall"]["kl_median"]), fmt(s["overall"]["cos_mean"]), fmt(s["overall"]["logprob_drop_mean"]),
          f"{s['overall']['tokens_clean_mean']:.2f}/{s['overall']['tokens_typo_mean']:.2f}"]
         for n, s in summary.items()])
    names = list(summary)
    categories = list(summary[names[0]]["categories"])
    per_category = markdown_table(
        ["category", "pairs"] + [f"{n} stab / KL" for n in names],
        [[c, summary[names[0]]["categories"][c]["n_pairs"]]
         + [f"{100 * summary[n]['categories'][c]['top1_stability']['mean']:.0f}% / "
            f"{fmt(summary[n]['categories'][c]['kl_mean']['mean'])}" for n in names] for c in categories])
    parts = ["# Spelling robustness", arms_markdown(ckpts),
             f"{len(pairs)} clean/typo pairs from `{args.pairs}`; {flags_text(pairs)}. Next-token metrics at "
             "the last position, KL and log-probs over the real vocabulary (ids < 50257). An arm with several "
             "checkpoints has its values averaged over them per pair; n and the 95% bootstrap interval over "
             "prompt pairs are stated with every rate (the interval reflects the choice of prompts, not of "
             "training seed).", *notes,
             "## Per arm", overall]
    if comparisons:
        parts += comparison_tables(comparisons, args)
    parts += ["## Per category (top-1 stability / mean KL)", per_category,
              "## Per pair (top-1 clean → typo)",
              markdown_table(["clean", "typo", "flags"] + labels,
                             [[md_cell(p["clean"]), md_cell(p["typo"]), ", ".join(p["flags"])]
                              + [f"{md_cell(r[i]['top1_clean_text'])}→{md_cell(r[i]['top1_typo_text'])}" for r in rows]
                              for i, p in enumerate(pairs)])]
    return "\n\n".join(parts)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p)
    p.add_argument("--pairs", default=os.path.relpath(DEFAULT_PAIRS),
                   help="pair file, JSON or JSONL (see eval/typo_pairs.py; default: %(default)s)")
    p.add_argument("--tie-stability", type=float, default=TIE_STABILITY,
                   help="stability differences up to this (a share, 0.05 = 5 points) are ties (default: %(default)s)")
    p.add_argument("--tie-kl", type=float, default=TIE_KL,
                   help="mean-KL differences up to this share of the arms' mean KL are ties (default: %(default)s)")
    args = p.parse_args(argv)
    if not (0 <= args.tie_stability < 1 and 0 <= args.tie_kl < 1):
        raise UserError("--tie-stability and --tie-kl must be in [0, 1)")
    return args


def main(argv=None):
    args = parse_args(argv)
    pairs = load_pairs(args.pairs)
    device = resolve_device(args.device)
    ckpts = load_arms(args.ckpt, device, repeats=True)
    enc = arms_tokenizer(ckpts)  # the checkpoints' own tokenizer encodes the pairs
    rows = [[probe_pair(c.model, enc, pair, device) for pair in pairs] for c in ckpts]
    labels = checkpoint_labels(ckpts)
    notes = [f"{label}: {context_note(cut, c.model.config.block_size)}" for label, c, r in zip(labels, ckpts, rows)
             if (cut := sum(bool(x["cut_clean"]) + bool(x["cut_typo"]) for x in r))]
    summary, comparisons = summarise(pairs, ckpts, rows, args.tie_stability, args.tie_kl)
    data = dict(pairs_file=args.pairs, n_pairs=len(pairs), pair_flags=flag_counts(pairs),
                tie_tolerance=dict(stability=args.tie_stability, kl_relative=args.tie_kl),
                checkpoints=[dict(c.describe(), label=label) for c, label in zip(ckpts, labels)], notes=notes,
                summary=summary, comparisons=comparisons, pairs=dict(zip(labels, rows)))
    paths = write_report(args.out, "robustness", data,
                         report_markdown(ckpts, labels, summary, comparisons, pairs, rows, args, notes))
    print(f"{len(pairs)} pairs; {flags_text(pairs)}")
    for note in notes:
        print(note)
    for name, s in summary.items():
        o = s["overall"]
        print(f"{name} ({o['n_checkpoints']} checkpoint(s), {o['n_pairs']} pairs): top-1 stability "
              f"{pct_interval(o['top1_stability'])}, mean KL {value_interval(o['kl_mean'])}")
    for c in comparisons:
        w = c["categories_won_tied_lost"]
        print(f"{c['b']} vs {c['a']}: McNemar p {fmt_p(c['mcnemar']['p'])} (only A {c['mcnemar']['only_a']}, "
              f"only B {c['mcnemar']['only_b']} of {c['mcnemar']['n']}); categories W/T/L stability "
              f"{wtl_text(w['stability'])}, KL {wtl_text(w['kl'])}")
    print(f"wrote {paths[0]} and {paths[1]}")


if __name__ == "__main__":
    run_main(main)
