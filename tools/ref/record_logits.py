#!/usr/bin/env python3
"""Records llama.cpp's logits for a few short prompts into tests/data/logits_ref.txt, which
test_model_ref compares runner/model_ref.c with.

    /tmp/venv/bin/python tools/ref/record_logits.py models/SmolLM2-135M-Instruct.Q4_1.gguf

Per prompt: its tokens (special tokens parsed, no BOS: the model's add_bos_token is false); the
top-20 logits at each of the last 4 prompt positions; the greedy continuation of 32 tokens; and
for each continuation step the top-5 logits of the distribution that chose it.

    prompt n ids...
    top pos k id:logit ...        (pos = index of the token whose next-token logits these are)
    greedy n ids...
    step i k id:logit ...         (step i: logits after prompt + greedy[0..i), argmax = greedy[i])
    end
"""
import sys

import numpy as np
from llama_cpp import Llama, __version__

PROMPTS = [
    "The capital of France is",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is the tallest mountain on Earth?<|im_end|>\n<|im_start|>assistant\n",
    "def fibonacci(n):\n    ",
    "1, 2, 3, 4, 5,",
]
N_GREEDY = 32


def top(row, k):
    ids = np.argsort(-row, kind="stable")[:k]
    return " ".join("%d:%.6f" % (i, row[i]) for i in ids)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    out = sys.argv[2] if len(sys.argv) > 2 else "tests/data/logits_ref.txt"
    llm = Llama(model_path=path, n_ctx=256, n_batch=256, n_threads=2, logits_all=True, verbose=False)
    lines = ["# llama.cpp logits (llama-cpp-python %s, CPU, f16 KV cache, no flash attention; "
             "tools/ref/record_logits.py)" % __version__]
    for text in PROMPTS:
        llm.reset()
        toks = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        llm.eval(toks)
        lines.append("prompt %d %s" % (len(toks), " ".join(map(str, toks))))
        for pos in range(max(0, len(toks) - 4), len(toks)):
            lines.append("top %d 20 %s" % (pos, top(np.array(llm.scores[pos]), 20)))
        greedy, steps = [], []
        for i in range(N_GREEDY):
            row = np.array(llm.scores[llm.n_tokens - 1])
            nxt = int(np.argmax(row))
            steps.append("step %d 5 %s" % (i, top(row, 5)))
            greedy.append(nxt)
            llm.eval([nxt])
        lines.append("greedy %d %s" % (len(greedy), " ".join(map(str, greedy))))
        lines.extend(steps)
        lines.append("end")
        print(repr(text[:40]), "->", repr(llm.detokenize(greedy).decode("utf-8", "replace")))
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %d prompts to %s" % (len(PROMPTS), out))


if __name__ == "__main__":
    main()
