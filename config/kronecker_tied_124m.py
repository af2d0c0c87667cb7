"""GPT-2 124M, the arm kronecker_tied: the Kronecker input (pos_dim 16) with the output head tied
to it, logits = 0.02 h E^T with E the (V, 768) table the codec and projection give every id
(computed once per forward, no V x d parameter: 3.1M input and output parameters, 89.0M in
all). Against bpe it is the like-for-like comparison the paper does not make (both tied);
against kronecker it isolates tying (docs/embedding.md).

Every other setting is TrainConfig's default in train_config.py: the paper's model and token
budget (2.5B FineWeb-Edu tokens = 4,768 steps x 524,288 tokens) with build-nanogpt's optimiser
recipe, which the paper does not state (AdamW (0.9, 0.95), weight decay 0.1, grad clip 1.0, lr
6e-4 with 715 warmup steps and cosine decay to 6e-5, bf16 autocast and torch.compile on CUDA).
The *_124m.py configs differ only in their arm (train_config.ARMS).

    torchrun --standalone --nproc_per_node=8 train.py config/kronecker_tied_124m.py
"""
embedding = "kronecker_tied"
