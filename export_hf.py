"""Export a train.py checkpoint of any arm to a Hugging Face transformers folder.

    python export_hf.py --ckpt out/kronecker_s1337/ckpt_004768.pt --out out/hf/kronecker_s1337
    python export_hf.py --ckpt ... --out ... --force              # replace an earlier export
    python export_hf.py --ckpt ... --out ... --kronecker-native   # keep the byte codec (trust_remote_code)

The folder holds a GPT2LMHeadModel (config.json, model.safetensors, generation_config.json), the
checkpoint's tokenizer (tokenizer.json and tokenizer_config.json; for tiktoken tokenizers such as
GPT-2's also vocab.json and merges.txt), README.md (a model card: run, config, tokens, val loss,
the command) and export_hf.json (the same facts for scripts). It loads with
`AutoModelForCausalLM.from_pretrained(folder)` and `AutoTokenizer.from_pretrained(folder)`, no
custom code, and lm-evaluation-harness reads it as `--model hf --model_args pretrained=folder`.

Every arm is exported the same way, from the model itself (no arm names): the input table is
GPT.input_table(), the effective (V, d) vector of every id (the BPE table, or the codec +
projection of every id for the Kronecker arms); the head is lm_head, tied to that table when the
two are equal (the tied arms); the blocks' Linear weights are transposed to GPT-2's Conv1D layout;
a bias=False model gets zero biases; the padded vocabulary (e.g. 50,304 rows for GPT-2's 50,257
ids) is kept, so log-probabilities equal the checkpoint's, and generation_config.json suppresses
the padding ids, as our own sampling does. Before the folder is put in place, the export is
loaded back and its float32 logits on a fixed probe text must equal the checkpoint's within
1e-4 (else one UserError line: an input that is not a per-id table cannot be a GPT-2).
Choices and what a Kronecker export loses: docs/export.md.
"""
import argparse
import dataclasses
import functools
import os
import shlex
import shutil
from pathlib import Path

import torch

from atomic import DISK_FULL_ERRNOS, atomic_write_json, atomic_write_text, disk_full_error
from errors import UserError, one_line, require, run_main
from eval.probe_common import load_model
from model import TiedHead
from tokenizer import DEFAULT_TOKENIZER, get_tokenizer

REQUIREMENTS = "requirements-eval.txt"
MARKER = "export_hf.json"  # what makes a folder an export (and replaceable with --force)
NATIVE_CODE = Path(__file__).resolve().parent / "hf_kronecker_gpt2.py"
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")  # (in, out) in GPT-2
NATIVE_BUFFERS = ("byte_table", "byte_lengths", "length_scale", "mean_shift", "projection.weight")
TOLERANCE = 1e-4  # max |logit difference| in float32 (the bound; measured 0 on CPU, same kernels)
# Held-out probe text: plain prose, a typo, non-ASCII and digits, so that many ids are read.
PROBE_TEXT = ("The Kronecker embedding reads the bytes of every token. Teh quick brown fox jumps over "
              "the lazy dog; naïve café, Zürich, 東京, 2024-12-31: 3.14159 and e^(iπ) = -1.")


# ----------------------------------------------------------------------------- the model

def gpt2_config_kwargs(model, tok, tied):
    """GPT2Config fields of our GPT, read from the model (its sizes, LayerNorm eps, GELU kind)."""
    c = model.config
    gelu = model.transformer.h[0].mlp.gelu
    return dict(vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd, n_layer=c.n_layer,
                n_head=c.n_head, activation_function="gelu" if gelu.approximate == "none" else "gelu_new",
                layer_norm_epsilon=model.transformer.ln_f.eps, resid_pdrop=c.dropout, embd_pdrop=c.dropout,
                attn_pdrop=c.dropout, tie_word_embeddings=tied, bos_token_id=tok.eot_id, eos_token_id=tok.eot_id)


def body_state(model):
    """Everything but the input layer, in GPT-2's names and layouts: our names are GPT-2's, and
    GPT-2 stores the blocks' Linear weights as Conv1D, (in, out)."""
    return {name: (t.t() if name.endswith(CONV1D) else t).contiguous()
            for name, t in model.state_dict().items() if not name.startswith("transformer.wte.")}


