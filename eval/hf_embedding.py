"""The input-embedding table of a Hugging Face model, read alone: one tensor from one shard.

A model is a hub id (`owner/name`, optionally `owner/name@revision`) or a local folder in the
Hugging Face layout (config.json, tokenizer.json, model.safetensors or
model.safetensors.index.json + shards). `locate` finds the tensor:
- by its usual names (EMBEDDING_NAMES, then a unique name ending in one of EMBEDDING_SUFFIXES),
  through the index's weight_map or the single file's header;
- failing those, the one tensor of shape (vocab_size, hidden_size) that config.json gives
  (text_config too, for multimodal models), output heads (HEAD_SUFFIXES) aside;
- or the name given (`tensor=`, the `--tensor` flag).
From the hub it downloads config.json, tokenizer.json, the index and only the shard that holds the
tensor (huggingface_hub, into the hub cache). One request with a HUB_TIMEOUT_S timeout asks the hub
first; without an answer (no network, HF_HUB_OFFLINE=1) the hub cache is used, and a file it lacks
is one UserError line naming the files to pre-seed. `read_table` opens the shard lazily with
safetensors and reads that one tensor: memory stays near its size (V x hidden x 2 bytes in bf16);
the other tensors of the shard are never read. bf16, fp16 and fp32 tables are read as stored.
Not a script; eval/cross_model.py uses it. Needs requirements-eval.txt (safetensors,
huggingface_hub).
"""
import json
from dataclasses import dataclass, field
from pathlib import Path

from errors import UserError, one_line

INDEX_FILE, SINGLE_FILE, CONFIG_FILE, TOKENIZER_FILE = (
    "model.safetensors.index.json", "model.safetensors", "config.json", "tokenizer.json")
EMBEDDING_NAMES = ("model.embed_tokens.weight", "transformer.wte.weight", "wte.weight", "tok_embeddings.weight",
                   "word_embeddings.weight", "transformer.word_embeddings.weight", "gpt_neox.embed_in.weight",
                   "model.decoder.embed_tokens.weight", "model.language_model.embed_tokens.weight",
                   "language_model.model.embed_tokens.weight", "transformer.embedding.word_embeddings.weight")
EMBEDDING_SUFFIXES = ("embed_tokens.weight", "wte.weight", "tok_embeddings.weight", "word_embeddings.weight",
                      "embed_in.weight")
HEAD_SUFFIXES = ("lm_head.weight", "output.weight", "embed_out.weight", "unembedding.weight")
VOCAB_KEYS, HIDDEN_KEYS = ("vocab_size", "n_vocab", "padded_vocab_size"), ("hidden_size", "n_embd", "d_model", "dim")
DTYPES = {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}
HUB_TIMEOUT_S = 10  # one request; huggingface_hub's own retries take ~25 s when the network is gone
REQUIREMENTS = "pip install -r requirements-eval.txt"


@dataclass
class Located:
    """Where a model's input-embedding tensor is, and what is known about the model.

    spec: what the user gave; source: "hub" or "folder"; repo/revision: the hub id and commit
    (None for a folder); tensor: its name; shard: the file holding it (a path once fetched);
    shape (V, hidden), dtype (safetensors name: BF16, F16, F32); tied: True when the model has no
    separate output-head tensor (or config.json's tie_word_embeddings says so); tokenizer: path of
    tokenizer.json; downloads: [(file name, bytes or None)] the hub files this model needs.
    """
    spec: str
    source: str
    repo: object
    revision: object
    tensor: str
    shard: object
    shape: tuple
    dtype: str
    tied: bool
    tokenizer: Path
    config: dict = field(default_factory=dict)
    downloads: list = field(default_factory=list)

    def describe(self):
        """The JSON-ready facts a report records."""
        return dict(spec=self.spec, source=self.source, repo=self.repo, revision=self.revision, tensor=self.tensor,
                    shard=Path(self.shard).name, vocab=self.shape[0], hidden=self.shape[1], dtype=self.dtype,
                    tied=self.tied, table_bytes=self.table_bytes())

    def table_bytes(self):
        return self.shape[0] * self.shape[1] * {"BF16": 2, "F16": 2, "F32": 4}[self.dtype]


def require(module):
    try:
        return __import__(module)
    except ImportError:
        raise UserError(f"eval/cross_model.py needs the {module} package, which is not installed; "
                        f"{REQUIREMENTS}") from None


# ----------------------------------------------------------------------------- files: folder or hub

class FolderFiles:
    """The files of a local model folder."""

    def __init__(self, folder):
        self.folder, self.where = Path(folder), str(folder)

    def has(self, name):
        return (self.folder / name).is_file()

    def get(self, name):
        return self.folder / name

    def size(self, name):
        return (self.folder / name).stat().st_size

    def header(self, shard):
        """{tensor name: (shape, dtype)} of one shard, from its header alone."""
        return read_header(self.folder / shard)


