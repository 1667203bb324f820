#!/usr/bin/env python3
"""Records dequantized rows of the model's tensors with the gguf Python package (an
implementation independent of runner/quant.c) into tests/data/gguf_ref.txt.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install gguf numpy
    /tmp/venv/bin/python tools/ref/record_tensors.py models/SmolLM2-135M-Instruct.Q4_1.gguf

Line format: name row n v[0] .. v[n-1] sum, where sum adds the whole row in float64.
"""
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

ROWS = [
    ("token_embd.weight", [0, 1, 2, 12345, 49151]),
    ("blk.0.attn_norm.weight", [0]),
    ("blk.0.attn_q.weight", [0, 575]),
    ("blk.0.attn_k.weight", [0, 191]),
    ("blk.5.attn_v.weight", [100]),
    ("blk.17.attn_output.weight", [3]),
    ("blk.29.ffn_gate.weight", [1535]),
    ("blk.29.ffn_down.weight", [575]),
    ("output_norm.weight", [0]),
]
N = 16


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    out = sys.argv[2] if len(sys.argv) > 2 else "tests/data/gguf_ref.txt"
    r = GGUFReader(path)
    tensors = {t.name: t for t in r.tensors}
    lines = ["# dequantized rows from gguf-py (tools/ref/record_tensors.py): name row n v0..v(n-1) sum"]
    for name, rows in ROWS:
        t = tensors[name]
        full = dequantize(t.data, t.tensor_type).astype(np.float32)
        full = full.reshape(-1, int(t.shape[0]))  # gguf shape[0] is the row length (ne[0])
        for row in rows:
            v = full[row]
            vals = " ".join("%.9g" % x for x in v[:N])
            lines.append("%s %d %d %s %.12g" % (name, row, N, vals, float(np.sum(v.astype(np.float64)))))
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %d rows to %s" % (len(lines) - 1, out))


if __name__ == "__main__":
    main()
