"""GPT-2 tokenizer helpers: tiktoken's encoding and the exact bytes behind every token id.

The Kronecker embedding reads a token's UTF-8 bytes, so this module is the one place that
decides what those bytes are:
- ids < 50256: tiktoken's `decode_single_token_bytes` (partial UTF-8 fragments stay raw bytes,
  never U+FFFD);
- 50256 (`<|endoftext|>`): its literal text;
- padding ids 50257..vocab_size-1 (nanoGPT pads 50257 to 50304): b"".

`python tokenizer.py` prints the share of GPT-2's vocabulary that fits in 16 and 32 bytes.
"""
import tiktoken

EOT_ID = 50256
GPT2_VOCAB = 50257  # ids >= this are padding added for efficient matmuls


def get_encoding():
    return tiktoken.get_encoding("gpt2")


def gpt2_token_bytes(vocab_size=50304):
    """The bytes of every id in [0, vocab_size), padding ids as b""."""
    enc = get_encoding()
    token_bytes = [enc.decode_single_token_bytes(i) for i in range(min(vocab_size, EOT_ID))]
    if vocab_size > EOT_ID:
        token_bytes.append(b"<|endoftext|>")
    token_bytes.extend(b"" for _ in range(len(token_bytes), vocab_size))
    return token_bytes


def truncate_utf8(token, max_bytes):
    """Cut `token` to at most `max_bytes` bytes, never splitting a character of valid UTF-8.

    Bytes that are not valid UTF-8 (GPT-2 has tokens that are fragments of a character) are
    cut at exactly `max_bytes`.
    """
    if len(token) <= max_bytes:
        return token
    try:
        token.decode("utf-8")
    except UnicodeDecodeError:
        return token[:max_bytes]
    end = max_bytes
    while end > 0 and (token[end] & 0xC0) == 0x80:  # token[end] continues the previous char
        end -= 1
    return token[:end]


def print_coverage(pos_dims=(16, 32)):
    lengths = [len(b) for b in gpt2_token_bytes(GPT2_VOCAB)]
    print(f"GPT-2 vocabulary: {len(lengths):,} tokens, longest {max(lengths)} bytes")
    for pos_dim in pos_dims:
        longer = sum(n > pos_dim for n in lengths)
        print(f"pos_dim {pos_dim}: {100 * (1 - longer / len(lengths)):.3f}% fit, {longer} tokens are truncated")


if __name__ == "__main__":
    print_coverage()
