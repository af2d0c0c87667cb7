"""Training configuration: the TrainConfig dataclass (defaults = GPT-2 124M with build-nanogpt's
optimiser recipe; the paper states none) and its parser for
`python train.py [CONFIG.py] [--key=value ...]`.

TrainConfig is model.GPTConfig's fields plus the run's own; each field carries its one-line
meaning (model.config_field), which `python train.py --help` prints (help_text). A model field
is added to GPTConfig only; GPTConfig.check holds the model's checks, validate() the run's.

A config file is Python that only assigns literals to TrainConfig names, e.g.
    embedding = "kronecker"
    max_steps = 4768
    total_batch_tokens = 2**19          # + - * / // ** on numbers are allowed
It is read with `ast` (never executed), and bounded: at most MAX_CONFIG_BYTES of UTF-8, exponents
up to MAX_EXPONENT, integers below 2**63, so no expression can take unbounded time or memory.
Command-line `--key=value` overrides come after it.
Unknown names and badly typed values stop with a one-line UserError naming the close matches.

Arms: runs are grouped and compared by `arm` (config.json; default run name <arm>_s<seed>). ARMS
names the arms and what each sets. `arm=NAME` of ARMS sets those values where it appears (a later
value that contradicts them is an error); left unset, the arm is the ARMS name the settings match
(an error when none does: give the run its own name, e.g. --arm=kronecker_nodecay).

    from train_config import load_config
    cfg = load_config(["config/kronecker_124m.py", "--max_steps=100"])
"""
import ast
import dataclasses
import difflib
import math
import operator
import re
import textwrap
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from errors import UserError, not_found
from devices import DTYPES
from embeddings import KRONECKER_MODES, PROJECTIONS, TRIGRAM_AGGREGATIONS
from model import EMBEDDINGS, INPUT_KINDS, INPUT_KNOBS, MAX_SEED, REMOVED_FIELDS, GPTConfig, config_field
from tokenizer import TOKEN_BYTES_MODES, VOCAB_MULTIPLE, get_tokenizer