class HubFiles:
    """The files of a hub model: downloaded (online) or from the hub cache (offline), one commit."""

    def __init__(self, spec):
        require("huggingface_hub")
        from huggingface_hub import HfApi, constants
        self.repo, _, revision = spec.partition("@")
        self.spec, self.where = spec, f"hub model {self.repo}"
        self.revision, self.online, self.files = revision or None, False, None
        self.needed = [CONFIG_FILE, TOKENIZER_FILE]  # what the pre-seed line names, in the order asked for
        if constants.HF_HUB_OFFLINE:
            self.reason = "offline mode is on: HF_HUB_OFFLINE is set"
            return
        try:
            info = HfApi().model_info(self.repo, revision=self.revision, timeout=HUB_TIMEOUT_S, files_metadata=True)
        except Exception as err:  # offline, unknown repo, gated without a token: the cache may still serve
            self.reason = f"the Hugging Face hub did not answer ({one_line(err)})"
            return
        self.online, self.revision = True, info.sha
        self.files = {s.rfilename: s.size for s in info.siblings or []}

    def has(self, name):
        if self.online:
            return name in self.files
        from huggingface_hub import try_to_load_from_cache
        return isinstance(try_to_load_from_cache(self.repo, name, revision=self.revision), str)

    def size(self, name):
        if self.online:
            return self.files.get(name)
        return Path(self.get(name)).stat().st_size

    def get(self, name):
        """Local path of one file: downloaded now, or from the cache offline (UserError naming
        what to pre-seed when it is not there)."""
        from huggingface_hub import hf_hub_download
        self.needed = list(dict.fromkeys(self.needed + [name]))
        try:
            return Path(hf_hub_download(self.repo, name, revision=self.revision, local_files_only=not self.online))
        except Exception as err:
            if self.online:
                raise UserError(f"cannot download {name} of {self.repo} ({one_line(err)}); check the name, your "
                                "access (gated models: accept the licence on the hub page, then `hf auth login`) "
                                "and the disk space") from None
            files = " ".join(self.needed)
            raise UserError(f"cannot read {self.repo}: {self.reason} and the hub cache has no {name} (nor is "
                            f"there a folder {self.repo} here); pre-seed the cache on a machine online with "
                            f"`hf download {self.repo} {files}` (then copy the hub cache here) or pass a local "
                            "folder holding those files") from None

    def header(self, shard):
        """{tensor name: (shape, dtype)} of one shard: its header alone online (a range request, no
        download), else the cached file's."""
        if not self.online:
            return read_header(self.get(shard))
        from huggingface_hub import HfApi
        try:
            meta = HfApi().parse_safetensors_file_metadata(self.repo, shard, revision=self.revision,
                                                           timeout=HUB_TIMEOUT_S)
        except Exception as err:
            raise UserError(f"cannot read the tensor shapes in {shard} of {self.repo} ({one_line(err)}); "
                            "check the network, or name the input-embedding tensor with --tensor") from None
        return {name: (tuple(t.shape), t.dtype) for name, t in meta.tensors.items()}


def read_header(path):
    """{tensor name: (shape, dtype)} from a safetensors file's JSON header (no tensor is read)."""
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size))
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise UserError(f"{path} is not a readable safetensors file ({one_line(err)})") from None
    return {name: (tuple(t["shape"]), t["dtype"]) for name, t in header.items() if name != "__metadata__"}


def model_files(spec):
    """FolderFiles for a folder that exists, HubFiles for an owner/name id; UserError otherwise."""
    path = Path(spec)
    if path.is_dir():
        return FolderFiles(path)
    if path.exists() or spec.count("/") != 1 or spec.startswith((".", "/")):
        raise UserError(f"--models {spec}: not a model folder, a train.py checkpoint (*.pt) or a Hugging Face "
                        "hub id (owner/name)")
    return HubFiles(spec)


# ----------------------------------------------------------------------------- finding the tensor

def read_json(files, name, what):
    path = files.get(name)
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"{files.where}: {name} is not readable JSON ({one_line(err)}); {what}") from None


def config_shape(config):
    """(vocab_size, hidden_size) from config.json (or its text_config), None where absent."""
    for node in (config, config.get("text_config") or {}):
        vocab = next((node[k] for k in VOCAB_KEYS if isinstance(node.get(k), int)), None)
        hidden = next((node[k] for k in HIDDEN_KEYS if isinstance(node.get(k), int)), None)
        if vocab and hidden:
            return vocab, hidden
    return None


def by_name(names):
    """The input-embedding tensor among `names` by its usual name, else None."""
    for name in EMBEDDING_NAMES:
        if name in names:
            return name
    found = [n for n in names if n.endswith(EMBEDDING_SUFFIXES) and "vision" not in n and "audio" not in n]
    return found[0] if len(found) == 1 else None


