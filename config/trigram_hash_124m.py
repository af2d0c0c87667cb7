"""GPT-2 124M, the arm trigram_hash: T-FREE's hashed character trigrams (Deiseroth et al. 2024,
arXiv 2406.19223) as the input layer of BPE tokens, at the Kronecker projection's parameters.
Each id's exact bytes between a start and an end marker give its set of byte trigrams; each
trigram activates 10 of 4,096 buckets (2 of them hashed from the lowercased trigram, seed 0);
the token's input is the sum of those bucket rows of a learned (4096, 768) table, 3,145,728
parameters as Kronecker's Linear(4096, 768); untied output head. Against kronecker it isolates a
fixed byte x position code against learned, position-free hashed n-grams (docs/embedding.md).

Every other setting is TrainConfig's default in train_config.py: the paper's model and token
budget (2.5B FineWeb-Edu tokens = 4,768 steps x 524,288 tokens) with build-nanogpt's optimiser
recipe, which the paper does not state (AdamW (0.9, 0.95), weight decay 0.1, grad clip 1.0, lr
6e-4 with 715 warmup steps and cosine decay to 6e-5, bf16 autocast and torch.compile on CUDA).
The *_124m.py configs differ only in their arm (train_config.ARMS).

    torchrun --standalone --nproc_per_node=8 train.py config/trigram_hash_124m.py
"""
embedding = "trigram_hash"
