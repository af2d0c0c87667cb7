"""GPT-2 124M, the arm bpe_factorized: ALBERT's factorised input (a learned (V, r) table, then
Linear(r, 768)) with an untied output head. r = factor_rank 0 -> round(4096 * 768 / (50304 + 768))
= 62, so its input side (3,166,464) matches the Kronecker projection's 3,145,728 and the whole
model (127.64M) Kronecker's 127.62M: against kronecker it isolates a fixed byte code from a learned
input of the same size (docs/embedding.md).

Every other setting is TrainConfig's default in train_config.py: the paper's model and token
budget (2.5B FineWeb-Edu tokens = 4,768 steps x 524,288 tokens) with build-nanogpt's optimiser
recipe, which the paper does not state (AdamW (0.9, 0.95), weight decay 0.1, grad clip 1.0, lr
6e-4 with 715 warmup steps and cosine decay to 6e-5, bf16 autocast and torch.compile on CUDA).
The *_124m.py configs differ only in their arm (train_config.ARMS).

    torchrun --standalone --nproc_per_node=8 train.py config/bpe_factorized_124m.py
"""
embedding = "bpe_factorized"
