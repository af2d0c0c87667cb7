"""Spelling robustness: how much does a one-word typo move each arm's next-token prediction?

For every clean/typo prompt pair (eval/data/typo_pairs.jsonl, or --pairs) and every arm, at the
last position:
- top-1 next-token id for clean and typo prompt, and whether they match;
- KL(clean || typo) of the next-token distributions over the real vocabulary (ids < 50257);
- cosine of the final hidden states (after ln_f);
- log-prob drop of the clean top-1 token: log p_clean(t) - log p_typo(t);
- token counts of both prompts.
Aggregated per arm and per category (top-1 stability = share of matching pairs, mean/median KL,
mean cosine, mean log-prob drop), plus per-category win/tie/loss of each arm against the first
arm (on stability: higher wins; on mean KL: lower wins). Writes <out>/robustness.{json,md}.

    python -m eval.robustness --ckpt bpe=out/bpe_s0/ckpt_004000.pt --ckpt kronecker=out/kronecker_s0/ckpt_004000.pt
"""
import argparse
import os
import statistics

import torch
import torch.nn.functional as F

from devices import resolve_device
from errors import run_main
from eval.probe_common import (add_common_args, arms_markdown, decode, fmt, load_arms, md_cell,
                               write_report)
from eval.runs import markdown_table
from eval.typo_pairs import DEFAULT_PAIRS, load_pairs
from tokenizer import GPT2_VOCAB, get_encoding

METRICS = ("top1_stability", "kl_mean", "kl_median", "cos_mean", "logprob_drop_mean")


# ----------------------------------------------------------------------------- metrics

def real_vocab_logprobs(logits):
    """Log-probabilities over the real vocabulary: padding ids (>= 50257) are dropped first."""
    return F.log_softmax(logits[..., :GPT2_VOCAB].float(), dim=-1)


def compare_next_token(logp_clean, logp_typo):
    """Top-1 ids and match, KL(clean || typo), and the log-prob drop of the clean top-1 token."""
    top1_clean, top1_typo = int(logp_clean.argmax()), int(logp_typo.argmax())
    kl = float((logp_clean.exp() * (logp_clean - logp_typo)).sum())
    return dict(top1_clean=top1_clean, top1_typo=top1_typo, top1_match=top1_clean == top1_typo,
                kl=kl, logprob_drop=float(logp_clean[top1_clean] - logp_typo[top1_clean]))


@torch.no_grad()
def last_position(model, ids, device):
    """(next-token log-probs over the real vocabulary, final hidden state) at the last position."""
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    logits, _ = model(idx)
    hidden = model.hidden_states(idx)[-1][0, -1]
    return real_vocab_logprobs(logits[0, -1]).cpu(), hidden.float().cpu()


def probe_pair(model, enc, pair, device):
    clean_ids, typo_ids = enc.encode_ordinary(pair["clean"]), enc.encode_ordinary(pair["typo"])
    logp_clean, h_clean = last_position(model, clean_ids, device)
    logp_typo, h_typo = last_position(model, typo_ids, device)
    row = dict(pair, tokens_clean=len(clean_ids), tokens_typo=len(typo_ids),
               **compare_next_token(logp_clean, logp_typo),
               cos=float(F.cosine_similarity(h_clean, h_typo, dim=0)))
    row.update(top1_clean_text=decode([row["top1_clean"]]), top1_typo_text=decode([row["top1_typo"]]))
    return row


# ----------------------------------------------------------------------------- aggregates

def aggregate(rows):
    kls = [r["kl"] for r in rows]
    return dict(n=len(rows), top1_stability=sum(r["top1_match"] for r in rows) / len(rows),
                kl_mean=statistics.fmean(kls), kl_median=statistics.median(kls),
                cos_mean=statistics.fmean(r["cos"] for r in rows),
                logprob_drop_mean=statistics.fmean(r["logprob_drop"] for r in rows),
                tokens_clean_mean=statistics.fmean(r["tokens_clean"] for r in rows),
                tokens_typo_mean=statistics.fmean(r["tokens_typo"] for r in rows))


def by_category(rows):
    categories = list(dict.fromkeys(r["category"] for r in rows))
    return {c: aggregate([r for r in rows if r["category"] == c]) for c in categories}


def win_tie_loss(reference, other, key, higher_is_better):
    """Count categories where `other` beats, ties or loses to `reference` on one metric."""
    counts = dict(win=0, tie=0, loss=0)
    for category, ref in reference.items():
        diff = other[category][key] - ref[key]
        if not higher_is_better:
            diff = -diff
        counts["win" if diff > 0 else "loss" if diff < 0 else "tie"] += 1
    return counts


