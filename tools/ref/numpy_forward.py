#!/usr/bin/env python3
"""A second, independent statement of runner/model_ref.c: the same Llama forward pass in numpy
(float64), on weights dequantized by the gguf package. It prints the top logits at the last
positions of a token sequence, to compare by hand with the C reference (test_model_ref prints
its own) when the two disagree with llama.cpp and one needs to know which is right.

    /tmp/venv/bin/python tools/ref/numpy_forward.py models/SmolLM2-135M-Instruct.Q4_1.gguf 504 3575 282 4649 314
"""
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def main():
    path = sys.argv[1]
    toks = [int(t) for t in sys.argv[2:]]
    r = GGUFReader(path)
    f = {k: v.contents() for k, v in r.fields.items() if not k.startswith("tokenizer.")}
    W = {}
    for t in r.tensors:
        a = dequantize(t.data, t.tensor_type).astype(np.float64)
        W[t.name] = a.reshape(-1, int(t.shape[0]))  # rows of ne[0]
    L, E = f["llama.block_count"], f["llama.embedding_length"]
    H, G = f["llama.attention.head_count"], f["llama.attention.head_count_kv"]
    d = E // H
    nrot = f.get("llama.rope.dimension_count", d)
    theta, eps = f["llama.rope.freq_base"], f["llama.attention.layer_norm_rms_epsilon"]
    n = len(toks)

    def rms(x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w.reshape(-1)

    def rope(x):  # x [n][heads][d]; pairs (2i, 2i+1)
        pos = np.arange(n)[:, None]
        i = np.arange(nrot // 2)[None, :]
        ang = pos * theta ** (-2.0 * i / nrot)
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x = x.copy()
        x0, x1 = x[..., 0:nrot:2].copy(), x[..., 1:nrot:2].copy()
        x[..., 0:nrot:2] = x0 * c - x1 * s
        x[..., 1:nrot:2] = x0 * s + x1 * c
        return x

    x = W["token_embd.weight"][toks]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for l in range(L):
        p = "blk.%d." % l
        h = rms(x, W[p + "attn_norm.weight"])
        q = rope((h @ W[p + "attn_q.weight"].T).reshape(n, H, d))
        k = rope((h @ W[p + "attn_k.weight"].T).reshape(n, G, d))
        v = (h @ W[p + "attn_v.weight"].T).reshape(n, G, d)
        out = np.zeros((n, H, d))
        for hh in range(H):
            g = hh // (H // G)
            s = q[:, hh, :] @ k[:, g, :].T / np.sqrt(d) + mask
            s = np.exp(s - s.max(axis=1, keepdims=True))
            out[:, hh, :] = (s / s.sum(axis=1, keepdims=True)) @ v[:, g, :]
        x = x + out.reshape(n, H * d) @ W[p + "attn_output.weight"].T
        h = rms(x, W[p + "ffn_norm.weight"])
        gt = h @ W[p + "ffn_gate.weight"].T
        x = x + (gt / (1 + np.exp(-gt)) * (h @ W[p + "ffn_up.weight"].T)) @ W[p + "ffn_down.weight"].T
    head = W.get("output.weight", W["token_embd.weight"])
    logits = rms(x, W["output_norm.weight"]) @ head.T
    for pos in range(max(0, n - 2), n):
        ids = np.argsort(-logits[pos])[:10]
        print("pos %d: %s" % (pos, " ".join("%d:%.6f" % (i, logits[pos, i]) for i in ids)))


if __name__ == "__main__":
    main()
