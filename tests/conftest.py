"""Shared test setup: offline tiktoken files and paths to the shared data samples."""
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"
TIKTOKEN_CACHE = SHARED / "tiktoken_cache"
FINEWEB_EDU_SAMPLE = SHARED / "data" / "fineweb_edu_sample" / "sample.jsonl"
FINEWEB_SAMPLE = SHARED / "data" / "fineweb_sample" / "train.jsonl.gz"

if TIKTOKEN_CACHE.is_dir():
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(TIKTOKEN_CACHE))
