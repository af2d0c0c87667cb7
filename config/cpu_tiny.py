"""A tiny GPT for CPU smoke runs, the sweep tests and the SLURM drill: 2 layers, 2 heads, width 64,
64-token context. (The quickstart's model is config/quickstart.py.)

Prepare a small shard folder first, e.g. from the shared FineWeb-Edu sample (offline, GPT-2's
tokenizer files come from ../shared/tiktoken_cache: tokenizer.py looks there):
    python data/fineweb_edu.py \
        --data-files ../shared/data/fineweb_edu_sample/sample.jsonl \
        --out data/fineweb_edu_sample --val-tokens 20000
    python train.py config/cpu_tiny.py --embedding=kronecker      # -> out/toy/runs, out/toy/ckpt
With GPT-2's 50k vocabulary the output head dominates the cost of a model this small.
"""
data_dir = "data/fineweb_edu_sample"
log_dir = "out/toy/runs"             # a toy run: under out/ (git ignores it), never results/runs
out_dir = "out/toy/ckpt"
n_layer = 2
n_head = 2
n_embd = 64
block_size = 64
micro_batch_size = 8
total_batch_tokens = 1024        # 16 sequences per step: 2 micro-steps on one process
max_steps = 100
warmup_steps = 10
max_lr = 3e-3
min_lr = 3e-4
eval_interval = 25
val_tokens = 16384
log_interval = 10
device = "cpu"
