"""Shared plumbing for the checkpoint probes (robustness, generation, neighbors).

- the common command line: `--ckpt ARM=PATH` (repeatable; the first arm is the reference),
  `--out DIR`, `--device` (auto: cuda when available, else cpu);
- checkpoint loading through `GPT.from_checkpoint` (`load_model`, also used by sample.py and
  export_hf.py), with one UserError naming the arm for a missing, unreadable or incompatible
  checkpoint;
- prompts longer than a checkpoint's context cut to their last block_size tokens (`fit_context`),
  the one place every probe does it;
- token text for display and a probe's report: `<out>/<name>.json` and `<out>/<name>.md`,
  both written atomically (an unwritable --out is one UserError line).
Not a script; import it: `from eval.probe_common import add_common_args, load_arms`.
"""
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from checkpoint import load_checkpoint
from errors import UserError
from eval.outputs import write_json, write_text
from eval.runs import markdown_table
from model import GPT
from tokenizer import DEFAULT_TOKENIZER, get_tokenizer

DEFAULT_OUT_DIR = "results/probes"


@dataclass
class Arm:
    name: str
    path: Path
    model: GPT
    step: object  # optimiser steps done, None when the checkpoint does not say
    seed: object = None  # the training seed (train_config["seed"]), None when the checkpoint does not say
    tokenizer: str = DEFAULT_TOKENIZER  # train_config["tokenizer"]; checkpoints before it are GPT-2's

    @property
    def embedding(self):
        return self.model.config.embedding

    @property
    def reads_bytes(self):
        return self.model.config.reads_token_bytes  # Kronecker (kronecker_shuffled included), trigram_hash

    def describe(self):
        return dict(arm=self.name, path=str(self.path), embedding=self.embedding, step=self.step, seed=self.seed,
                    n_layer=self.model.config.n_layer, n_embd=self.model.config.n_embd,
                    block_size=self.model.config.block_size)


# ----------------------------------------------------------------------------- command line

def add_common_args(parser):
    parser.add_argument("--ckpt", action="append", required=True, metavar="ARM=PATH",
                        help="a checkpoint and the arm name to report it under; repeat for several "
                             "(the first is the reference arm)")
    parser.add_argument("--out", default=DEFAULT_OUT_DIR, help="report folder (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps (default: %(default)s)")


def parse_ckpt_spec(spec):
    """'ARM=PATH' -> (arm, Path)."""
    arm, sep, path = spec.partition("=")
    if not sep or not arm or not path:
        raise UserError(f"--ckpt {spec!r} is not ARM=PATH; write e.g. --ckpt kronecker=out/kronecker_s0/ckpt_004000.pt")
    return arm, Path(path)


# ----------------------------------------------------------------------------- checkpoints

