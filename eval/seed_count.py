"""How many seeds a comparison needs: the power of the paired t-test (eval/stats.py) at a given spread.

For a spread of the per-seed gap (arm - baseline final val loss, one value per seed) it prints the
smallest mean gap n seeds detect (two-sided paired t-test at 5 %, 80 % power, exact from the
noncentral t distribution) for each n of --seeds, and the fewest seeds that detect each --gap.
Without --sd it takes the spread from the paper's gap, 0.083 +- 0.007 nats
(results/paper_reference.json), under both readings of the +-, which the paper does not define:
  - the std of the per-seed gap (the spread the paired test uses): sd = 0.007;
  - the std of each arm's final loss, the arms' losses independent across seeds: the gap's std is
    sqrt(2) x 0.007 = 0.0099. Arms trained on the same data order per seed are positively
    correlated, which makes the gap's std smaller than this, so this reading is the cautious one.
Without --gap it asks about the paper's gap.

    python -m eval.seed_count                                   # the paper's spread, both readings
    python -m eval.seed_count --gap 0.083 --gap 0.04 --gap 0.02 --seeds 2 3 5 10
    python -m eval.seed_count --sd 0.0457 --gap 0.0331          # a comparison of your own (nats)
"""
import argparse
import math

from errors import UserError, run_main
from eval.runs import markdown_table, paper_reference
from eval.stats import ALPHA, MAX_SEEDS, POWER, detectable_gap, needed_text

DEFAULT_SEEDS = (2, 3, 5, 10)


def readings(sd=None):
    """[(name, sd of the per-seed gap)]: the given sd, or the paper's +- under both readings."""
    if sd is not None:
        return [("given", sd)]
    paper = paper_reference()["values"]["val_loss_gap_nats"]["std"]
    return [(f"+-{paper} is the std of the per-seed gap", paper),
            (f"+-{paper} is each arm's std (independent arms)", math.sqrt(2) * paper)]


def report(spreads, gaps, seeds):
    """The markdown tables: detectable gap per (reading, n) and seeds needed per (reading, gap)."""
    detect = markdown_table(["reading", "sd of the gap (nats)", *(f"{n} seeds" for n in seeds)],
                            [(name, f"{sd:.4f}", *(f"{detectable_gap(sd, n):.4f}" for n in seeds))
                             for name, sd in spreads])
    needed = markdown_table(["reading", "sd of the gap (nats)", *(f"gap {g:g}" for g in gaps)],
                            [(name, f"{sd:.4f}", *(needed_text(g, sd) for g in gaps)) for name, sd in spreads])
    return "\n\n".join([
        f"Paired t-test, two-sided at {ALPHA:.0%}, {POWER:.0%} power, exact from the noncentral t "
        "distribution (scipy.stats.nct).",
        "## Smallest mean gap (nats) that n seeds detect", detect,
        f"## Seeds needed to detect a mean gap (more than {MAX_SEEDS}: '> {MAX_SEEDS}')", needed])


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sd", type=float, help="std of the per-seed gap, nats (default: the paper's, both readings)")
    p.add_argument("--gap", type=float, action="append", help="mean gap to detect, nats; repeatable "
                                                             "(default: the paper's 0.083)")
    p.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS),
                   help="seed counts for the detectable gap (default: %(default)s)")
    args = p.parse_args(argv)
    if args.sd is not None and not (math.isfinite(args.sd) and args.sd > 0):
        raise UserError(f"--sd must be a positive number of nats, got {args.sd}")
    if any(not math.isfinite(g) for g in args.gap or []) or any(n < 2 for n in args.seeds):
        raise UserError("--gap must be a finite number of nats and every --seeds count at least 2 "
                        "(the paired t-test needs 2 seeds)")
    return args


def main(argv=None):
    args = parse_args(argv)
    gaps = args.gap or [abs(paper_reference()["values"]["val_loss_gap_nats"]["mean"])]
    print(report(readings(args.sd), gaps, args.seeds))


if __name__ == "__main__":
    run_main(main)
