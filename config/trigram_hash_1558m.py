"""GPT-2 XL (1558M: 48 layers, 1600 wide, 25 heads), hashed byte trigrams (trigram_hash, 4,096 buckets) with an untied output head.

The 1558M recipe, the same in every config/<arm>_1558m.py (they differ only in
`embedding`; docs/ladder.md states the rules and the table of sizes):
- max_lr 2.0e-4 and 1M-token batches: GPT-3 XL (1.3B), Table 2.1 of Brown et al. 2020 (the
  nearest GPT-3 size); cosine decay to min_lr = max_lr / 10, as GPT-3 and the 124M recipe;
- warmup: GPT-3's first 375M tokens (Brown et al. 2020, appendix B.1), the rule behind the 124M
  recipe's 715 steps;
- tokens: 20 per parameter (Chinchilla, Hoffmann et al. 2022) of the tied BPE model
  (1,557,686,400 parameters), one budget for every arm; edit the 20 to change the rule;
- micro_batch_size 8: the largest that fits an 80 GB GPU by scripts/estimate_memory.py (bf16;
  activation checkpointing not needed); grad accumulation is derived from it;
- data: 31.2B tokens, more than sample-10BT holds: prepare them with
  `python data/fineweb_edu.py --name sample-100BT --train-tokens 32e9 --out data/fineweb_edu_32b`.

    torchrun --standalone --nproc_per_node=8 train.py config/trigram_hash_1558m.py
"""
embedding = "trigram_hash"
n_layer = 48
n_head = 25
n_embd = 1600
data_dir = "data/fineweb_edu_32b"
total_batch_tokens = 2**20
max_lr = 2.0e-4
min_lr = 2.0e-05  # max_lr / 10
warmup_steps = 375_000_000 // 2**20  # 357 steps
max_steps = 20 * 1_557_686_400 // 2**20  # 29,710 steps, 31.15B tokens
micro_batch_size = 8
