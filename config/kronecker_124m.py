"""GPT-2 124M, Kronecker input embedding (pos_dim 16) with an untied output head.

Every other setting is TrainConfig's default in train_config.py: the paper's model and token
budget (2.5B FineWeb-Edu tokens = 4,768 steps x 524,288 tokens) with build-nanogpt's optimiser
recipe, which the paper does not state (AdamW (0.9, 0.95), weight decay 0.1, grad clip 1.0, lr
6e-4 with 715 warmup steps and cosine decay to 6e-5, bf16 autocast and torch.compile on CUDA).
The *_124m.py configs differ only in their arm (train_config.ARMS).

    torchrun --standalone --nproc_per_node=8 train.py config/kronecker_124m.py
"""
embedding = "kronecker"