@dataclass
class TrainConfig(GPTConfig):
    """Everything a run is given: the model's fields (inherited from model.GPTConfig, checked by
    its check()) and the run's own below. Defaults = GPT-2 124M with build-nanogpt's optimiser
    recipe (the paper states none). validate() checks a whole config, one UserError line each.
    """
    vocab_size: Optional[int] = config_field(None, "None -> the tokenizer's ids padded to a multiple "
                                                   "of 64 (GPT-2: 50304)")
    data_dir: str = config_field("data/fineweb_edu", "folder of prepared shards and manifest.json",
                                 section="I/O")
    out_dir: str = config_field("out", "checkpoints go to out_dir/run_name/")
    log_dir: str = config_field("results/runs", "config.json, log.jsonl, summary.json go to "
                                                "log_dir/run_name/")
    run_name: Optional[str] = config_field(None, "folder name of the run; None -> <arm>_s<seed>")
    seed: int = config_field(1337, "model init (and dropout)")
    data_seed: Optional[int] = config_field(None, "order of the training blocks; None -> seed")
    arm: Optional[str] = config_field(None, "name runs are compared under; None -> the named arm "
                                            "(ARMS) these settings match")
    tokenizer: str = config_field("gpt2", "tiktoken name, *.tiktoken file, tokenizer.json or hub "
                                          "name (as in the data's manifest)",
                                  section="tokenizer and memory (tokenizer.py)")
    token_bytes: str = config_field("exact", "Kronecker bytes of an id: exact, or as the authors' "
                                             "package (U+FFFD)")
    activation_checkpointing: bool = config_field(False, "recompute each block in backward: less "
                                                         "memory, ~1/3 more compute")
    total_batch_tokens: int = config_field(524288, "tokens per optimiser step, all ranks and "
                                                   "micro-steps together",
                                           section="batch and schedule (2**19 tokens x 4768 steps = "
                                                   "2.5B tokens: build-nanogpt's recipe)")
    micro_batch_size: int = config_field(64, "sequences per GPU per micro-step (64 fits 80 GB at 124M)")
    max_steps: int = config_field(4768, "optimiser steps of the run")
    max_epochs: Optional[float] = config_field(None, "refuse to start a run that reads more passes "
                                                     "over the train set; None -> any (said at start)")
    warmup_steps: int = config_field(715, "steps of linear learning-rate warmup")
    max_lr: float = config_field(6e-4, "peak learning rate (after warmup)")
    min_lr: float = config_field(6e-5, "learning rate at max_steps (cosine decay)")
    beta1: float = config_field(0.9, "AdamW beta1")
    beta2: float = config_field(0.95, "AdamW beta2")
    weight_decay: float = config_field(0.1, "AdamW weight decay of the 2-D weights")
    grad_clip: float = config_field(1.0, "gradient-norm clip; 0 -> no clipping (the norm is still logged)")
    eval_interval: int = config_field(250, "validation loss every N steps (and at the end)",
                                      section="evaluation, logging, checkpoints")
    val_tokens: int = config_field(10485760, "size of the fixed validation set: the first tokens of "
                                             "the val shard")
    log_interval: int = config_field(10, "print every N steps (log.jsonl gets every step)")
    ckpt_interval: int = config_field(1000, "checkpoint every N steps (written in the background), "
                                            "at the end, at save_steps and at a stop signal; 0 -> only "
                                            "those (1000: < 2% of a 124M run's time, docs/training.md)")
    keep_checkpoints: int = config_field(2, "newest checkpoints kept, plus those in save_steps")
    save_steps: tuple[int, ...] = config_field((), "steps whose checkpoints are always written and "
                                                   "kept, e.g. 1000,2000")
    resume: str = config_field("auto", "auto (latest in out_dir/run_name) | never | a checkpoint path")
    allow_change: str = config_field("", "comma-separated keys that may differ from the resumed "
                                         "checkpoint's, recorded with their step, e.g. max_lr,min_lr,"
                                         "max_steps (docs/training.md)")
    hellaswag_interval: int = config_field(0, ">0: HellaSwag acc_norm into log.jsonl every N steps "
                                              "and at the end")
    hellaswag_dir: str = config_field("data/hellaswag", "where hellaswag_val.jsonl is (downloaded "
                                                        "at start if absent)")
    device: str = config_field("auto", "auto (cuda if available) | cpu | cuda | cuda:N",
                               section="system")
    dtype: str = config_field("auto", "auto: bfloat16 autocast on CUDA, float32 on CPU")
    compile: Optional[bool] = config_field(None, "torch.compile the model; None -> on CUDA only")
    dist_backend: str = config_field("auto", "auto: nccl on CUDA, gloo on CPU (gloo lets ranks share "
                                             "a GPU)")
    dist_timeout: int = config_field(1800, "seconds a rank waits in a collective (e.g. while rank 0 "
                                           "writes a checkpoint) before the run stops with an error "
                                           "(docs/training.md, The GPU path)")
    peak_flops: Optional[float] = config_field(None, "per-device peak FLOP/s for MFU; None -> the GPU's dense "
                                                     "bf16 peak (devices.PEAK_BF16_FLOPS; H100/H200 989e12), "
                                                     "none known on CPU: MFU n/a")
    wandb_log: bool = config_field(False, "also log to Weights & Biases (pip install -r requirements-wandb.txt)")
    wandb_project: str = config_field("kronecker-nanogpt", "the W&B project")

    def __post_init__(self):
        pass  # no model checks yet: vocab_size may still be None; validate() runs them