def summarise(rows_by_arm):
    """Per arm: overall and per-category aggregates; W/T/L against the first arm."""
    names = list(rows_by_arm)
    summary = {name: dict(overall=aggregate(rows), categories=by_category(rows)) for name, rows in rows_by_arm.items()}
    reference = summary[names[0]]["categories"]
    for name in names[1:]:
        cats = summary[name]["categories"]
        summary[name]["vs_first"] = dict(
            reference=names[0],
            top1_stability=win_tie_loss(reference, cats, "top1_stability", higher_is_better=True),
            kl_mean=win_tie_loss(reference, cats, "kl_mean", higher_is_better=False))
    return summary


# ----------------------------------------------------------------------------- report

def wtl_text(counts):
    return f"{counts['win']}/{counts['tie']}/{counts['loss']}"


def report_markdown(arms, summary, pairs_path, n_pairs, rows_by_arm):
    names = [a.name for a in arms]
    overall = markdown_table(
        ["arm", "pairs", "top-1 stability", "mean KL", "median KL", "mean cos", "mean log-prob drop",
         "tokens clean/typo"],
        [[n, s["overall"]["n"], f"{100 * s['overall']['top1_stability']:.1f}%", fmt(s["overall"]["kl_mean"]),
          fmt(s["overall"]["kl_median"]), fmt(s["overall"]["cos_mean"]), fmt(s["overall"]["logprob_drop_mean"]),
          f"{s['overall']['tokens_clean_mean']:.2f}/{s['overall']['tokens_typo_mean']:.2f}"]
         for n, s in summary.items()])
    categories = list(summary[names[0]]["categories"])
    per_category = markdown_table(
        ["category"] + [f"{n} stab / KL" for n in names],
        [[c] + [f"{100 * summary[n]['categories'][c]['top1_stability']:.0f}% / "
                f"{fmt(summary[n]['categories'][c]['kl_mean'])}" for n in names] for c in categories])
    parts = ["# Spelling robustness", arms_markdown(arms),
             f"{n_pairs} clean/typo pairs from `{pairs_path}`; next-token metrics at the last position, "
             "KL and log-probs over the real vocabulary (ids < 50257).",
             "## Per arm", overall, "## Per category (top-1 stability / mean KL)", per_category]
    if len(names) > 1:
        parts += [f"## Categories won/tied/lost against {names[0]}",
                  markdown_table(["arm", "top-1 stability (higher wins)", "mean KL (lower wins)"],
                                 [[n, wtl_text(summary[n]["vs_first"]["top1_stability"]),
                                   wtl_text(summary[n]["vs_first"]["kl_mean"])] for n in names[1:]])]
    parts += ["## Per pair (top-1 clean → typo)",
              markdown_table(["clean", "typo"] + names,
                             [[md_cell(p["clean"]), md_cell(p["typo"])]
                              + [f"{md_cell(r[i]['top1_clean_text'])}→{md_cell(r[i]['top1_typo_text'])}"
                                 for r in rows_by_arm.values()]
                              for i, p in enumerate(next(iter(rows_by_arm.values())))])]
    return "\n\n".join(parts)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p)
    p.add_argument("--pairs", default=os.path.relpath(DEFAULT_PAIRS), help="JSONL of category/clean/typo (default: %(default)s)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    pairs = load_pairs(args.pairs)
    device = resolve_device(args.device)
    arms = load_arms(args.ckpt, device)
    enc = get_encoding()
    rows_by_arm = {arm.name: [probe_pair(arm.model, enc, pair, device) for pair in pairs] for arm in arms}
    summary = summarise(rows_by_arm)
    data = dict(pairs_file=args.pairs, arms=[a.describe() for a in arms], summary=summary, pairs=rows_by_arm)
    paths = write_report(args.out, "robustness", data,
                         report_markdown(arms, summary, args.pairs, len(pairs), rows_by_arm))
    for name, s in summary.items():
        o = s["overall"]
        print(f"{name}: top-1 stability {100 * o['top1_stability']:.1f}%, mean KL {o['kl_mean']:.4f}, "
              f"mean cos {o['cos_mean']:.4f}, mean log-prob drop {o['logprob_drop_mean']:.4f}")
    print(f"wrote {paths[0]} and {paths[1]}")


if __name__ == "__main__":
    run_main(main)
