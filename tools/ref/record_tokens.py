#!/usr/bin/env python3
"""Records llama.cpp's tokenization of a varied set of strings into tests/data/tokens_ref.txt,
the reference test_tokenizer compares runner/tokenizer.c with.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install llama-cpp-python
    /tmp/venv/bin/python tools/ref/record_tokens.py models/SmolLM2-135M-Instruct.Q4_1.gguf

Line format: special hex n id... where special is 1 when special tokens are parsed, hex is the
UTF-8 text in hex ("-" for the empty string), n the token count. No BOS is added.
Chat lines: chat add_generation_prompt n_msgs (role_hex content_hex)... prompt_hex n ids...,
the prompt rendered from the file's tokenizer.chat_template by jinja2 as transformers renders it
(sandboxed, trim_blocks, lstrip_blocks) and its tokens with special tokens parsed.
"""
import sys

import jinja2.sandbox
from llama_cpp import Llama, __version__

CASES = [
    "", " ", "  ", "   ", "\n", "\n\n", " \n", "\n ", "\t", "\r\n",
    "Hello world", "Hello, world!", " Hello", "hello  world", "hello   world  ",
    "I'm you're we've they'll he'd it's can't", "'s 'S 'll 'LL 're", "don't", "O'Neil's",
    "12345", "3.14159", "1,000,000", "year 2024", "x1y2z3", "a  1", " 42", "  7 8  9",
    "\u00bc \u00bd \u00be \u00b2 \u00b3", "\u0663\u0664\u0665", "\u216b and \u2460\u2461",
    "def foo(x):\n    return x * 2\n", "int main(void) { return 0; }",
    "    indented\n\tline\r\n", "  leading and trailing  ",
    "for (int i = 0; i < n; ++i) {\n\t\tsum += a[i];\n\t}",
    "emoji \U0001F600\U0001F389\U0001F44D\U0001F3FD family \U0001F468\u200d\U0001F469\u200d\U0001F467",
    "\u4e2d\u6587\u5206\u8bcd\u6d4b\u8bd5", "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8", "caf\u00e9 na\u00efve r\u00e9sum\u00e9 Z\u00fcrich",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac", "\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442",
    "\u05e2\u05d1\u05e8\u05d9\u05ea", "\ufdfa", "e\u0301 combining", "abc\u4e2d\u6587123",
    "\u00a0nbsp\u2003em space\u3000ideographic", "zero\u200bwidth", "\u2028line sep\u2029",
    "<|im_start|>user\nHi<|im_end|>", "<|endoftext|>", "<|im_start|><|im_end|>", "text<|im_end|>more",
    "<|im_start", "<file_sep>code", "<reponame>x", "a<|im_start|>b", "  <|im_end|>  ",
    "\u0120 literal", "\x7f\x01\x1f control", "url https://example.com/path?q=1&x=2#frag",
    "email a.b@c.de", 'JSON {"a": [1, 2, {"b": null}]}', "!!!???...", "---===+++",
    "\u00abquotes\u00bb \u201ccurly\u201d \u2018single\u2019", "tab\tseparated\tvalues",
    "multiple\n\n\nnewlines", "trailing spaces   \n  next", "MiXeD CaSe", "ALLCAPS WORDS",
    "snake_case_name", "camelCaseName", "a" * 200, "ab" * 50, " " * 40 + "x", "\n" * 12,
    "The quick brown fox jumps over the lazy dog.",
    "Once upon a time, there was a little girl named Lily. She loved to play outside.",
    "$x^2 + y^2 = z^2$ \\frac{a}{b}", "\u2200x\u2208\u211d: x\u00b2 \u2265 0", "1e-5 0x1F 0b1010",
    "C:\\Users\\name\\file.txt", "#include <stdio.h>", "<div class=\"a\">&amp;</div>",
    "\U00010348 gothic \U0001D11E music", "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22",
    "\u0939\u093f\u0928\u094d\u0926\u0940", "A\u030a\u212b",
]

CHATS = [
    (True, [("user", "Hi")]),
    (False, [("user", "Hi")]),
    (True, [("system", "You are terse."), ("user", "What is 2+2?")]),
    (True, [("user", "Hello!"), ("assistant", "Hi! How can I help?"), ("user", "Tell me a joke.")]),
    (True, []),
    (False, [("assistant", "I start."), ("user", "caf\u00e9 \U0001F600\n\nline")]),
]


def hexs(s):
    return s.encode("utf-8").hex() or "-"


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    out = sys.argv[2] if len(sys.argv) > 2 else "tests/data/tokens_ref.txt"
    llm = Llama(model_path=path, vocab_only=True, verbose=False)
    lines = ["# llama.cpp tokenization (llama-cpp-python %s, tools/ref/record_tokens.py): "
             "special hex n ids..." % __version__]
    for text in CASES:
        data = text.encode("utf-8")
        for special in (False, True):
            ids = llm.tokenize(data, add_bos=False, special=special)
            lines.append("%d %s %d %s" % (special, data.hex() or "-", len(ids), " ".join(map(str, ids))))
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    tpl = env.from_string(llm.metadata["tokenizer.chat_template"])
    for add_gen, msgs in CHATS:
        prompt = tpl.render(messages=[{"role": r, "content": c} for r, c in msgs], add_generation_prompt=add_gen)
        ids = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        parts = " ".join("%s %s" % (hexs(r), hexs(c)) for r, c in msgs)
        lines.append("chat %d %d %s%s%s %d %s" % (add_gen, len(msgs), parts, " " if parts else "", hexs(prompt),
                                                   len(ids), " ".join(map(str, ids))))
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %d cases to %s" % (len(lines) - 1, out))


if __name__ == "__main__":
    main()
