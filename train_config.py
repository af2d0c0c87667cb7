"""Training configuration: the TrainConfig dataclass (defaults = the paper's 124M recipe) and
its parser for `python train.py [CONFIG.py] [--key=value ...]`.

A config file is Python that only assigns literals to TrainConfig names, e.g.
    embedding = "kronecker"
    max_steps = 4768
    total_batch_tokens = 2**19          # + - * / // ** on numbers are allowed
It is read with `ast` (never executed). Command-line `--key=value` overrides come after it.
Unknown names and badly typed values stop with a one-line UserError naming the close matches.

    from train_config import load_config
    cfg = load_config(["config/kronecker_124m.py", "--max_steps=100"])
"""
import ast
import difflib
import math
import operator
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from errors import UserError
from model import EMBEDDINGS, KRONECKER_MODES


@dataclass
class TrainConfig:
    # I/O
    data_dir: str = "data/fineweb_edu"
    out_dir: str = "out"                 # checkpoints go to out_dir/run_name/
    log_dir: str = "results/runs"        # logs go to log_dir/run_name/
    run_name: Optional[str] = None       # None -> "<embedding>_s<seed>"
    seed: int = 1337                     # model init (and dropout)
    data_seed: Optional[int] = None      # order of the training blocks; None -> seed
    # model (the GPTConfig fields)
    embedding: str = "bpe"               # "bpe" | "bpe_untied" | "kronecker"
    pos_dim: int = 16
    kronecker_mode: str = "sparse"       # "sparse" | "dense" | "cached"
    block_size: int = 1024
    vocab_size: int = 50304
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True
    # batch and schedule: 2**19 tokens/step x 4768 steps = 2.5B tokens (build-nanogpt's recipe)
    total_batch_tokens: int = 524288
    micro_batch_size: int = 64           # sequences per GPU per micro-step (fits 80 GB at 124M)
    max_steps: int = 4768
    warmup_steps: int = 715
    max_lr: float = 6e-4
    min_lr: float = 6e-5
    beta1: float = 0.9
    beta2: float = 0.95
    weight_decay: float = 0.1
    grad_clip: float = 1.0               # 0 -> no clipping (the norm is still logged)
    # evaluation, logging, checkpoints
    eval_interval: int = 250
    val_tokens: int = 10485760           # the fixed validation set: first tokens of the val shard
    log_interval: int = 10               # print every N steps (log.jsonl gets every step)
    ckpt_interval: int = 0               # 0 -> checkpoint at every eval step (and at the end)
    keep_checkpoints: int = 2            # newest checkpoints kept, plus those in save_steps
    save_steps: tuple[int, ...] = ()
    resume: str = "auto"                 # "auto" (latest in out_dir/run_name) | "never" | a path
    # system
    device: str = "auto"                 # "auto" (cuda if available) | "cpu" | "cuda"
    dtype: str = "auto"                  # "auto" (bfloat16 on CUDA, float32 on CPU) | "bfloat16" | "float32"
    compile: Optional[bool] = None       # None -> torch.compile on CUDA only
    peak_flops: float = 989e12           # per-device peak for MFU (H100/H200 dense bf16)
    wandb_log: bool = False
    wandb_project: str = "kronecker-nanogpt"


CHOICES = {
    "embedding": EMBEDDINGS,
    "kronecker_mode": KRONECKER_MODES,
    "dtype": ("auto", "bfloat16", "float32"),
}
POSITIVE = ("pos_dim", "block_size", "vocab_size", "n_layer", "n_head", "n_embd",
            "total_batch_tokens", "micro_batch_size", "max_steps", "eval_interval", "val_tokens",
            "log_interval", "keep_checkpoints")
NON_NEGATIVE = ("warmup_steps", "min_lr", "weight_decay", "grad_clip", "ckpt_interval", "dropout")
FIELD_TYPES = typing.get_type_hints(TrainConfig)
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow}


