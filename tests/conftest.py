"""Shared test setup: paths to the shared data samples, and Ctrl-C. (The offline tiktoken files
beside the repo, ../shared/tiktoken_cache, are found by tokenizer.py itself.)"""
import signal
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"
FINEWEB_EDU_SAMPLE = SHARED / "data" / "fineweb_edu_sample" / "sample.jsonl"
FINEWEB_SAMPLE = SHARED / "data" / "fineweb_sample" / "train.jsonl.gz"

# A shell starts a background job (`pytest ... &`, nohup, some CI runners) with SIGINT ignored, and
# an ignored signal stays ignored in every child: the Ctrl-C tests would then test nothing. Python's
# own handler here makes SIGINT a KeyboardInterrupt in this process and the default in children.
signal.signal(signal.SIGINT, signal.default_int_handler)
