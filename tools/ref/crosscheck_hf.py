#!/usr/bin/env python3
"""Cross-checks the recorded llama.cpp tokenizations (tests/data/tokens_ref.txt) with a third
implementation: Hugging Face `tokenizers` (Rust), built from the GGUF's vocabulary and merges
with SmolLM2's pre-tokenizer (Digits(individual_digits) then ByteLevel). Not run by ctest; it
checks the reference itself.

    /tmp/venv/bin/pip install gguf tokenizers
    /tmp/venv/bin/python tools/ref/crosscheck_hf.py models/SmolLM2-135M-Instruct.Q4_1.gguf

`tokenizers` always splits added (special) tokens out of the text, so lines recorded without
special-token parsing are compared only when their text holds no special token.
"""
import sys

from gguf import GGUFReader
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers


def field(r, key):
    return r.fields[key].contents()


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    ref = sys.argv[2] if len(sys.argv) > 2 else "tests/data/tokens_ref.txt"
    r = GGUFReader(path)
    tokens = field(r, "tokenizer.ggml.tokens")
    types = field(r, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in field(r, "tokenizer.ggml.merges")]
    tk = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    specials = [t for t, ty in zip(tokens, types) if ty == 3]
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    agree = total = 0
    for line in open(ref):
        if line.startswith("#") or line.startswith("chat"):
            continue
        parts = line.split()
        special, hx, n = int(parts[0]), parts[1], int(parts[2])
        want = [int(x) for x in parts[3:3 + n]]
        text = bytes.fromhex(hx).decode("utf-8") if hx != "-" else ""
        if not special and any(s in text for s in specials):
            continue
        got = tk.encode(text, add_special_tokens=False).ids
        total += 1
        if got == want:
            agree += 1
        else:
            print("differs: %r\n  llama.cpp %s\n  tokenizers %s" % (text, want, got))
    print("tokenizers agrees with llama.cpp on %d/%d cases" % (agree, total))


if __name__ == "__main__":
    main()
