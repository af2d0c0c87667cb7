"""GPT-2 124M, the control arm bpe_untied_scaled: bpe_untied whose N(0, 0.02^2) token table
enters the network times wte_scale 50 = 1/0.02 (train_config.ARMS), so its input starts at the
Kronecker arm's scale (token norm ~sqrt(768) = 27.7, not 0.55) while Adam moves the table at the
usual relative rate. Against bpe_untied it isolates the input scale; against kronecker, byte
structure at matched scale and head.

Every other setting is TrainConfig's default in train_config.py: the paper's model and token
budget (2.5B FineWeb-Edu tokens = 4,768 steps x 524,288 tokens) with build-nanogpt's optimiser
recipe, which the paper does not state (AdamW (0.9, 0.95), weight decay 0.1, grad clip 1.0, lr
6e-4 with 715 warmup steps and cosine decay to 6e-5, bf16 autocast and torch.compile on CUDA).
The *_124m.py configs differ only in their arm (train_config.ARMS).

    torchrun --standalone --nproc_per_node=8 train.py config/bpe_untied_scaled_124m.py
"""
arm = "bpe_untied_scaled"
