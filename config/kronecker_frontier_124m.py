"""The paper's frontier setting: a vocabulary of V = 131,072 and a Kronecker embedding at pos_dim 32,
where the byte buffer is the paper's 4.5 MB (V x (32 + 2) bytes, against a 2.15 GB fp32 table
at d = 4,096; results/param_accounting.md). GPT-2 124M body and the 124M recipe (train_config.py
defaults) but micro_batch_size 16: the logits of 131,072 ids need 2.6x the head memory of GPT-2's
(scripts/estimate_memory.py).

Tokenizer: cl100k_base (100,277 ids; tiktoken downloads it once, or set TIKTOKEN_CACHE_DIR to a
copy) padded to 131,072 = 2**17 rows; any tokenizer of at most 131,072 ids works, e.g. Llama 3's
tokenizer.json (128,256 ids). Prepare the data with the same tokenizer first:
    python data/fineweb_edu.py --tokenizer cl100k_base --out data/fineweb_edu_cl100k
The BPE arms of the same setting are --embedding=bpe / bpe_untied (pos_dim is then unused):
    torchrun --standalone --nproc_per_node=8 train.py config/kronecker_frontier_124m.py
    CONFIG=config/kronecker_frontier_124m.py ARMS="bpe kronecker bpe_untied" NGPU=8 bash scripts/sweep.sh
Other sizes: add the size's model and recipe keys, e.g. --n_layer=24 --n_head=16 --n_embd=1024.
"""
embedding = "kronecker"
pos_dim = 32
tokenizer = "cl100k_base"
vocab_size = 2**17
data_dir = "data/fineweb_edu_cl100k"
micro_batch_size = 16