def load_into(hf_model, state, bias):
    """Load `state` into hf_model strictly; a bias=False model gets zero biases (the same
    function). UserError naming the weights that do not fit (an arm GPT-2 cannot hold)."""
    expected = hf_model.state_dict()
    missing = [k for k in expected if k not in state]
    if not bias:
        state.update({k: torch.zeros_like(expected[k]) for k in missing if k.endswith(".bias")})
        missing = [k for k in missing if not k.endswith(".bias")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise UserError(f"this checkpoint does not fit a GPT-2 (missing {', '.join(missing) or 'nothing'}; no place "
                        f"for {', '.join(unexpected) or 'nothing'}); its arm needs its own export")
    try:
        hf_model.load_state_dict(state, strict=True)
    except RuntimeError as err:  # a shape GPT-2 does not have
        raise UserError(f"this checkpoint does not fit a GPT-2 ({one_line(err)}); its arm needs its own export") from None
    return hf_model


@torch.no_grad()
def input_and_head(model):
    """(table, head, tied): the effective input table GPT.input_table() and lm_head's weight, both
    (V, d) float32; tied when they are equal (a shared tensor, or a head computed from the table)."""
    table = model.input_table().detach().float().contiguous()
    head = getattr(getattr(model, "lm_head", None), "weight", None)
    if not isinstance(head, torch.Tensor):
        raise UserError("this model's output head has no lm_head.weight; its arm needs its own export (docs/export.md)")
    head = head.detach().float().contiguous()
    return table, head, head.shape == table.shape and torch.equal(head, table)


def to_gpt2(model, tok, transformers):
    """GPT2LMHeadModel: wte = the effective input table, lm_head = ours, tied iff they are equal.
    A head tied to a computed table with a constant (model.TiedHead, kronecker_tied: logits =
    (scale h) E^T) is exported tied, lm_head = wte = E, its constant folded into ln_f's weight and
    bias (ln_f's output feeds only the head, so the logits are the same function)."""
    table, head, tied = input_and_head(model)
    state = {**body_state(model), "transformer.wte.weight": table, "lm_head.weight": head}
    if isinstance(model.lm_head, TiedHead) and not tied:
        scale = model.lm_head.scale
        state.update({k: state[k] * scale for k in ("transformer.ln_f.weight", "transformer.ln_f.bias") if k in state})
        state["lm_head.weight"], tied = table, True
    config = transformers.GPT2Config(**gpt2_config_kwargs(model, tok, tied))
    hf_model = load_into(transformers.GPT2LMHeadModel(config), state, model.config.bias)
    if tied:
        hf_model.tie_weights()
    return hf_model


def to_native(model, tok):
    """KroneckerGPT2LMHeadModel (hf_kronecker_gpt2.py): the codec's buffers and projection
    instead of a table, and the untied head."""
    from hf_kronecker_gpt2 import KroneckerGPT2Config, KroneckerGPT2LMHeadModel
    wte = model.transformer.wte
    try:
        buffers = {f"transformer.wte.{name}": wte.get_buffer(name) if "." not in name else wte.get_parameter(name)
                   for name in NATIVE_BUFFERS}
    except AttributeError:
        raise UserError(f"--kronecker-native needs the byte codec's {', '.join(NATIVE_BUFFERS)}; this model's "
                        f"input ({model.config.embedding}) has none: export it without --kronecker-native") from None
    _, head, tied = input_and_head(model)
    if tied:
        raise UserError("--kronecker-native keeps an untied head; this model ties it: export it without the flag")
    config = KroneckerGPT2Config(pos_dim=model.config.pos_dim, **gpt2_config_kwargs(model, tok, False))
    config.auto_map = {"AutoConfig": f"{NATIVE_CODE.stem}.KroneckerGPT2Config",
                       "AutoModelForCausalLM": f"{NATIVE_CODE.stem}.KroneckerGPT2LMHeadModel"}
    state = {**body_state(model), **{k: v.detach().clone() for k, v in buffers.items()}, "lm_head.weight": head}
    return load_into(KroneckerGPT2LMHeadModel(config), state, model.config.bias)


# ----------------------------------------------------------------------------- the tokenizer

@functools.lru_cache(maxsize=4)
def hf_tokenizer_json(tok):
    """tokenizer.json text of a `tokenizers.Tokenizer` that encodes text as `tok` does
    (special-token text aside, see docs/export.md): a Hugging Face tokenizer's own file, or for
    tiktoken encodings the transformers converter's byte-level BPE (tiktoken's split pattern, its
    ranks as merges, `ignore_merges` as tiktoken does), with the special tokens at their own ids.
    Cached per tokenizer: the conversion takes seconds at GPT-2's 50,256 ranks."""
    if tok.kind != "tiktoken":
        return tok.backend.to_str()
    from tokenizers import Tokenizer
    from tokenizers.models import BPE
    from transformers.convert_slow_tokenizer import TikTokenConverter

    enc = tok.backend

    class RanksConverter(TikTokenConverter):
        def load_tiktoken_bpe(self, _):  # the ranks in memory instead of a file
            return enc._mergeable_ranks

        def tokenizer(self):
            vocab, merges = self.extract_vocab_merges_from_model(None)
            vocab.update(enc._special_tokens)  # specials keep their ids (cl100k_base has gaps before them)
            return Tokenizer(BPE(vocab, merges, fuse_unk=False, ignore_merges=True))

    return RanksConverter(pattern=enc._pat_str, extra_special_tokens=list(enc._special_tokens)).converted().to_str()


def save_tokenizer(tok, folder, block_size, transformers):
    """tokenizer.json + tokenizer_config.json (+ vocab.json and merges.txt for tiktoken BPE)."""
    from tokenizers import Tokenizer
    backend = Tokenizer.from_str(hf_tokenizer_json(tok))
    for text, i in tok.special.items():
        if backend.token_to_id(text) != i:
            raise UserError(f"cannot export tokenizer {tok.name}: special token {text!r} would get id "
                            f"{backend.token_to_id(text)}, not {i}")
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=tok.eot_text,
                                                eos_token=tok.eot_text, unk_token=tok.eot_text,
                                                model_max_length=block_size)
    fast.save_pretrained(folder)
    if tok.kind == "tiktoken":  # GPT-2's classic pair, for tools that read those files
        backend.model.save(str(folder))


