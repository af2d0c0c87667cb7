"""Sample text from a trained checkpoint of any arm: nanoGPT's sample.py, with its flags.

    python sample.py --out_dir=out/kronecker_s1337                # the run folder's newest checkpoint
    python sample.py --ckpt=out/bpe_s1337/ckpt_004768.pt --start="The meaning of life is" --num_samples=3
    python sample.py --ckpt=... --start=FILE:prompt.txt --max_new_tokens=200 --temperature=0.8 --top_k=200

The prompt is encoded with the checkpoint's own tokenizer (its train_config's; GPT-2's for
checkpoints older than the field). An empty --start (the default) begins a new document: the
end-of-text id, which precedes every training document. A prompt longer than the context keeps
its last block_size tokens (eval/probe_common.fit_context, the rule the probes use) and a note on
stderr says how many were cut. Each sample is printed (the prompt as kept, then the new text)
followed by a line of dashes, as nanoGPT does; padding ids are never sampled. The same --seed gives
the same samples on the same device and dtype. --temperature=0 is greedy decoding.
"""
import argparse
import sys
from pathlib import Path

import torch

from checkpoint import list_checkpoints
from devices import DTYPES, autocast_context, resolve_device
from errors import UserError, run_main
from eval.probe_common import fit_context, load_model
from tokenizer import DEFAULT_TOKENIZER, get_tokenizer

SEPARATOR = "---------------"


def parse_bool(text):
    """nanoGPT-style booleans: --compile, --compile=True, --compile=false."""
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not true or false")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--ckpt", help="a ckpt_*.pt written by train.py")
    where.add_argument("--out_dir", help="a run's checkpoint folder (out/<run_name>): its newest checkpoint")
    p.add_argument("--start", default="", help="prompt text, or FILE:path to read it from a file "
                                               "(default: empty, a new document)")
    p.add_argument("--num_samples", type=int, default=10, help="samples to draw (default: %(default)s)")
    p.add_argument("--max_new_tokens", type=int, default=500, help="tokens per sample (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="softmax temperature; 0 = greedy (default: %(default)s)")
    p.add_argument("--top_k", type=int, default=200, help="keep the k likeliest tokens; 0 = all (default: %(default)s)")
    p.add_argument("--top_p", type=float, default=None, help="nucleus sampling: keep the smallest set "
                                                             "reaching this probability (default: off)")
    p.add_argument("--seed", type=int, default=1337, help="random seed (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda[:N]")
    p.add_argument("--dtype", default="auto", choices=DTYPES, help="auto: bfloat16 autocast on CUDA, float32 on CPU")
    p.add_argument("--compile", type=parse_bool, nargs="?", const=True, default=False,
                   help="torch.compile the model (default: false)")
    args = p.parse_args(argv)
    if args.num_samples < 1 or args.max_new_tokens < 1:
        raise UserError("need --num_samples >= 1 and --max_new_tokens >= 1")
    if args.temperature < 0 or args.top_k < 0 or (args.top_p is not None and not 0 < args.top_p <= 1):
        raise UserError("need --temperature >= 0, --top_k >= 0 and 0 < --top_p <= 1")
    return args


def checkpoint_of(args):
    """The checkpoint path: --ckpt, or the newest ckpt_*.pt in --out_dir (UserError if none)."""
    if args.ckpt:
        return Path(args.ckpt)
    found = list_checkpoints(args.out_dir)
    if not found:
        raise UserError(f"--out_dir {args.out_dir} holds no ckpt_*.pt; pass a run's checkpoint folder "
                        f"(out/<run_name>) or --ckpt")
    return found[-1][1]


def read_start(start):
    """The prompt text of --start: the text itself, or a file's text for FILE:path."""
    if not start.startswith("FILE:"):
        return start
    path = Path(start[len("FILE:"):])
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"--start FILE:{path}: cannot read it ({err.strerror if isinstance(err, OSError) else err})") from None


def prompt_ids(tok, text, block_size):
    """(ids, cut): the prompt's token ids (the end-of-text id for an empty prompt), cut to the context."""
    ids = tok.encode_ordinary(text) or [tok.eot_id]
    return fit_context(ids, block_size)


@torch.no_grad()
def sample(model, tok, ids, args, device):
    """num_samples lists of ids (prompt + new tokens), drawn from one generator seeded with --seed."""
    torch.manual_seed(args.seed)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    with autocast_context(device, args.dtype):
        return [model.generate(idx, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k or None,
                               top_p=args.top_p, generator=generator, n_vocab=tok.n_vocab)[0].tolist()
                for _ in range(args.num_samples)]


def main(argv=None):
    args = parse_args(argv)
    text = read_start(args.start)  # bad input first, before the checkpoint loads
    device = resolve_device(args.device)
    path = checkpoint_of(args)
    model, _, train_config = load_model(path, device, f"checkpoint {path}")
    tok = get_tokenizer(train_config.get("tokenizer", DEFAULT_TOKENIZER))
    if args.compile:
        model.compile(dynamic=True)  # the forward that generate() calls, not only the wrapper
    ids, cut = prompt_ids(tok, text, model.config.block_size)
    if cut:
        print(f"note: the prompt is {len(ids) + cut} tokens, longer than the checkpoint's context; it was cut "
              f"to its last {model.config.block_size} tokens", file=sys.stderr)
    for out in sample(model, tok, ids, args, device):
        print(tok.decode(out if text else out[1:]))  # an empty prompt's end-of-text id is not shown
        print(SEPARATOR)


if __name__ == "__main__":
    run_main(main)
