"""The CPU mini-study: a small GPT on the 4M-token FineWeb sample, 3 seeds x the arms of
scripts/cpu_mini.sh.

A measurement at toy scale on a 2-core CPU, never a claim about the paper's 124M result. With
GPT-2's 50k vocabulary the output head (50,304 x 64) is most of this model's compute, so the
model is narrow. 60 steps (245,760 tokens): the 8-arm rerun of issues 22 and 24 (24 runs) had to
fit beside other work on a shared 2-core machine, where a step took 3-14 s; the 5-arm study before
it ran 150 steps. More steps (--max_steps) give a longer, costlier study of the same design.
Everything (data, sweep, tables, plots, probes): bash scripts/cpu_mini.sh (docs/results.md).
"""
data_dir = "data/fineweb_sample"
log_dir = "out/cpu_mini/runs"         # scripts/cpu_mini.sh writes the committed runs to results/cpu_mini/runs
out_dir = "out/cpu_mini"
n_layer = 4
n_head = 4
n_embd = 64
block_size = 128
micro_batch_size = 32
total_batch_tokens = 4096        # 32 sequences of 128 tokens per step
max_steps = 60                   # 245,760 training tokens, a fifteenth of the sample
warmup_steps = 10
max_lr = 3e-3
min_lr = 3e-4
eval_interval = 20
val_tokens = 32768               # 256 sequences of the val shard
log_interval = 20
keep_checkpoints = 1
device = "cpu"