# ----------------------------------------------------------------------------- the folder

def staging_folder(out, force):
    """A fresh temp folder beside `out` to write into (renamed into place at the end).

    Refuses an existing `out` unless force, and even with force a folder that is not an export
    (no export_hf.json: nothing the user did not ask to delete is deleted). UserError also for
    a folder that cannot be written.
    """
    if out.exists() and not force:
        raise UserError(f"{out} already exists; pass --force to replace it, or choose another --out")
    if out.exists() and not (out / MARKER).is_file() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not an export_hf.py folder (no {MARKER}); not replacing it, "
                        f"even with --force: choose another --out")
    tmp = out.with_name(f".{out.name}.export-tmp")
    try:
        if tmp.exists():  # left by an interrupted export of ours
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    except OSError as err:
        raise UserError(f"cannot write the export folder {out} ({one_line(err)}); choose a writable --out") from None
    return tmp


def move_into_place(tmp, out):
    """Rename tmp to out; an earlier export at out is renamed aside first and removed last, so a
    crash leaves one complete export (or both), never a half-written one."""
    old = out.with_name(f".{out.name}.replaced")
    if out.exists():
        if old.exists():
            shutil.rmtree(old)
        os.rename(out, old)
    os.rename(tmp, out)
    if old.exists():
        shutil.rmtree(old)


# ----------------------------------------------------------------------------- checks and card

def probe_ids(tok, block_size):
    """The probe text's ids after <|endoftext|> (every training document starts after it), cut to the context."""
    return ([tok.eot_id] + tok.encode_ordinary(PROBE_TEXT))[:block_size]


@torch.no_grad()
def max_logit_difference(folder, model, ids, native, transformers):
    """max |logits(export) - logits(checkpoint)| over every position and vocabulary row, float32."""
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=native).float().eval()
    x = torch.tensor([ids])
    theirs = hf_model(x).logits
    ours, _ = model(x, targets=torch.zeros_like(x))  # with targets: logits at every position
    return (theirs - ours).abs().max().item()


