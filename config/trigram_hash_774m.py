"""GPT-2 large (774M: 36 layers, 1280 wide, 20 heads), hashed byte trigrams (trigram_hash, 4,096 buckets) with an untied output head.

The 774M recipe, the same in every config/<arm>_774m.py (they differ only in
`embedding`; docs/ladder.md states the rules and the table of sizes):
- max_lr 2.5e-4 and 0.5M-token batches: GPT-3 Large (760M), Table 2.1 of Brown et al. 2020 (the
  nearest GPT-3 size); cosine decay to min_lr = max_lr / 10, as GPT-3 and the 124M recipe;
- warmup: GPT-3's first 375M tokens (Brown et al. 2020, appendix B.1), the rule behind the 124M
  recipe's 715 steps;
- tokens: 20 per parameter (Chinchilla, Hoffmann et al. 2022) of the tied BPE model
  (774,090,240 parameters), one budget for every arm; edit the 20 to change the rule;
- micro_batch_size 16: the largest that fits an 80 GB GPU by scripts/estimate_memory.py (bf16;
  activation checkpointing not needed); grad accumulation is derived from it;
- data: 15.5B tokens, more than sample-10BT holds: prepare them with
  `python data/fineweb_edu.py --name sample-100BT --train-tokens 32e9 --out data/fineweb_edu_32b`.

    torchrun --standalone --nproc_per_node=8 train.py config/trigram_hash_774m.py
"""
embedding = "trigram_hash"
n_layer = 36
n_head = 20
n_embd = 1280
data_dir = "data/fineweb_edu_32b"
total_batch_tokens = 2**19
max_lr = 2.5e-4
min_lr = 2.5e-05  # max_lr / 10
warmup_steps = 375_000_000 // 2**19  # 715 steps
max_steps = 20 * 774_090_240 // 2**19  # 29,529 steps, 15.48B tokens
micro_batch_size = 16
