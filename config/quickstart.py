"""The quickstart's model: a 4-layer, 128-wide GPT trained for a few minutes on CPU (or GPU).

Run through `bash scripts/quickstart.sh`, which prepares the data and trains both arms. At this
size the numbers show that the pipeline works, not which embedding is better.
"""
data_dir = "data/quickstart"
log_dir = "out/quickstart/runs"      # a toy run: under out/ (git ignores it), never results/runs
out_dir = "out/quickstart/ckpt"
n_layer = 4
n_head = 4
n_embd = 128
block_size = 128
micro_batch_size = 16
total_batch_tokens = 2048        # 16 sequences of 128 tokens per step
max_steps = 60                   # 122,880 training tokens: under one pass over the FineWeb-Edu sample
warmup_steps = 6
max_lr = 3e-3
min_lr = 3e-4
eval_interval = 10
val_tokens = 16384
log_interval = 10
keep_checkpoints = 1