# The named arms and what each sets beyond TrainConfig's defaults (docs/embedding.md, "The arms").
# bpe_untied_scaled feeds bpe_untied's N(0, 0.02^2) table into the network at the Kronecker arm's
# input scale: e = W z with W ~ N(0, 1/D) and z of D entries with unit (unbiased) variance gives
# each coordinate of e variance (D - 1)/D ~ 1, so |e| ~ sqrt(n_embd) (27.7 at 768); a table row has
# norm 0.02 sqrt(n_embd), so wte_scale 1/0.02 = 50 matches at every width, while Adam moves the table
# at its usual relative rate (lr/0.02 per step; a table drawn at N(0, 1) barely moved, issue 22).
# tests/test_arms.py measures both norms on the 124M shape and that the scaled table learns.
ARMS = {
    "bpe": dict(embedding="bpe"),
    "bpe_untied": dict(embedding="bpe_untied"),
    "bpe_factorized": dict(embedding="bpe_factorized"),
    "bpe_untied_scaled": dict(embedding="bpe_untied", wte_scale=50.0),
    "kronecker": dict(embedding="kronecker"),
    "kronecker_tied": dict(embedding="kronecker_tied"),
    "kronecker_shuffled": dict(embedding="kronecker_shuffled"),
    "trigram_hash": dict(embedding="trigram_hash"),
}
# What an arm name stands for: the input, its scale and knobs (model.INPUT_KNOBS, so a new input's
# knob is one entry there) but the seeds of the shuffle and of the trigram hash (seeds, like `seed`),
# and the codec's bytes.
ARM_SETTINGS = ("embedding", "wte_scale", *(k for k in INPUT_KNOBS if k not in ("shuffle_seed", "trigram_seed")),
                "token_bytes")
ARM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
CHOICES = {
    "embedding": EMBEDDINGS,
    "kronecker_mode": KRONECKER_MODES,
    "projection": PROJECTIONS,
    "trigram_aggregation": TRIGRAM_AGGREGATIONS,
    "dtype": DTYPES,
    "token_bytes": TOKEN_BYTES_MODES,
    "dist_backend": ("auto", "nccl", "gloo"),
}
# What a resumed run may change with --allow_change (run_folder.py records it with its step): the
# optimiser and its schedule. Not the model, data, batch, seeds or evaluation: those make another run.
CHANGEABLE = ("max_lr", "min_lr", "warmup_steps", "max_steps", "weight_decay", "beta1", "beta2",
              "grad_clip")
# The run's own ranges; the model's fields are checked by GPTConfig.check
POSITIVE = ("total_batch_tokens", "micro_batch_size", "max_steps", "eval_interval", "val_tokens",
            "log_interval", "keep_checkpoints", "dist_timeout")
NON_NEGATIVE = ("warmup_steps", "min_lr", "weight_decay", "grad_clip", "ckpt_interval",
                "hellaswag_interval")
UNIT_INTERVAL = ("beta1", "beta2")  # each in [0, 1)
FIELD_TYPES = typing.get_type_hints(TrainConfig)
FIELD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
MAX_INT = 2**63 - 1                  # int64: what numpy and torch take as seeds and sizes
MAX_EXPONENT = 64                    # 2**19, 10**9 ... never 9 ** 9 ** 9
MAX_CONFIG_BYTES = 1 << 20
MAX_LR = 1.0                         # AdamW runs at ~1e-4..1e-2; far above 1 a float32 update overflows
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow}