def export_info(path, checkpoint, train_config, model, tok, tied, native, diff, n_probe, command, transformers):
    """The facts of the export, for export_hf.json and the model card."""
    c = model.config
    step = checkpoint.get("step")
    batch = train_config.get("total_batch_tokens")
    return dict(
        checkpoint=str(path), run_name=train_config.get("run_name"), arm=train_config.get("arm"),
        embedding=c.embedding, seed=train_config.get("seed"), step=step,
        tokens_seen=step * batch if isinstance(step, int) and isinstance(batch, int) else None,
        val_loss=checkpoint.get("val_loss"), tokenizer=tok.name, tokenizer_ids=tok.n_vocab,
        vocab_size=c.vocab_size, padding_ids=c.vocab_size - tok.n_vocab, tied_head=tied,
        kronecker=c.kronecker, kronecker_native=native, bias=c.bias, model_config=dataclasses.asdict(c),
        check=dict(max_abs_logit_diff=diff, tolerance=TOLERANCE, probe_tokens=n_probe, dtype="float32"),
        command=command,
        versions=dict(torch=torch.__version__, transformers=transformers.__version__))


def model_card(info):
    """README.md of the folder: what the model is, how it was trained and exported, how to load it."""
    c = info["model_config"]
    loss = "not recorded" if info["val_loss"] is None else f"{info['val_loss']:.4f} nats/token"
    tokens = "not recorded" if info["tokens_seen"] is None else f"{info['tokens_seen']:,}"
    remote = ", trust_remote_code=True" if info["kronecker_native"] else ""
    lines = [
        "---", "library_name: transformers", "pipeline_tag: text-generation",
        "tags: [gpt2, kronecker-nanogpt" + (", kronecker-embedding" if info["kronecker"] else "") + "]", "---",
        f"# {info['run_name'] or info['arm'] or info['embedding']}: a kronecker-nanogpt checkpoint as GPT-2",
        "",
        f"Arm `{info['arm']}` (embedding `{info['embedding']}`), seed {info['seed']}, step {info['step']}: "
        f"{tokens} training tokens, validation loss {loss} (the checkpoint's last eval).",
        "",
        "| config | value |", "|---|---|",
        *[f"| {k} | {c[k]} |" for k in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size", "bias", "dropout")],
        *([f"| pos_dim | {c['pos_dim']} |"] if info["kronecker"] else []),
        f"| tokenizer | `{info['tokenizer']}` ({info['tokenizer_ids']:,} ids) |",
        f"| output head | {'tied to the input table' if info['tied_head'] else 'untied'} |",
        "",
        "## How it was exported",
        "",
        f"`{info['command']}` (kronecker-nanogpt, torch {info['versions']['torch']}, "
        f"transformers {info['versions']['transformers']}). Loaded back, its float32 logits on a probe text of "
        f"{info['check']['probe_tokens']} tokens equal the checkpoint's within {info['check']['max_abs_logit_diff']:.1e} "
        f"(the bound is {info['check']['tolerance']:.0e}).",
        "",
        f"- Vocabulary: {c['vocab_size']:,} rows, the tokenizer's {info['tokenizer_ids']:,} ids"
        + (f" plus {info['padding_ids']} padding rows (the training vocabulary's rows no token uses). They "
           "are kept, so log-probabilities are the checkpoint's; generation_config.json suppresses them."
           if info["padding_ids"] else "."),
        "- Weights: GPT-2's Conv1D layout (the blocks' Linear weights transposed)"
        + ("." if info["bias"] else "; the model has no biases, so GPT-2's biases are zero (the same function)."),
        "- Special-token text: this tokenizer turns a literal `<|endoftext|>` in text into the end-of-text id, "
        "as the hub's gpt2 does; training read documents as plain text with that id between them "
        "(`split_special_tokens=True` encodes the literal as text).",
    ]
    if info["kronecker"] and not info["kronecker_native"]:
        lines.append("- Kronecker input: `transformer.wte` is the exact (V, d) table the byte codec and the trained "
                     "projection give every id, so every token sequence gets the checkpoint's logits. Lost: the codec "
                     "itself, so a byte string that is not a token (which the original model can embed as one "
                     "position) is not expressible here; `--kronecker-native` keeps it.")
    if info["kronecker_native"]:
        lines.append("- Kronecker input, native: the byte table, per-length coefficients and projection are kept "
                     "(hf_kronecker_gpt2.py, loaded with trust_remote_code=True); "
                     "`model.transformer.wte.embed_byte_rows(rows, lengths)` embeds any byte string.")
    lines += [
        "", "## Use", "", "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        f"model = AutoModelForCausalLM.from_pretrained(folder{remote})",
        "tokenizer = AutoTokenizer.from_pretrained(folder)",
        "```", "",
        f"Benchmarks: `lm_eval --model hf --model_args pretrained=folder{',trust_remote_code=True' if remote else ''}` "
        "(kronecker-nanogpt's scripts/lm_eval.sh).",
    ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- the export

def export(ckpt, out, force=False, native=False):
    """Write the export folder `out` from checkpoint `ckpt` (module docstring); returns its
    export_hf.json facts. Raises UserError (one line) for a missing optional package, a
    checkpoint this repo cannot build, an existing or unwritable `out`, a tokenizer that cannot
    be exported, and an export whose logits differ from the checkpoint's by more than TOLERANCE.
    """
    transformers = require("transformers", REQUIREMENTS, "export_hf.py")
    transformers.utils.logging.disable_progress_bar()  # seconds of saving and loading; the export prints one line
    ckpt, out = Path(ckpt), Path(out)
    model, checkpoint, train_config = load_model(ckpt, "cpu", f"checkpoint {ckpt}")
    tok = get_tokenizer(train_config.get("tokenizer", DEFAULT_TOKENIZER))
    if tok.n_vocab > model.config.vocab_size:
        raise UserError(f"checkpoint {ckpt} has {model.config.vocab_size} vocabulary rows but its tokenizer "
                        f"{tok.name} has {tok.n_vocab} ids; is TIKTOKEN_CACHE_DIR / the tokenizer file the one it was trained with?")
    tmp = staging_folder(out, force)
    try:
        hf_model = to_native(model, tok) if native else to_gpt2(model, tok, transformers)
        tied = hf_model.config.tie_word_embeddings
        hf_model.generation_config = transformers.GenerationConfig(
            bos_token_id=tok.eot_id, eos_token_id=tok.eot_id, pad_token_id=tok.eot_id,
            suppress_tokens=list(range(tok.n_vocab, model.config.vocab_size)) or None)
        hf_model.save_pretrained(tmp)
        if native:
            shutil.copy(NATIVE_CODE, tmp / NATIVE_CODE.name)
        save_tokenizer(tok, tmp, model.config.block_size, transformers)
        ids = probe_ids(tok, model.config.block_size)
        diff = max_logit_difference(tmp, model, ids, native, transformers)
        if not diff <= TOLERANCE:
            raise UserError(f"the export does not reproduce checkpoint {ckpt}: its logits differ by {diff:.2e} "
                            f"(> {TOLERANCE:.0e}); this arm's input is not GPT.input_table() or its head not "
                            f"lm_head, so it needs its own export (docs/export.md)")
        command = shlex.join(["python", "export_hf.py", "--ckpt", str(ckpt), "--out", str(out)]
                             + ["--force"] * force + ["--kronecker-native"] * native)
        info = export_info(ckpt, checkpoint, train_config, model, tok, tied, native, diff, len(ids), command,
                           transformers)
        atomic_write_text(tmp / "README.md", model_card(info))
        atomic_write_json(tmp / MARKER, info)
        move_into_place(tmp, out)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if err.errno in DISK_FULL_ERRNOS:
            raise disk_full_error(out) from None
        raise UserError(f"cannot write the export folder {out} ({one_line(err)}); choose a writable --out") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, help="a ckpt_*.pt written by train.py")
    p.add_argument("--out", required=True, help="the export folder to write (e.g. out/hf/<run_name>)")
    p.add_argument("--force", action="store_true", help="replace an earlier export at --out")
    p.add_argument("--kronecker-native", action="store_true",
                   help="Kronecker arms: keep the byte codec and projection (a trust_remote_code class) "
                        "instead of the (V, d) table")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    info = export(args.ckpt, args.out, args.force, args.kronecker_native)
    print(f"exported {args.ckpt} ({info['embedding']}, step {info['step']}) to {args.out}: "
          f"{'tied' if info['tied_head'] else 'untied'} head, {info['vocab_size']:,} vocabulary rows "
          f"({info['padding_ids']} padding), max |logit difference| {info['check']['max_abs_logit_diff']:.1e}")


if __name__ == "__main__":
    run_main(main)