def unknown_key_error(name, source):
    close = difflib.get_close_matches(name, FIELD_TYPES, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else "see train_config.py for the keys"
    return UserError(f"unknown config key '{name}' ({source}); {hint}")


def _parse_bool(text):
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError


def _parse_number(text, kind):
    value = ast.literal_eval(text.strip())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError
    return _number(value, kind)


def _number(value, kind):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError
    if kind is float:
        return float(value)
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ValueError
    return int(value)


def coerce(name, value, source, text=False):
    """Return value converted to field `name`'s type; text (from the command line) is parsed."""
    typ = FIELD_TYPES[name]
    optional = typing.get_origin(typ) is typing.Union
    base = typing.get_args(typ)[0] if optional else typ
    try:
        if optional and (value is None or (text and value.strip().lower() in ("none", "null"))):
            return None
        if base is str:
            if not isinstance(value, str):
                raise ValueError
            result = value
        elif base is bool:
            result = _parse_bool(value) if text else value
            if not isinstance(result, bool):
                raise ValueError
        elif base in (int, float):
            result = _parse_number(value, base) if text else _number(value, base)
        else:  # tuple[int, ...]
            if text:
                value = [_parse_number(v, int) for v in value.strip("()[] ").split(",") if v.strip()]
            result = tuple(_number(v, int) for v in ((value,) if isinstance(value, int) else value))
    except (ValueError, TypeError, SyntaxError):
        kind = getattr(base, "__name__", str(base)) + (" or None" if optional else "")
        raise UserError(f"bad value {value!r} for '{name}' ({source}): expected {kind}") from None
    if name in CHOICES and result not in CHOICES[name]:
        raise UserError(f"bad value {result!r} for '{name}' ({source}): "
                        f"choose one of {', '.join(CHOICES[name])}")
    return result


def _literal(node):
    """ast.literal_eval plus arithmetic on numbers (e.g. 2**19, 8 * 1024)."""
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_literal(node.left), _literal(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_literal(node.operand)
    return ast.literal_eval(node)


def read_config_file(path):
    """{name: value} assigned by a config file: only `name = literal` statements are allowed."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} not found (expected e.g. config/bpe_124m.py)")
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError as err:
        raise UserError(f"{path}:{err.lineno}: syntax error: {err.msg}") from None
    values = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # docstring or comment-like string
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)):
            raise UserError(f"{path}:{stmt.lineno}: only `name = value` assignments are allowed")
        try:
            values[stmt.targets[0].id] = _literal(stmt.value)
        except (ValueError, TypeError, ZeroDivisionError):
            raise UserError(f"{path}:{stmt.lineno}: the value of '{stmt.targets[0].id}' must be "
                            "a literal (number, string, bool, None, tuple)") from None
    return values


def parse_args(argv):
    """[CONFIG.py] [--key=value ...] -> [(name, value, source, is_text)] in the order they apply."""
    updates = []
    for i, arg in enumerate(argv):
        if arg.startswith("--"):
            key, eq, value = arg[2:].partition("=")
            if not eq:
                raise UserError(f"argument '{arg}' must look like --key=value")
            updates.append((key, value, f"from {arg}", True))
        elif i == 0 and arg.endswith(".py"):
            updates += [(k, v, f"in {arg}", False) for k, v in read_config_file(arg).items()]
        else:
            raise UserError(f"unexpected argument '{arg}': usage is "
                            "`python train.py [CONFIG.py] [--key=value ...]`")
    return updates


def validate(cfg):
    for name in POSITIVE:
        if getattr(cfg, name) <= 0:
            raise UserError(f"'{name}' must be positive, got {getattr(cfg, name)}")
    for name in NON_NEGATIVE:
        if getattr(cfg, name) < 0:
            raise UserError(f"'{name}' must be >= 0, got {getattr(cfg, name)}")
    if cfg.min_lr > cfg.max_lr:
        raise UserError(f"min_lr ({cfg.min_lr}) must not exceed max_lr ({cfg.max_lr})")
    if cfg.n_embd % cfg.n_head:
        raise UserError(f"n_embd ({cfg.n_embd}) must be divisible by n_head ({cfg.n_head})")
    if cfg.total_batch_tokens % cfg.block_size:
        raise UserError(f"total_batch_tokens ({cfg.total_batch_tokens}) must be a multiple of "
                        f"block_size ({cfg.block_size})")


def load_config(argv):
    """Defaults, then the config file, then --key=value; resolved run_name and data_seed."""
    values = {}
    for name, value, source, text in parse_args(argv):
        if name not in FIELD_TYPES:
            raise unknown_key_error(name, source)
        values[name] = coerce(name, value, source, text)
    cfg = TrainConfig(**values)
    if cfg.data_seed is None:
        cfg.data_seed = cfg.seed
    if cfg.run_name is None:
        cfg.run_name = f"{cfg.embedding}_s{cfg.seed}"
    validate(cfg)
    return cfg