def unknown_key_error(name, source):
    if name in REMOVED_FIELDS:
        return UserError(f"config key '{name}' ({source}) was removed: {REMOVED_FIELDS[name]}; drop it")
    close = difflib.get_close_matches(name, FIELD_TYPES, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else "`python train.py --help` lists the keys"
    return UserError(f"unknown config key '{name}' ({source}); {hint}")


def _parse_bool(text):
    """True or False, as --help prints them, in any case (true, FALSE); nothing else: a bool
    written another way (yes, 1, on) is refused rather than read one way or the other."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
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
        kind = ("True or False" if base is bool else getattr(base, "__name__", str(base))) + \
            (" or None" if optional else "")
        raise UserError(f"bad value {value!r} for '{name}' ({source}): expected {kind}") from None
    if name in CHOICES and result not in CHOICES[name]:
        raise UserError(f"bad value {result!r} for '{name}' ({source}): "
                        f"choose one of {', '.join(CHOICES[name])}")
    return result


def _literal(node):
    """ast.literal_eval plus arithmetic on numbers (e.g. 2**19, 8 * 1024), bounded: operands must
    be numbers, exponents at most MAX_EXPONENT, integers below 2**63 (ValueError otherwise)."""
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _bounded(_literal(node.left)), _bounded(_literal(node.right))
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ValueError(f"exponent {right} is above {MAX_EXPONENT}")
        return _bounded(_BINOPS[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_bounded(_literal(node.operand))
    return ast.literal_eval(node)


def _bounded(value):
    """value if it is a number an expression may use (an int below 2**63 in size)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("arithmetic works on numbers only")
    if isinstance(value, int) and abs(value) > MAX_INT:
        raise ValueError(f"a {value.bit_length()}-bit integer is too large")
    return value


def read_config_file(path):
    """{name: value} assigned by a config file: only `name = literal` statements are allowed."""
    path = Path(path)
    if not path.is_file():
        raise not_found("config file", path, "expected e.g. config/bpe_124m.py")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise UserError(f"config file {path} is over {MAX_CONFIG_BYTES} bytes; a config is a few "
                        "`name = value` lines")
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except UnicodeDecodeError as err:
        raise UserError(f"config file {path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    except SyntaxError as err:
        raise UserError(f"{path}:{err.lineno}: syntax error: {err.msg}") from None
    except (ValueError, RecursionError, MemoryError) as err:  # e.g. a 5000-digit literal, deep nesting
        raise UserError(f"config file {path} cannot be parsed ({type(err).__name__}); "
                        "use plain `name = value` lines") from None
    values = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # docstring or comment-like string
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)):
            raise UserError(f"{path}:{stmt.lineno}: only `name = value` assignments are allowed")
        try:
            values[stmt.targets[0].id] = _literal(stmt.value)
        except (ValueError, TypeError, ZeroDivisionError, OverflowError, RecursionError) as err:
            why = f" ({err})" if str(err) and isinstance(err, ValueError) else ""
            raise UserError(f"{path}:{stmt.lineno}: the value of '{stmt.targets[0].id}' must be "
                            f"a literal (number, string, bool, None, tuple){why}") from None
    return values


def parse_args(argv):
    """[CONFIG.py] [--key=value ...] -> [(name, value, source, is_text)] in the order they apply."""
    updates = []
    for i, arg in enumerate(argv):
        if arg.startswith("--"):
            key, eq, value = arg[2:].partition("=")
            if not eq:
                if key not in FIELD_TYPES:  # e.g. a flag of another tool
                    raise unknown_key_error(key, f"from {arg}")
                raise UserError(f"argument '{arg}' must look like --key=value")
            updates.append((key, value, f"from {arg}", True))
        elif i == 0 and arg.endswith(".py"):
            updates += [(k, v, f"in {arg}", False) for k, v in read_config_file(arg).items()]
        else:
            raise UserError(f"unexpected argument '{arg}': usage is "
                            "`python train.py [CONFIG.py] [--key=value ...]`")
    return updates


HELP_FLAGS = ("-h", "--help")
HELP_WIDTH = 120


def help_text():
    """`python train.py --help`: every key with its type, default and meaning, read from the
    TrainConfig fields (their config_field help and section), with the choices of CHOICES."""
    lines = ["usage: python train.py [CONFIG.py] [--key=value ...]", "",
             "Settings apply in order: these defaults, then CONFIG.py (`key = value` lines, parsed,",
             "never run), then each --key=value. Each key is shown with its default, type and meaning",
             "(bool keys take True or False, in any case):"]
    for f in dataclasses.fields(TrainConfig):
        if f.metadata["section"]:
            lines += ["", f.metadata["section"] + ":"]
        meaning = f.metadata["help"]
        if f.name in CHOICES:
            meaning += f" [{' | '.join(CHOICES[f.name])}]"
        key = f"  {'--' + f.name + '=' + default_text(f.default):<34s} {type_name(FIELD_TYPES[f.name]):<12s} "
        wrapped = textwrap.wrap(meaning, HELP_WIDTH - len(key))
        lines += [key + wrapped[0]] + [" " * len(key) + more for more in wrapped[1:]]
    return "\n".join(lines)


def type_name(typ):
    """int, float, str, bool; 'int|None' for Optional[int]; 'int,int,...' for tuple[int, ...]."""
    if typing.get_origin(typ) is typing.Union:
        return type_name(typing.get_args(typ)[0]) + "|None"
    if typing.get_origin(typ) is tuple:
        return "int,int,..."
    return typ.__name__


