"""torch.compile sees every arm (trigram_hash too) and every Kronecker mode as one graph, compiles
it once per grad mode (train -> eval under no_grad -> train adds exactly one graph), and gives
eager's losses and gradients; the inductor backend (the real path on GPUs) does too."""
import pytest
import torch
import torch._dynamo
from torch._dynamo.testing import CompileCounterWithBackend

from embeddings import KRONECKER_MODES
from model import GPT, GPTConfig
from tokenizer import gpt2_token_bytes

TINY = dict(block_size=16, vocab_size=512, n_layer=1, n_head=2, n_embd=32, pos_dim=4)
ARMS_AND_MODES = [("bpe", "auto", {}), ("bpe_untied", "auto", {}), ("bpe_factorized", "auto", {}),
                  ("kronecker_tied", "auto", {}), ("kronecker", "auto", dict(projection="mlp")),
                  ("trigram_hash", "auto", {})] + [("kronecker", m, {}) for m in KRONECKER_MODES]


def tiny_model(embedding, mode="auto", **knobs):
    torch.manual_seed(0)
    config = GPTConfig(**TINY, embedding=embedding, kronecker_mode=mode, **knobs)
    return GPT(config, token_bytes=gpt2_token_bytes(512))


def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 512, (2, 16), generator=g), torch.randint(0, 512, (2, 16), generator=g)


def loss_and_grads(model, forward, x, y):
    model.zero_grad(set_to_none=True)
    _, loss = forward(x, y)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.slow
@pytest.mark.parametrize("embedding, mode, knobs", ARMS_AND_MODES)
def test_one_graph_and_one_recompile_for_eval_across_train_eval_train(embedding, mode, knobs):
    torch._dynamo.reset()
    model = tiny_model(embedding, mode, **knobs)
    x, y = batch()
    eager_loss, eager_grads = loss_and_grads(model, model, x, y)
    counter = CompileCounterWithBackend("aot_eager")  # traces forward and backward, no codegen
    compiled = torch.compile(model, backend=counter, fullgraph=True)  # a graph break would raise
    graphs = []
    for phase in ("train", "train", "eval", "eval", "train"):
        model.train(phase == "train")
        if phase == "train":
            loss, grads = loss_and_grads(model, compiled, x, y)
        else:
            with torch.no_grad():
                compiled(x, y)
        graphs.append(counter.frame_count)
    assert graphs == [1, 1, 2, 2, 2], "eval under no_grad is the one recompile; nothing else recompiles"
    torch.testing.assert_close(loss, eager_loss, rtol=1e-5, atol=0)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, eager_grads[name], rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("embedding, mode, input_weight", [
    ("kronecker", "sparse", "projection.weight"), ("kronecker", "vocab", "projection.weight"),  # auto: CPU, CUDA
    ("trigram_hash", "auto", "weight"),  # the bucket table through the two fixed sparse products
])
def test_inductor_compiles_the_byte_arms_to_eager_loss_and_gradients(embedding, mode, input_weight):
    torch._dynamo.reset()
    model = tiny_model(embedding, mode)
    x, y = batch()
    eager_loss, eager_grads = loss_and_grads(model, model, x, y)
    loss, grads = loss_and_grads(model, torch.compile(model, fullgraph=True), x, y)
    torch.testing.assert_close(loss, eager_loss, rtol=1e-5, atol=0)
    name = f"transformer.wte.{input_weight}"
    torch.testing.assert_close(grads[name], eager_grads[name], rtol=1e-4, atol=1e-6)