def load_model(path, device, where):
    """(GPT in eval mode on device, the checkpoint dict, its train_config dict ({} when absent))
    of a train.py checkpoint: the one loader of the probes, sample.py and export_hf.py.

    `where` starts every error line (e.g. "--ckpt kronecker=PATH"). Raises UserError for a
    missing or unreadable file and for a checkpoint this model.py cannot build (an unknown
    embedding, fields or weights). The tokenizer it was trained with is
    train_config.get("tokenizer", DEFAULT_TOKENIZER) (checkpoints before the field are GPT-2's).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{where}: checkpoint not found; pass a ckpt_*.pt written by train.py")
    try:
        checkpoint = load_checkpoint(path)
        model = GPT.from_checkpoint(checkpoint)
    except UserError as err:
        raise UserError(f"{where}: {err}")
    except (TypeError, KeyError, ValueError) as err:
        raise UserError(f"{where}: incompatible checkpoint ({type(err).__name__}: {err}); "
                        "it was not written by this repo's train.py")
    train_config = checkpoint.get("train_config") if isinstance(checkpoint, dict) else None
    return model.to(device).eval(), checkpoint, train_config if isinstance(train_config, dict) else {}


def load_arm(spec, device, flag="--ckpt"):
    """The Arm of one 'ARM=PATH' value; UserError messages name it as `flag` gives it."""
    name, path = parse_ckpt_spec(spec)
    model, checkpoint, train_config = load_model(path, device, f"{flag} {spec}")
    return Arm(name, path, model, checkpoint.get("step"), train_config.get("seed"),
               train_config.get("tokenizer", DEFAULT_TOKENIZER))


def load_arms(specs, device, repeats=False):
    """One Arm per --ckpt value, in order.

    Arm names must be unique unless `repeats` (several checkpoints of one arm, one per seed);
    the same checkpoint twice under one arm is refused either way.
    """
    arms = [load_arm(spec, device) for spec in specs]
    keys = [(arm.name, arm.path.resolve()) for arm in arms]
    names = [arm.name for arm in arms]
    twice = sorted({name for name, path in keys if keys.count((name, path)) > 1})
    duplicates = twice or sorted({n for n in names if names.count(n) > 1}) * (not repeats)
    if duplicates:
        raise UserError(f"arm name(s) {', '.join(duplicates)} given twice; give each --ckpt its own ARM name"
                        + (" or another checkpoint" if repeats else ""))
    return arms


def arms_tokenizer(arms):
    """The tokenizer all arms were trained with (tokenizer.Tokenizer), to encode prompts with.

    The byte table of a Kronecker arm is in its checkpoint; the prompts still need the
    tokenizer. Raises UserError if the arms differ (their ids would mean different tokens)
    or the tokenizer cannot be loaded."""
    names = sorted({arm.tokenizer for arm in arms})
    if len(names) > 1:
        raise UserError(f"the checkpoints were trained with different tokenizers ({', '.join(names)}); "
                        f"compare checkpoints of one tokenizer at a time")
    return get_tokenizer(names[0])


def fit_context(ids, block_size):
    """(ids, cut): a prompt (list of ids, or a (1, T, C) embedding) cut to its last block_size
    positions, and how many positions were cut from its start (0 when it fits)."""
    length = ids.shape[1] if hasattr(ids, "shape") else len(ids)
    cut = max(length - block_size, 0)
    return (ids[:, cut:] if hasattr(ids, "shape") else ids[cut:]), cut


def context_note(cut_prompts, block_size):
    """A report line on prompts cut to the context, or '' when none was."""
    if not cut_prompts:
        return ""
    return (f"{cut_prompts} prompt(s) were longer than the checkpoint's context and were cut to their last "
            f"{block_size} tokens (the probe reads the end of the prompt).")


# ----------------------------------------------------------------------------- tokens and text

@lru_cache(maxsize=2)
def token_bytes(tokenizer=DEFAULT_TOKENIZER):
    """Exact bytes of every id of a tokenizer's vocabulary (by name; ids it lacks are b"")."""
    return get_tokenizer(tokenizer).token_bytes()


@lru_cache(maxsize=2)
def token_ids_by_bytes(tokenizer=DEFAULT_TOKENIZER):
    """bytes -> id over a tokenizer's vocabulary (by name)."""
    return {b: i for i, b in enumerate(token_bytes(tokenizer)) if b}


def decode(ids, tokenizer=DEFAULT_TOKENIZER):
    """Text of a list of ids; bytes that are not UTF-8 show as U+FFFD, padding ids as nothing."""
    table = token_bytes(tokenizer)
    return b"".join(table[i] if i < len(table) else b"" for i in ids).decode("utf-8", errors="replace")


def md_cell(text):
    """Text made safe for a markdown table cell: visible spaces at the ends, no pipes or newlines."""
    return "`" + text.replace("`", "'").replace("|", "\\|").replace("\n", "⏎") + "`"


def fmt(value, digits=3):
    return "n/a" if value is None else f"{value:.{digits}f}"


# ----------------------------------------------------------------------------- report

def arms_markdown(arms):
    return markdown_table(["arm", "embedding", "step", "n_layer", "n_embd", "checkpoint"],
                          [[a.name, a.embedding, a.step, a.model.config.n_layer, a.model.config.n_embd,
                            f"`{a.path}`"] for a in arms])


def write_report(out_dir, name, data, markdown):
    """Write <out_dir>/<name>.json and .md atomically; returns their paths."""
    json_path, md_path = Path(out_dir) / f"{name}.json", Path(out_dir) / f"{name}.md"
    write_json(json_path, data)
    write_text(md_path, markdown.rstrip() + "\n")
    return json_path, md_path
