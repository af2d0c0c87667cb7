"""Validation loss and perplexity of train.py checkpoints, on the same fixed set as training.

    python -m eval.val_loss out/bpe_s1337/ckpt_004768.pt out/kronecker_s1337/ckpt_004768.pt \
        --out results/val_loss.json

By default each checkpoint is scored on the validation set it was trained with (its
train_config's data_dir and val_tokens: the first 10,485,760 tokens of the val shard);
--data-dir and --val-tokens change that. Prints a markdown table, writes JSON with --out.
"""
import argparse
import math

from tqdm import tqdm

from checkpoint import load_checkpoint
from devices import DTYPES, autocast_context, resolve_device
from errors import UserError, run_main
from eval.outputs import write_json
from eval.runs import markdown_table
from model import GPT
from validation import evaluate, load_val_tokens


def score(path, args, device):
    """One checkpoint's row: its validation loss (nats per token) and perplexity on its own
    validation set (or --data-dir / --val-tokens), with its embedding, seed and step. Raises
    UserError for an unreadable checkpoint or missing or short data."""
    ckpt = load_checkpoint(path)
    train_config = ckpt.get("train_config", {})
    data_dir = args.data_dir or train_config.get("data_dir", "data/fineweb_edu")
    n_tokens = args.val_tokens if args.val_tokens is not None else train_config.get("val_tokens", 10_485_760)
    model = GPT.from_checkpoint(ckpt, map_location=device)
    tokens = load_val_tokens(data_dir, n_tokens)
    loss = evaluate(model, tokens, model.config.block_size, args.batch_size, device,
                    autocast_context(device, args.dtype))
    return dict(checkpoint=str(path), embedding=model.config.embedding, seed=train_config.get("seed"),
                step=ckpt.get("step"), data_dir=str(data_dir), val_tokens=len(tokens) - 1,
                val_loss=loss, perplexity=math.exp(loss))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", help="ckpt_*.pt files written by train.py")
    p.add_argument("--data-dir", "--data_dir", dest="data_dir", help="shard folder (default: the checkpoint's)")
    p.add_argument("--val-tokens", "--val_tokens", dest="val_tokens", type=int,
                   help="size of the validation set (default: the checkpoint's, 10,485,760 for the paper runs)")
    p.add_argument("--batch-size", type=int, default=16, help="sequences per forward pass (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda[:N]")
    p.add_argument("--dtype", default="auto", choices=DTYPES,
                   help="auto: bfloat16 autocast on CUDA, float32 on CPU")
    p.add_argument("--out", help="write the results here as JSON")
    args = p.parse_args(argv)
    if args.val_tokens is not None and args.val_tokens < 1:
        raise UserError(f"--val-tokens must be >= 1, got {args.val_tokens}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    return args


def main(argv=None):
    args = parse_args(argv)
    device = resolve_device(args.device)
    paths = tqdm(args.checkpoints, desc="checkpoints", disable=len(args.checkpoints) < 2)
    results = [score(path, args, device) for path in paths]
    print(markdown_table(["checkpoint", "embedding", "seed", "step", "val loss", "perplexity"],
                         [[r["checkpoint"], r["embedding"], r["seed"], r["step"], f"{r['val_loss']:.4f}",
                           f"{r['perplexity']:.2f}"] for r in results]))
    if args.out:
        write_json(args.out, results)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    run_main(main)