def default_text(value):
    """A default as it would be typed after --key= (floats short but still floats: 0.0, 6e-05)."""
    if isinstance(value, float):
        short = f"{value:g}"
        return short if any(c in short for c in ".en") else short + ".0"
    return "()" if value == () else str(value)


def gpt_config(cfg):
    """The model.GPTConfig of a TrainConfig (its model fields), as train.py builds the model."""
    return GPTConfig(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(GPTConfig)})


def validate(cfg):
    """Every value is checked here, before any data or model: one UserError line each."""
    for name, typ in FIELD_TYPES.items():
        value = getattr(cfg, name)
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"'{name}' must be a finite number, got {value}")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
            raise UserError(f"'{name}' is too large ({value.bit_length()} bits); it must fit in 64 bits")
    cfg.check()  # the model's fields (GPTConfig.check)
    for name in POSITIVE:
        if getattr(cfg, name) <= 0:
            raise UserError(f"'{name}' must be positive, got {getattr(cfg, name)}")
    for name in NON_NEGATIVE:
        if getattr(cfg, name) < 0:
            raise UserError(f"'{name}' must be >= 0, got {getattr(cfg, name)}")
    for name in UNIT_INTERVAL:
        if not 0 <= getattr(cfg, name) < 1:
            raise UserError(f"'{name}' must be in [0, 1), got {getattr(cfg, name)}")
    for name in ("seed", "data_seed"):
        if not 0 <= getattr(cfg, name) <= MAX_SEED:
            raise UserError(f"'{name}' must be in [0, 2**32 - 1], got {getattr(cfg, name)}")
    if any(s < 0 for s in cfg.save_steps):
        raise UserError(f"'save_steps' must be >= 0, got {cfg.save_steps}")
    if not 0 < cfg.max_lr <= MAX_LR:
        raise UserError(f"'max_lr' must be in (0, {MAX_LR}], got {cfg.max_lr} (the paper uses 6e-4)")
    if cfg.warmup_steps > cfg.max_steps:
        raise UserError(f"warmup_steps ({cfg.warmup_steps}) exceeds max_steps ({cfg.max_steps}): the "
                        "learning rate would never reach max_lr; lower warmup_steps")
    if cfg.max_epochs is not None and cfg.max_epochs <= 0:
        raise UserError(f"'max_epochs' must be positive (or None), got {cfg.max_epochs}")
    unknown = [k for k in allowed_changes(cfg) if k not in CHANGEABLE]
    if unknown:
        raise UserError(f"'allow_change' names {', '.join(unknown)}, which a resumed run may not change; "
                        f"it may change {', '.join(CHANGEABLE)} (other keys make another run: use "
                        "another run_name)")
    check_knobs(cfg)
    check_wandb(cfg)
    check_arm(cfg)
    check_run_name(cfg.run_name)
    if cfg.min_lr > cfg.max_lr:
        raise UserError(f"min_lr ({cfg.min_lr}) must not exceed max_lr ({cfg.max_lr})")
    if cfg.total_batch_tokens % cfg.block_size:
        raise UserError(f"total_batch_tokens ({cfg.total_batch_tokens}) must be a multiple of "
                        f"block_size ({cfg.block_size})")


def allowed_changes(cfg):
    """The keys of cfg.allow_change ("max_lr, min_lr" -> ["max_lr", "min_lr"])."""
    return [k.strip() for k in cfg.allow_change.split(",") if k.strip()]


def check_wandb(cfg):
    """wandb_log=True needs the optional wandb package (requirements-wandb.txt); checked on every
    rank before any run folder exists (UserError)."""
    if not cfg.wandb_log:
        return
    try:
        import wandb  # noqa: F401  (run_folder.py uses it; imported here only to fail early)
    except ImportError:
        raise UserError("wandb_log=True needs the wandb package, which is not installed; "
                        "pip install -r requirements-wandb.txt (or drop wandb_log)") from None


