"""The unigram baseline: the validation loss of a model that ignores all context.

What a run's validation loss should be read against: a model that predicts every token from its
frequency alone. Fitted on every token of the run's train shards (`<data_dir>/train_*.bin`,
the tokens its batches are drawn from, whether or not the run read them all), add-one (Laplace)
smoothed over the tokenizer's ids (`n_vocab` of the data's manifest.json; the run's padded
`vocab_size` when the manifest does not say), and scored on exactly the tokens whose mean loss
is the run's `val_loss`: the targets of validation.evaluate, i.e. tokens 1 .. n_seq * block_size
of the val shard (0-based), n_seq = val_tokens // block_size full sequences.
`run_unigram_losses(runs)` gives it for every run (eval/runs.Run) of a summary, with one line per
data setting saying what it is or why it is unknown (no data folder: prepare the data first).
Not a script; import it: `from eval.unigram import unigram_val_loss`.
"""
from functools import lru_cache

import numpy as np

from data.shards import load_split, read_manifest
from errors import UserError
from validation import load_val_tokens

CHUNK = 1 << 24  # tokens counted at a time: a 2.5B-token split never becomes one int64 array


def token_counts(shards, n_vocab):
    """Occurrences of each id (int64 array of n_vocab) over the shards (uint16/uint32 memmaps)."""
    counts = np.zeros(n_vocab, dtype=np.int64)
    for shard in shards:
        for start in range(0, len(shard), CHUNK):
            counts += np.bincount(shard[start:start + CHUNK], minlength=n_vocab)[:n_vocab]
    return counts


def val_targets(data_dir, val_tokens, block_size):
    """The val tokens whose mean cross-entropy is the run's val_loss (np.ndarray): the targets y of
    every full block_size sequence of load_val_tokens, as validation.evaluate scores them."""
    tokens = load_val_tokens(data_dir, val_tokens)
    n_seq = (len(tokens) - 1) // block_size
    return np.asarray(tokens[1:n_seq * block_size + 1])


@lru_cache(maxsize=8)
def unigram_val_loss(data_dir, val_tokens, block_size, vocab_size):
    """The add-one smoothed unigram model's mean loss (nats per token) on a run's val targets.

    Returns dict(loss (float, nats), train_tokens, val_targets (ints), n_vocab (int), vocab_from
    ('manifest n_vocab' or 'the run's vocab_size')). Raises UserError when the data folder, its
    shards or enough val tokens are missing (data/shards.py's messages). Cached per argument set.
    """
    manifest = read_manifest(data_dir, "prepare the data again") or {}
    n_vocab = manifest.get("n_vocab") or vocab_size
    vocab_from = "manifest n_vocab" if manifest.get("n_vocab") else "the run's vocab_size"
    counts = token_counts(load_split(data_dir, "train"), n_vocab)
    targets = val_targets(data_dir, val_tokens, block_size)
    log_p = np.log(counts + 1.0) - np.log(counts.sum() + n_vocab)
    return dict(loss=float(-log_p[targets].mean()), train_tokens=int(counts.sum()), val_targets=len(targets),
                n_vocab=int(n_vocab), vocab_from=vocab_from)


def unigram_key(run):
    c = run.config
    return c.get("data_dir"), c.get("val_tokens"), c.get("block_size"), c.get("vocab_size")


def run_unigram_losses(runs):
    """(run name -> the unigram baseline's loss on its val tokens, None where unknown; one line per
    data setting saying what the baseline is, or why it is unknown)."""
    losses, lines = {}, {}
    for run in runs:
        key = unigram_key(run)
        data_dir, val_tokens, block_size, _ = key
        try:
            if None in (data_dir, val_tokens, block_size):
                raise UserError("their config.json lacks data_dir, val_tokens or block_size")
            u = unigram_val_loss(*key)
        except UserError as err:
            losses[run.name] = None
            lines[key] = f"unknown for runs on {data_dir} ({err})"
            continue
        losses[run.name] = u["loss"]
        lines[key] = (f"{u['loss']:.4f} nats on the {u['val_targets']:,} val tokens the runs' val_loss averages "
                      f"over ({data_dir}, val_tokens {val_tokens:,}, block_size {block_size}), fitted on the "
                      f"{u['train_tokens']:,} tokens of its train shards, add-one smoothed over {u['n_vocab']:,} "
                      f"ids ({u['vocab_from']})")
    return losses, list(lines.values())
