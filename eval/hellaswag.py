"""HellaSwag validation accuracy of train.py checkpoints, scored as build-nanogpt's hellaswag.py does.

Each example is a context and 4 endings; each ending is the row context + " " + ending, in the
tokens of the checkpoint's own tokenizer (GPT-2's for build-nanogpt's numbers), and only the
ending's tokens are scored. Per example: the ending with the lowest summed
loss is the `acc` prediction, the one with the lowest mean loss per token the `acc_norm`
prediction (build-nanogpt reports acc_norm: 2967/10042 = 29.55% for GPT-2 124M). Also reported:
the completion-only loss, the mean per-token loss (nats) of the correct ending given its context.
Logits are over the model's whole vocabulary, like the training loss. A row longer than the
checkpoint's context keeps its last block_size tokens (the count is reported).

The data is the standard validation split (10,042 examples), downloaded on first use into
--cache-dir (default data/hellaswag/hellaswag_val.jsonl) and read from there afterwards; offline,
put the file there by hand.

    python -m eval.hellaswag out/bpe_s1337/ckpt_004768.pt out/kronecker_s1337/ckpt_004768.pt --out results/hellaswag.json
    python -m eval.hellaswag CKPT --limit 500          # the first 500 examples only

In a training loop: `hellaswag_accuracy(model, load_examples(path), device, tokenizer=...)`.
"""
import argparse
import json
import urllib.error
import urllib.request
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from checkpoint import load_checkpoint
from devices import DTYPES, autocast_context, resolve_device
from errors import UserError, run_main
from eval.outputs import report_file, write_json
from eval.runs import markdown_table
from model import GPT
from tokenizer import DEFAULT_TOKENIZER, get_tokenizer

URL = "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl"
FILE_NAME = "hellaswag_val.jsonl"
DEFAULT_CACHE_DIR = "data/hellaswag"
N_VAL = 10_042  # examples in the standard validation split
N_ENDINGS = 4


# ----------------------------------------------------------------------------- data

def ensure_data(cache_dir=DEFAULT_CACHE_DIR, url=URL):
    """Path of the cached validation file, downloading it (atomically) on first use.

    UserError when it cannot be downloaded: the line names the file to put in place by hand.
    """
    path = Path(cache_dir) / FILE_NAME
    if path.is_file():
        return path
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise UserError(f"cannot download HellaSwag ({reason}); offline, download {url} and put it at {path}") from None
    with report_file(path) as f:
        f.write(data)
    return path


def check_example(example, where):
    """One record as build-nanogpt reads it: ctx (str), label (0-3), endings (4 str); UserError if not."""
    ok = (isinstance(example, dict) and isinstance(example.get("ctx"), str)
          and isinstance(example.get("endings"), list) and len(example["endings"]) == N_ENDINGS
          and all(isinstance(e, str) for e in example["endings"])
          and type(example.get("label")) is int and 0 <= example["label"] < N_ENDINGS)
    if not ok:
        raise UserError(f"{where}: not a HellaSwag example (needs ctx, label 0-3 and 4 endings); "
                        f"delete the file to download it again")
    return example


def load_examples(path, limit=None):
    """The examples of a HellaSwag JSONL file, in file order (the first `limit` when given)."""
    examples = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read {path} ({err}); delete it to download it again") from None
    for n, line in enumerate(lines, start=1):
        if limit is not None and len(examples) >= limit:
            break
        if not line.strip():
            continue
        try:
            examples.append(check_example(json.loads(line), f"{path}:{n}"))
        except json.JSONDecodeError:
            raise UserError(f"{path}:{n}: not valid JSON; delete the file to download it again") from None
    if not examples:
        raise UserError(f"{path} holds no examples; delete it to download it again")
    return examples


# ----------------------------------------------------------------------------- scoring

def render_example(example, enc, block_size):
    """(tokens, mask, cut): (4, T) int64 rows context + ending, right-padded with 0; (4, T) mask of
    1 on ending tokens; cut = whether any row lost its start to fit block_size."""
    ctx = enc.encode_ordinary(example["ctx"])
    rows, masks, cut = [], [], False
    for ending in example["endings"]:
        end = enc.encode_ordinary(" " + ending)  # GPT-2's tokenizer folds the space into the ending
        row, mask = ctx + end, [0] * len(ctx) + [1] * len(end)
        cut |= len(row) > block_size
        rows.append(row[-block_size:])
        masks.append(mask[-block_size:])
    width = max(len(r) for r in rows)
    tokens = torch.zeros((N_ENDINGS, width), dtype=torch.long)
    mask = torch.zeros((N_ENDINGS, width), dtype=torch.long)
    for i, (row, m) in enumerate(zip(rows, masks)):
        tokens[i, :len(row)] = torch.tensor(row)
        mask[i, :len(m)] = torch.tensor(m)
    return tokens, mask, cut


