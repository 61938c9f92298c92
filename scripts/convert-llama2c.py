#!/usr/bin/env python3
"""Convert a llama2.c checkpoint + tokenizer into a Hugging Face Llama directory.

    /usr/bin/python3 scripts/convert-llama2c.py stories260K.bin tok512.bin test/fixtures/models/stories260K [--check]

Input formats (Karpathy's llama2.c, MIT):
  model .bin, legacy version 0: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
    vocab_size, seq_len; vocab_size < 0 means the classifier is not shared with the embedding),
    then float32 tensors, each stacked over layers: embedding, attention norms, wq, wk, wv, wo,
    ffn norms, w1 (gate), w2 (down), w3 (up), final norm, the RoPE cos and sin tables
    (seq_len x head_dim/2 each), and the classifier when unshared.
  tokenizer .bin: int32 max_token_length, then per token float32 score, int32 byte length,
    UTF-8 bytes. Sentencepiece's U+2581 is stored as ' ', BOS/EOS as '\\n<s>\\n' / '\\n</s>\\n'.

Output: config.json, generation_config.json, model.safetensors (float32), tokenizer.json
(sentencepiece-style BPE with byte fallback), tokenizer_config.json, special_tokens_map.json.

Meta/llama2.c rotate interleaved pairs (x0,x1),(x2,x3)... of each head; HF's rotate_half rotates
(x_i, x_{i+d/2}). Reordering the rows of wq and wk per head (evens first, then odds) makes the
HF computation identical; --check runs both layouts in numpy and compares the logits.
Needs numpy only.
"""
import argparse
import json
import struct
import sys
from pathlib import Path

import numpy as np

SPACE = "\u2581"  # sentencepiece's visible space


# ---------------------------------------------------------------- llama2.c model

