#!/usr/bin/python3
"""Tiny random HF model directories + reference logits for hilo's model parity tests.

Run with Debian's python3-torch (CI never runs this; the outputs are committed):
    /usr/bin/python3 scripts/make-model-fixtures.py
Writes test/fixtures/models/{tiny-llama,tiny-qwen2,tiny-gpt2}/ with config.json,
model.safetensors and reference.json (ids, attention_mask, float32 logits of a padded batch,
computed by the independent PyTorch implementation in ../shared/bench/ref_model.py).
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "..", "shared", "bench"))
import ref_model as rm  # noqa: E402

OUT = os.path.join(ROOT, "test", "fixtures", "models")

# Untied GQA Llama with llama3 RoPE scaling: the scaling rescales the rotary frequencies, so a
# loader that ignored it would differ at every position > 0.
LLAMA = dict(
    model_type="llama", vocab_size=128, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5,
    rope_theta=10000.0, tie_word_embeddings=False, hidden_act="silu", initializer_range=0.4,
    rope_scaling=dict(rope_type="llama3", factor=4.0, low_freq_factor=1.0, high_freq_factor=4.0,
                      original_max_position_embeddings=32),
)
# Qwen2 semantics: q/k/v biases, no o_proj bias, tied head, one kv head (MQA), theta 1e6.
# ref_model has no qwen2 type, so it runs as llama with attention_bias and a zero o_proj bias
# that is then left out of the file.
QWEN2 = dict(
    model_type="llama", vocab_size=96, hidden_size=32, intermediate_size=40, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=64, rms_norm_eps=1e-6,
    rope_theta=1000000.0, tie_word_embeddings=True, hidden_act="silu", attention_bias=True,
    initializer_range=0.4,
)
GPT2 = dict(model_type="gpt2", vocab_size=80, n_embd=32, n_layer=2, n_head=4, n_positions=32, n_inner=None,
            initializer_range=0.4)

# initializer_range 0.4 instead of HF's 0.02 gives logits of order 1-10 rather than 0.01, so a
# 1e-4 tolerance actually catches a wrong RoPE frequency, bias or norm.
IDS = [[5, 17, 3, 44, 9, 71, 23], [60, 2, 33, 7, 0, 0, 0]]
MASK = [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]]


def reference(model, name):
    ids = torch.tensor(IDS)
    mask = torch.tensor(MASK)
    with torch.no_grad():
        out = model(ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100))
    return {
        "made_by": "scripts/make-model-fixtures.py with ../shared/bench/ref_model.py (torch %s, float32)" % torch.__version__,
        "model": name,
        "input_ids": IDS,
        "attention_mask": MASK,
        "logits": out["logits"].tolist(),
        "loss": float(out["loss"]),
    }


def write(name, model, config_patch=None, drop=()):
    d = os.path.join(OUT, name)
    rm.save_model(model, d)
    if drop:
        tensors, meta = rm.read_safetensors(os.path.join(d, "model.safetensors"))
        for k in drop:
            del tensors[k]
        rm.write_safetensors(os.path.join(d, "model.safetensors"), tensors, meta)
    if config_patch:
        p = os.path.join(d, "config.json")
        cfg = json.load(open(p))
        cfg.update(config_patch)
        cfg = {k: v for k, v in cfg.items() if v is not None or k in ("rope_scaling", "n_inner")}
        with open(p, "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(reference(model, name), f)
        f.write("\n")
    print(name, sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d)), "bytes")


def main():
    torch.manual_seed(0)
    write("tiny-llama", rm.make_random(LLAMA, seed=1))

    qwen = rm.make_random(QWEN2, seed=2)
    with torch.no_grad():
        for layer in qwen.model.layers:
            layer.self_attn.o_proj.bias.zero_()
    drop = [f"model.layers.{i}.self_attn.o_proj.bias" for i in range(QWEN2["num_hidden_layers"])]
    write("tiny-qwen2", qwen, {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "attention_bias": None}, drop)

    write("tiny-gpt2", rm.make_random(GPT2, seed=3))


if __name__ == "__main__":
    main()