@torch.no_grad()
def ending_losses(model, tokens, mask, autocast_ctx):
    """(sum, mean) next-token loss (nats) over each row's ending tokens; both (4,) float32."""
    with autocast_ctx:
        logits = model.lm_head(model.hidden_states(tokens)[-1])
    losses = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), tokens[:, 1:].flatten(), reduction="none")
    losses = losses.view(tokens.size(0), -1) * mask[:, 1:]
    total = losses.sum(dim=1)
    return total, total / mask[:, 1:].sum(dim=1)


@torch.no_grad()
def hellaswag_accuracy(model, examples, device, autocast_ctx=None, progress=False, tokenizer=None):
    """Accuracy of a GPT on HellaSwag examples (dicts with ctx, label, endings), as build-nanogpt.

    Returns dict(n, acc, acc_norm (fractions), completion_loss (mean nats per token of the correct
    ending), n_cut (examples with a row cut to block_size)). The model's mode is restored.
    tokenizer: the tokenizer.Tokenizer the model was trained with (default GPT-2's).
    Raises UserError for a model whose vocabulary is smaller than the tokenizer's.
    """
    enc, autocast_ctx = tokenizer or get_tokenizer(), autocast_ctx or nullcontext()
    if model.config.vocab_size < enc.n_vocab:
        raise UserError(f"HellaSwag is encoded with tokenizer {enc.name} ({enc.n_vocab:,} ids) but this "
                        f"model has vocab_size {model.config.vocab_size}; pass the model's own tokenizer")
    was_training = model.training
    model.eval()
    correct = correct_norm = cut_count = 0
    completion_loss = 0.0
    for example in tqdm(examples, desc="hellaswag", disable=not progress):
        tokens, mask, cut = render_example(example, enc, model.config.block_size)
        total, mean = ending_losses(model, tokens.to(device), mask.to(device), autocast_ctx)
        label = example["label"]
        correct += int(total.argmin()) == label
        correct_norm += int(mean.argmin()) == label
        completion_loss += float(mean[label])
        cut_count += cut
    model.train(was_training)
    n = len(examples)
    return dict(n=n, acc=correct / n, acc_norm=correct_norm / n, completion_loss=completion_loss / n, n_cut=cut_count)


# ----------------------------------------------------------------------------- command line

def score(path, examples, device, dtype):
    checkpoint = load_checkpoint(path)
    model = GPT.from_checkpoint(checkpoint, map_location=device)
    train_config = checkpoint.get("train_config") or {}
    tokenizer = get_tokenizer(train_config.get("tokenizer", DEFAULT_TOKENIZER))  # older: GPT-2's
    result = hellaswag_accuracy(model, examples, device, autocast_context(device, dtype), progress=True,
                                tokenizer=tokenizer)
    seed = train_config.get("seed")
    return dict(checkpoint=str(path), embedding=model.config.embedding, seed=seed, step=checkpoint.get("step"),
                **result)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", help="ckpt_*.pt files written by train.py")
    p.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR, help=f"where {FILE_NAME} is kept (default: %(default)s)")
    p.add_argument("--limit", type=int, help="score only the first N examples (default: all)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda[:N]")
    p.add_argument("--dtype", default="auto", choices=DTYPES, help="auto: bfloat16 autocast on CUDA, float32 on CPU")
    p.add_argument("--out", help="write the results here as JSON")
    args = p.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be >= 1, got {args.limit}")
    return args


def main(argv=None):
    args = parse_args(argv)
    device = resolve_device(args.device)
    path = ensure_data(args.cache_dir)
    examples = load_examples(path, args.limit)
    results = [score(ckpt, examples, device, args.dtype) for ckpt in args.checkpoints]
    subset = "" if len(examples) == N_VAL else f" (the standard validation split has {N_VAL:,})"
    print(f"HellaSwag: {len(examples):,} examples from {path}{subset}")
    print(markdown_table(["checkpoint", "embedding", "seed", "step", "n", "acc", "acc_norm", "completion loss",
                          "rows cut to context"],
                         [[r["checkpoint"], r["embedding"], r["seed"], r["step"], r["n"], f"{100 * r['acc']:.2f}%",
                           f"{100 * r['acc_norm']:.2f}%", f"{r['completion_loss']:.4f}", r["n_cut"]]
                          for r in results]))
    if args.out:
        write_json(args.out, results)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    run_main(main)