def read_llama2c_model(path):
    """Return (config dict, {name: float32 array in Meta layout}) from a legacy v0 .bin."""
    raw = Path(path).read_bytes()
    if raw[:4] == struct.pack("<I", 0x616B3432):
        sys.exit(f"{path}: versioned llama2.c export ('ak42' magic); only legacy v0 files are supported")
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack_from("<7i", raw, 0)
    shared = vocab > 0
    vocab = abs(vocab)
    head_dim = dim // n_heads
    kv_dim = n_kv * head_dim
    shapes = [  # (name, shape) in file order
        ("embed", (vocab, dim)),
        ("attn_norm", (n_layers, dim)),
        ("wq", (n_layers, dim, dim)),
        ("wk", (n_layers, kv_dim, dim)),
        ("wv", (n_layers, kv_dim, dim)),
        ("wo", (n_layers, dim, dim)),
        ("ffn_norm", (n_layers, dim)),
        ("w1", (n_layers, hidden, dim)),
        ("w2", (n_layers, dim, hidden)),
        ("w3", (n_layers, hidden, dim)),
        ("final_norm", (dim,)),
        ("rope_cos", (seq_len, head_dim // 2)),
        ("rope_sin", (seq_len, head_dim // 2)),
    ]
    if not shared:
        shapes.append(("lm_head", (vocab, dim)))
    floats = np.frombuffer(raw, dtype="<f4", offset=28)
    need = sum(int(np.prod(s)) for _, s in shapes)
    if floats.size != need:
        sys.exit(f"{path}: {floats.size} float32 after the header, expected {need} for this config")
    w, off = {}, 0
    for name, shape in shapes:
        n = int(np.prod(shape))
        w[name] = floats[off:off + n].reshape(shape).astype(np.float32)
        off += n
    cfg = dict(dim=dim, hidden_dim=hidden, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv,
               vocab_size=vocab, seq_len=seq_len, shared_classifier=shared, head_dim=head_dim)
    return cfg, w


def check_rope_tables(cfg, w, theta=10000.0):
    """The stored RoPE tables must be the standard ones for theta, else rope_theta is wrong."""
    hd = cfg["head_dim"]
    inv_freq = 1.0 / theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd)  # (hd/2,)
    angles = np.outer(np.arange(cfg["seq_len"]), inv_freq)  # (seq, hd/2)
    err = max(np.abs(np.cos(angles) - w["rope_cos"]).max(), np.abs(np.sin(angles) - w["rope_sin"]).max())
    if err > 1e-3:
        sys.exit(f"stored RoPE tables differ from theta={theta} by {err:.2e}")
    return float(err)


def interleaved_to_half_rows(wt, n_heads):
    """Reorder the output rows of a q/k projection from pair-interleaved to rotate_half order."""
    rows, cols = wt.shape  # (n_heads * head_dim, dim)
    hd = rows // n_heads
    return wt.reshape(n_heads, hd // 2, 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)


def to_hf_tensors(cfg, w):
    t = {"model.embed_tokens.weight": w["embed"], "model.norm.weight": w["final_norm"]}
    for i in range(cfg["n_layers"]):
        p = f"model.layers.{i}."
        t[p + "self_attn.q_proj.weight"] = interleaved_to_half_rows(w["wq"][i], cfg["n_heads"])
        t[p + "self_attn.k_proj.weight"] = interleaved_to_half_rows(w["wk"][i], cfg["n_kv_heads"])
        t[p + "self_attn.v_proj.weight"] = w["wv"][i]
        t[p + "self_attn.o_proj.weight"] = w["wo"][i]
        t[p + "mlp.gate_proj.weight"] = w["w1"][i]
        t[p + "mlp.down_proj.weight"] = w["w2"][i]
        t[p + "mlp.up_proj.weight"] = w["w3"][i]
        t[p + "input_layernorm.weight"] = w["attn_norm"][i]
        t[p + "post_attention_layernorm.weight"] = w["ffn_norm"][i]
    if not cfg["shared_classifier"]:
        t["lm_head.weight"] = w["lm_head"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in t.items()}


def write_safetensors(path, tensors, metadata):
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        b = tensors[name].astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # keep the data 8-byte aligned, as the reference writer does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------- llama2.c tokenizer

def read_llama2c_tokenizer(path, vocab_size):
    raw = Path(path).read_bytes()
    off, pieces, scores = 4, [], []
    for _ in range(vocab_size):
        score, n = struct.unpack_from("<fi", raw, off)
        pieces.append(raw[off + 8:off + 8 + n].decode("utf-8"))
        scores.append(score)
        off += 8 + n
    if off != len(raw):
        sys.exit(f"{path}: {len(raw) - off} trailing bytes after {vocab_size} tokens (vocab size mismatch?)")
    return pieces, scores


def is_byte_piece(p):
    return len(p) == 6 and p.startswith("<0x") and p.endswith(">")


def build_tokenizer_json(pieces, scores):
    specials = {"<unk>": "<unk>", "\n<s>\n": "<s>", "\n</s>\n": "</s>"}
    vocab = [specials.get(p, p.replace(" ", SPACE)) for p in pieces]
    ids = {p: i for i, p in enumerate(vocab)}
    assert vocab[:3] == ["<unk>", "<s>", "</s>"], vocab[:3]
    mergeable = {p for p in vocab if p not in ("<unk>", "<s>", "</s>") and not is_byte_piece(p)}
    # llama2.c's encoder repeatedly merges the adjacent pair whose concatenation has the highest
    # score (leftmost on ties). A BPE merge list ranked by the merged piece's score reproduces it;
    # splits of one piece are ordered by the ids of their halves (as HF's SentencePieceExtractor).
    merges = []
    for piece in sorted(mergeable, key=lambda p: (-scores[ids[p]], ids[p])):
        splits = [(piece[:k], piece[k:]) for k in range(1, len(piece))
                  if piece[:k] in mergeable and piece[k:] in mergeable]
        merges += sorted(splits, key=lambda lr: (ids[lr[0]], ids[lr[1]]))
    added = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, c in enumerate(vocab[:3])]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": SPACE},
            {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": ids, "merges": [f"{l} {r}" for l, r in merges]},
    }, added


# ---------------------------------------------------------------- optional self-check

def forward_logits(tokens, cfg, layers, embed, final_norm, lm_head, rope_layout):
    """Plain numpy Llama forward over a whole sequence; rope_layout is 'pairs' or 'halves'."""
    T, hd = len(tokens), cfg["head_dim"]
    nh, nkv = cfg["n_heads"], cfg["n_kv_heads"]
    inv_freq = 1.0 / 10000.0 ** (np.arange(0, hd, 2, dtype=np.float32) / hd)
    ang = np.outer(np.arange(T, dtype=np.float32), inv_freq)  # (T, hd/2)
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]

    def rope(x):  # (T, heads, hd)
        if rope_layout == "pairs":
            a, b = x[..., 0::2], x[..., 1::2]
            return np.stack([a * cos - b * sin, a * sin + b * cos], -1).reshape(x.shape)
        a, b = x[..., :hd // 2], x[..., hd // 2:]
        return np.concatenate([a * cos - b * sin, a * sin + b * cos], -1)

    def rms(x, g):
        return g * (x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5))

    x = embed[tokens]  # (T, dim)
    mask = np.triu(np.full((T, T), -np.inf, dtype=np.float32), 1)
    for L in layers:
        h = rms(x, L["attn_norm"])
        q = rope((h @ L["wq"].T).reshape(T, nh, hd))
        k = rope((h @ L["wk"].T).reshape(T, nkv, hd))
        v = (h @ L["wv"].T).reshape(T, nkv, hd)
        k, v = np.repeat(k, nh // nkv, 1), np.repeat(v, nh // nkv, 1)  # (T, nh, hd)
        s = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(hd) + mask  # (nh, T, T)
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        x = x + np.einsum("hqk,khd->qhd", p, v).reshape(T, -1) @ L["wo"].T
        h = rms(x, L["ffn_norm"])
        g = h @ L["w1"].T
        x = x + ((g / (1 + np.exp(-g))) * (h @ L["w3"].T)) @ L["w2"].T
    return rms(x, final_norm) @ lm_head.T  # (T, vocab)


def self_check(cfg, w, t):
    tokens = [1] + list(range(259, 259 + 15))
    meta = [dict(attn_norm=w["attn_norm"][i], wq=w["wq"][i], wk=w["wk"][i], wv=w["wv"][i], wo=w["wo"][i],
                 ffn_norm=w["ffn_norm"][i], w1=w["w1"][i], w2=w["w2"][i], w3=w["w3"][i])
            for i in range(cfg["n_layers"])]
    hf = []
    for i in range(cfg["n_layers"]):
        p = f"model.layers.{i}."
        hf.append(dict(attn_norm=t[p + "input_layernorm.weight"], wq=t[p + "self_attn.q_proj.weight"],
                       wk=t[p + "self_attn.k_proj.weight"], wv=t[p + "self_attn.v_proj.weight"],
                       wo=t[p + "self_attn.o_proj.weight"], ffn_norm=t[p + "post_attention_layernorm.weight"],
                       w1=t[p + "mlp.gate_proj.weight"], w2=t[p + "mlp.down_proj.weight"],
                       w3=t[p + "mlp.up_proj.weight"]))
    head_meta = w["embed"] if cfg["shared_classifier"] else w["lm_head"]
    head_hf = t.get("lm_head.weight", t["model.embed_tokens.weight"])
    a = forward_logits(tokens, cfg, meta, w["embed"], w["final_norm"], head_meta, "pairs")
    b = forward_logits(tokens, cfg, hf, t["model.embed_tokens.weight"], t["model.norm.weight"], head_hf, "halves")
    return float(np.abs(a - b).max())


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_bin")
    ap.add_argument("tokenizer_bin")
    ap.add_argument("out_dir")
    ap.add_argument("--check", action="store_true", help="compare llama2.c-layout and HF-layout logits in numpy")
    args = ap.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    cfg, w = read_llama2c_model(args.model_bin)
    rope_err = check_rope_tables(cfg, w)
    tensors = to_hf_tensors(cfg, w)
    write_safetensors(out / "model.safetensors", tensors, {"format": "pt"})
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": cfg["dim"],
        "intermediate_size": cfg["hidden_dim"],
        "num_hidden_layers": cfg["n_layers"],
        "num_attention_heads": cfg["n_heads"],
        "num_key_value_heads": cfg["n_kv_heads"],
        "head_dim": cfg["head_dim"],
        "vocab_size": cfg["vocab_size"],
        "max_position_embeddings": cfg["seq_len"],
        "hidden_act": "silu",
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "rope_scaling": None,
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": cfg["shared_classifier"],
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "float32",
        "use_cache": True,
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "generation_config.json").write_text(json.dumps(
        {"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2}, indent=2) + "\n")

    pieces, scores = read_llama2c_tokenizer(args.tokenizer_bin, cfg["vocab_size"])
    tok, added = build_tokenizer_json(pieces, scores)
    (out / "tokenizer.json").write_text(json.dumps(tok, indent=2, ensure_ascii=False) + "\n")
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    tok_config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in added},
        **special,
        "pad_token": None,
        "clean_up_tokenization_spaces": False,
        "legacy": True,
        "model_max_length": cfg["seq_len"],
        "tokenizer_class": "LlamaTokenizerFast",
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2) + "\n")

    n_params = sum(v.size for v in tensors.values())
    shown = ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len", "shared_classifier")
    print("config", json.dumps({k: cfg[k] for k in shown}))
    print(f"{len(tensors)} tensors, {n_params} parameters; RoPE tables match theta=10000 (max err {rope_err:.1e})")
    print(f"tokenizer: {len(pieces)} pieces, {len(tok['model']['merges'])} merges")
    if args.check:
        print(f"check: max |logit(llama2.c layout) - logit(HF layout)| = {self_check(cfg, w, tensors):.2e}")


if __name__ == "__main__":
    main()
