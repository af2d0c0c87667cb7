"""eval/hellaswag.py: build-nanogpt's scoring on a small fixture written here (no network)."""
import dataclasses
import json

import pytest
import torch

from checkpoint import save_checkpoint
from errors import UserError, run_main
from eval import hellaswag
from model import GPT, GPTConfig
from tokenizer import get_encoding

EXAMPLES = [
    dict(ctx="The cat sat on the", label=0, endings=["mat.", "moon of a distant planet.", "idea", "purple running"]),
    dict(ctx="She opened the door and", label=2, endings=["x", "the the the", "walked in.", "seven"]),
    dict(ctx="He poured the water into", label=1, endings=["a", "the glass.", "sky blue", "quickly ran"]),
]


def write_fixture(folder, examples=EXAMPLES):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / hellaswag.FILE_NAME
    path.write_text("".join(json.dumps(e) + "\n" for e in examples))
    return path


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(GPTConfig(block_size=32, n_layer=1, n_head=2, n_embd=32)).eval()


def brute_force(model, example):
    """Per ending: summed and mean loss of the ending tokens, one ending at a time, no padding."""
    enc = get_encoding()
    ctx = enc.encode_ordinary(example["ctx"])
    sums, means = [], []
    for ending in example["endings"]:
        end = enc.encode_ordinary(" " + ending)
        row = torch.tensor([ctx + end])
        with torch.no_grad():
            logits = model.lm_head(model.hidden_states(row)[-1])[0]
        logp = torch.log_softmax(logits.double(), dim=-1)
        losses = [-float(logp[len(ctx) + i - 1, t]) for i, t in enumerate(end)]
        sums.append(sum(losses))
        means.append(sum(losses) / len(losses))
    return sums, means


def test_scores_match_a_one_ending_at_a_time_computation(model):
    result = hellaswag.hellaswag_accuracy(model, EXAMPLES, "cpu")
    acc = acc_norm = loss = 0
    for example in EXAMPLES:
        sums, means = brute_force(model, example)
        acc += min(range(4), key=sums.__getitem__) == example["label"]
        acc_norm += min(range(4), key=means.__getitem__) == example["label"]
        loss += means[example["label"]]
    assert result["n"] == 3 and result["n_cut"] == 0
    assert result["acc"] == acc / 3 and result["acc_norm"] == acc_norm / 3
    assert result["completion_loss"] == pytest.approx(loss / 3, rel=1e-5)


def test_render_pads_rows_and_masks_only_the_ending():
    tokens, mask, cut = hellaswag.render_example(EXAMPLES[0], get_encoding(), block_size=64)
    enc = get_encoding()
    ctx, end = enc.encode_ordinary("The cat sat on the"), enc.encode_ordinary(" mat.")
    assert tokens.shape[0] == 4 and not cut
    assert tokens[0, :len(ctx) + len(end)].tolist() == ctx + end
    assert mask[0].tolist()[:len(ctx) + len(end) + 1] == [0] * len(ctx) + [1] * len(end) + [0]


def test_rows_longer_than_the_context_keep_their_end(model):
    long = dict(EXAMPLES[0], ctx=" ".join(["word"] * 40))
    tokens, mask, cut = hellaswag.render_example(long, get_encoding(), block_size=32)
    n_end = len(get_encoding().encode_ordinary(" mat."))
    assert cut and tokens.shape[1] == 32 and int(mask[0].sum()) == n_end  # the context lost its start, not the ending
    assert hellaswag.hellaswag_accuracy(model, [long], "cpu")["n_cut"] == 1


def test_cli_scores_a_checkpoint_from_the_cached_file(model, tmp_path, capsys):
    write_fixture(tmp_path / "cache")
    state = dict(model=model.state_dict(), model_config=dataclasses.asdict(model.config),
                 train_config=dict(seed=7), step=5)
    ckpt = save_checkpoint(state, tmp_path / "ckpt")
    out = tmp_path / "hs.json"
    hellaswag.main([str(ckpt), "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "--out", str(out)])
    (result,) = json.loads(out.read_text())
    assert (result["n"], result["seed"], result["step"], result["embedding"]) == (3, 7, 5, "bpe")
    assert result == dict(result, **{k: v for k, v in hellaswag.hellaswag_accuracy(model, EXAMPLES, "cpu").items()})
    assert "the standard validation split has 10,042" in capsys.readouterr().out


def test_offline_without_the_file_is_one_line_naming_where_to_put_it(tmp_path):
    with pytest.raises(UserError) as err:
        hellaswag.ensure_data(tmp_path / "cache", url="http://127.0.0.1:9/hellaswag_val.jsonl")
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "cache" / "hellaswag_val.jsonl") in message


def test_a_cached_file_is_used_without_the_network(tmp_path):
    path = write_fixture(tmp_path)
    assert hellaswag.ensure_data(tmp_path, url="http://127.0.0.1:9/never") == path


@pytest.mark.parametrize("line, message", [
    ('{"ctx": "a", "label": 4, "endings": ["a", "b", "c", "d"]}', "not a HellaSwag example"),
    ('{"ctx": "a", "label": 0, "endings": ["a", "b"]}', "not a HellaSwag example"),
    ('{"ctx": "a", "label": 0, "endi', "not valid JSON"),
])
def test_a_damaged_data_file_is_one_line(tmp_path, line, message):
    path = tmp_path / "hs.jsonl"
    path.write_text(json.dumps(EXAMPLES[0]) + "\n" + line + "\n")
    with pytest.raises(UserError, match=f"hs.jsonl:2: {message}"):
        hellaswag.load_examples(path)


def test_limit_and_a_model_without_the_gpt2_vocabulary(tmp_path, capsys):
    assert len(hellaswag.load_examples(write_fixture(tmp_path), limit=2)) == 2
    small = GPT(GPTConfig(block_size=16, n_layer=1, n_head=2, n_embd=16, vocab_size=128))
    with pytest.raises(UserError, match="model has vocab_size 128; pass the model's own tokenizer"):
        hellaswag.hellaswag_accuracy(small, EXAMPLES, "cpu")
    with pytest.raises(SystemExit):
        run_main(lambda: hellaswag.main(["x.pt", "--limit", "0"]))
    assert "--limit must be >= 1" in capsys.readouterr().err


class ByteTokenizer:
    """A stand-in tokenizer (one id per UTF-8 byte) for a model that was not trained on GPT-2 ids."""
    name, n_vocab = "bytes", 256

    @staticmethod
    def encode_ordinary(text):
        return list(text.encode("utf-8"))


def test_examples_are_encoded_with_the_models_own_tokenizer():
    ctx = EXAMPLES[0]["ctx"].encode("utf-8")
    tokens, mask, _ = hellaswag.render_example(EXAMPLES[0], ByteTokenizer(), block_size=512)
    assert tokens[0, :len(ctx)].tolist() == list(ctx) and int(tokens.max()) < 256
    model = GPT(GPTConfig(block_size=512, n_layer=1, n_head=2, n_embd=16, vocab_size=256))
    result = hellaswag.hellaswag_accuracy(model, EXAMPLES, "cpu", tokenizer=ByteTokenizer())
    assert result["n"] == len(EXAMPLES) and 0.0 <= result["acc_norm"] <= 1.0