def by_shape(files, weight_map, config):
    """The one tensor of shape (vocab_size, hidden_size) that is not an output head, else UserError."""
    shape = config_shape(config)
    if shape is None:
        return None
    matches = []
    for shard in dict.fromkeys(weight_map.values()):
        matches += [name for name, (s, _) in files.header(shard).items()
                    if s == shape and not name.endswith(HEAD_SUFFIXES)]
    if len(matches) > 1:
        raise UserError(f"{files.where}: unknown tensor layout: {len(matches)} tensors have config.json's shape "
                        f"{shape} ({', '.join(matches[:4])}); name the input embedding with --tensor")
    return matches[0] if matches else None


def tied_heads(names, config):
    """True when the output head is the input table: config.json says so, else no head tensor."""
    for node in (config, config.get("text_config") or {}):
        if isinstance(node.get("tie_word_embeddings"), bool):
            return node["tie_word_embeddings"]
    return not any(n.endswith(HEAD_SUFFIXES) for n in names)


def locate(spec, tensor=None, fetch=True):
    """Located for a hub id or folder (module docstring). fetch=False names the shard and its
    size without downloading it (the --plan flag). Raises UserError for a model without
    safetensors weights, config.json or tokenizer.json, without an input-embedding tensor, with
    an unknown tensor layout or an unsupported dtype."""
    files = model_files(spec)
    if not files.has(CONFIG_FILE):
        raise UserError(f"{files.where} has no {CONFIG_FILE}; give a Hugging Face model folder or id")
    config = read_json(files, CONFIG_FILE, "it should be the model's configuration")
    sharded = files.has(INDEX_FILE)
    if sharded:
        index = read_json(files, INDEX_FILE, "it should map tensor names to shard files")
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise UserError(f"{files.where}: {INDEX_FILE} has no weight_map; unknown tensor layout")
    elif files.has(SINGLE_FILE):
        weight_map = dict.fromkeys(files.header(SINGLE_FILE), SINGLE_FILE)
    else:
        raise UserError(f"{files.where} has neither {INDEX_FILE} nor {SINGLE_FILE}: no input-embedding tensor to "
                        "read (this probe reads safetensors weights only); give a Hugging Face model folder or id")
    name = tensor or by_name(weight_map) or by_shape(files, weight_map, config)
    if name is None:
        raise UserError(f"{files.where}: no input-embedding tensor: none is named like one ({EMBEDDING_NAMES[0]}, "
                        f"{EMBEDDING_NAMES[1]}, ...) and none has config.json's (vocab_size, hidden_size); "
                        "name it with --tensor")
    if name not in weight_map:
        raise UserError(f"{files.where}: no tensor {name!r} (--tensor); it has e.g. {', '.join(list(weight_map)[:4])}")
    shard = weight_map[name]
    shape, dtype = files.header(shard)[name]
    hidden = (config_shape(config) or (None, None))[1]
    if len(shape) != 2 or hidden not in (None, shape[1]):
        raise UserError(f"{files.where}: unknown tensor layout: {name} has shape {tuple(shape)}, not (vocab, hidden"
                        f"{'' if hidden is None else f' = {hidden}'}); name the input embedding with --tensor")
    if dtype not in DTYPES:
        raise UserError(f"{files.where}: {name} is stored as {dtype}; this probe reads {', '.join(DTYPES)} tables")
    if not files.has(TOKENIZER_FILE):
        raise UserError(f"{files.where} has no {TOKENIZER_FILE}; the probe needs the model's own tokenizer.json")
    small = [CONFIG_FILE, TOKENIZER_FILE] + [INDEX_FILE] * sharded
    downloads = [(n, files.size(n)) for n in small + [shard]]
    tokenizer, shard_path = (files.get(TOKENIZER_FILE), files.get(shard)) if fetch else (None, shard)
    return Located(spec, "hub" if isinstance(files, HubFiles) else "folder", getattr(files, "repo", None),
                   getattr(files, "revision", None), name, shard_path, tuple(shape), dtype,
                   tied_heads(weight_map, config), tokenizer, config, downloads)


def read_table(located):
    """The (V, hidden) tensor in its stored dtype (bf16, fp16 or fp32), read lazily: safetensors
    maps the shard and copies only this tensor's bytes."""
    require("safetensors")
    from safetensors import safe_open
    try:
        with safe_open(str(located.shard), framework="pt") as f:
            return f.get_tensor(located.tensor)
    except Exception as err:  # a truncated or damaged shard
        raise UserError(f"cannot read {located.tensor} from {located.shard} ({one_line(err)}); the file is "
                        "damaged or incomplete: download it again") from None