def check_arm(cfg):
    """The run has an arm (given, or named from its settings by named_arm) that is a plain word:
    letters, digits, '_', '.', '-' (UserError)."""
    if cfg.arm is None:
        # the embedding and what differs from the defaults: the list of arm settings is long
        settings = ", ".join(f"{k}={getattr(cfg, k)}" for k in ARM_SETTINGS
                             if k == "embedding" or getattr(cfg, k) != FIELD_DEFAULTS[k])
        raise UserError(f"{settings} is none of the named arms ({', '.join(ARMS)}); name this arm "
                        "with --arm=NAME (runs are grouped and compared by arm)")
    if not ARM_NAME.fullmatch(cfg.arm):
        raise UserError(f"'arm' {cfg.arm!r} must be letters, digits, '_', '.' or '-' (it names runs "
                        "and table rows), e.g. kronecker_nodecay")


def check_knobs(cfg):
    """Each input knob set away from its default acts on this embedding: one of its
    INPUT_KINDS entry's knobs (UserError naming the embeddings that read it)."""
    for knob in INPUT_KNOBS:
        if getattr(cfg, knob) != FIELD_DEFAULTS[knob] and knob not in INPUT_KINDS[cfg.embedding].knobs:
            readers = ", ".join(e for e, kind in INPUT_KINDS.items() if knob in kind.knobs)
            raise UserError(f"'{knob}' acts on embedding {readers} only; embedding={cfg.embedding} does not "
                            f"read it: drop {knob}")
    if cfg.projection_hidden and cfg.projection != "mlp":
        raise UserError(f"'projection_hidden' is the width of projection=mlp; projection={cfg.projection} "
                        "has no hidden layer: drop projection_hidden or set --projection=mlp")


def arm_settings(arm):
    """{ARM_SETTINGS name: value} that named arm `arm` (a key of ARMS) stands for."""
    return {**{name: FIELD_DEFAULTS[name] for name in ARM_SETTINGS}, **ARMS[arm]}


def named_arm(cfg):
    """The ARMS name whose settings cfg has; None when none has them (validate then says so)."""
    mine = {name: getattr(cfg, name) for name in ARM_SETTINGS}
    return next((arm for arm in ARMS if arm_settings(arm) == mine), None)


def check_run_name(name):
    """A run_name is one folder name: not empty, no path separator, not . or .. (UserError)."""
    if not name or not name.strip():
        raise UserError("'run_name' is empty; give a folder name such as bpe_s1337")
    if "/" in name or "\\" in name or name in (".", "..") or ".." in name or "\0" in name:
        raise UserError(f"'run_name' {name!r} must be a single folder name (no '/', '\\', '..'); "
                        "it names <log_dir>/<run_name> and <out_dir>/<run_name>")


def load_config(argv):
    """Defaults, then the config file, then --key=value; resolved arm, run_name, data_seed and
    vocab_size (from the tokenizer when unset)."""
    values, arm_fixed = {}, {}
    for name, value, source, text in parse_args(argv):
        if name not in FIELD_TYPES:
            raise unknown_key_error(name, source)
        value = coerce(name, value, source, text)
        if name in arm_fixed and value != arm_fixed[name]:
            raise UserError(f"{name}={value} ({source}) contradicts arm={values['arm']}, which means "
                            f"{name}={arm_fixed[name]}; drop one, or name a new arm with --arm=NAME")
        values[name] = value
        if name == "arm":  # a named arm sets its values here; later ones may not contradict them
            arm_fixed = arm_settings(value) if value in ARMS else {}
            values.update(arm_fixed)
    cfg = TrainConfig(**values)
    if cfg.data_seed is None:
        cfg.data_seed = cfg.seed
    if cfg.arm is None:
        cfg.arm = named_arm(cfg)
    if cfg.run_name is None and cfg.arm is not None:
        cfg.run_name = f"{cfg.arm}_s{cfg.seed}"
    if cfg.vocab_size is None:
        # every other value is checked before the tokenizer loads, so a tokenizer that cannot
        # load (offline) never hides a bad value; vocab_size itself is checked once known
        validate(dataclasses.replace(cfg, vocab_size=VOCAB_MULTIPLE))
        cfg.vocab_size = get_tokenizer(cfg.tokenizer).padded_vocab_size()  # UserError if it cannot
    validate(cfg)
    return cfg
