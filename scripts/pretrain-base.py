"""Pretrains hilo's embedded base model (models/hilo-base) with PyTorch on the CPU.

A 1.26M-parameter Llama (vocab 4096, hidden 128, 4 layers, 4 heads / 2 kv heads, SwiGLU 352,
tied embeddings) trained on public-domain English: Moby-Dick ch. 1-120 and the State of the
Union addresses to 1900, tokenised by scripts/train-tokenizer.ts. Deterministic for a given
machine and thread count (fixed seeds, fixed data order). Run from the repo root:

    npx tsx scripts/train-tokenizer.ts models/hilo-base 4096 /tmp/base-corpus.bin
    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 scripts/pretrain-base.py /tmp/base-corpus.bin models/hilo-base [steps=3000]

(Debian: apt-get install python3-torch python3-numpy libopenblas0-pthread.) hilo can train the
same model itself (`hilo train recipes/pretrain/base.yaml`, full-parameter), about 20x slower on
this CPU, so the committed weights come from here. The model follows Hugging Face
LlamaForCausalLM semantics exactly (RMSNorm, rotate_half RoPE, GQA, SwiGLU), and the script also
writes reference logits that hilo's loader is tested against (test/fixtures/base/reference.json).
"""
import json, math, os, struct, sys, time
import numpy as np
import torch
import torch.nn.functional as F

CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 4096, "hidden_size": 128,
    "intermediate_size": 352, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
    "head_dim": 32, "max_position_embeddings": 256, "hidden_act": "silu", "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0, "rope_scaling": None, "attention_bias": False, "mlp_bias": False,
    "tie_word_embeddings": True, "initializer_range": 0.02, "bos_token_id": 1, "eos_token_id": 2,
    "pad_token_id": 0, "torch_dtype": "float32",
}
SEQ, BATCH, LR, WARMUP, SEED = 128, 32, 3e-3, 200, 0


class Llama(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        d, h, kv, hd, ff = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"], c["intermediate_size"]
        self.embed = torch.nn.Embedding(c["vocab_size"], d)
        self.layers = torch.nn.ModuleList()
        for _ in range(c["num_hidden_layers"]):
            self.layers.append(torch.nn.ModuleDict({
                "q_proj": torch.nn.Linear(d, h * hd, bias=False), "k_proj": torch.nn.Linear(d, kv * hd, bias=False),
                "v_proj": torch.nn.Linear(d, kv * hd, bias=False), "o_proj": torch.nn.Linear(h * hd, d, bias=False),
                "gate_proj": torch.nn.Linear(d, ff, bias=False), "up_proj": torch.nn.Linear(d, ff, bias=False),
                "down_proj": torch.nn.Linear(ff, d, bias=False),
            }))
        self.ln1 = torch.nn.ParameterList([torch.nn.Parameter(torch.ones(d)) for _ in self.layers])
        self.ln2 = torch.nn.ParameterList([torch.nn.Parameter(torch.ones(d)) for _ in self.layers])
        self.norm = torch.nn.Parameter(torch.ones(d))
        for m in self.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Embedding)):
                torch.nn.init.normal_(m.weight, 0.0, c["initializer_range"])
        inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
        pos = torch.arange(c["max_position_embeddings"]).float()
        emb = torch.cat([torch.outer(pos, inv)] * 2, dim=-1)
        self.register_buffer("cos", emb.cos(), persistent=False)
        self.register_buffer("sin", emb.sin(), persistent=False)

    def rms(self, x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.c["rms_norm_eps"]))

    @staticmethod
    def rotate_half(x):
        a, b = x.chunk(2, dim=-1)
        return torch.cat([-b, a], dim=-1)

    def forward(self, ids):
        c = self.c
        B, T = ids.shape
        h, kv, hd = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        x = self.embed(ids)
        cos, sin = self.cos[:T], self.sin[:T]
        causal = torch.full((T, T), float("-inf")).triu(1)
        for l, L in enumerate(self.layers):
            y = self.rms(x, self.ln1[l])
            q = L["q_proj"](y).view(B, T, h, hd).transpose(1, 2)
            k = L["k_proj"](y).view(B, T, kv, hd).transpose(1, 2)
            v = L["v_proj"](y).view(B, T, kv, hd).transpose(1, 2)
            q = q * cos + self.rotate_half(q) * sin
            k = k * cos + self.rotate_half(k) * sin
            k = k.repeat_interleave(h // kv, dim=1)
            v = v.repeat_interleave(h // kv, dim=1)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(hd) + causal
            o = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, h * hd)
            x = x + L["o_proj"](o)
            y = self.rms(x, self.ln2[l])
            x = x + L["down_proj"](F.silu(L["gate_proj"](y)) * L["up_proj"](y))
        return self.rms(x, self.norm) @ self.embed.weight.T

    def hf_state(self):
        s = {"model.embed_tokens.weight": self.embed.weight, "model.norm.weight": self.norm}
        for l, L in enumerate(self.layers):
            p = f"model.layers.{l}"
            for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
                s[f"{p}.self_attn.{name}.weight"] = L[name].weight
            for name in ("gate_proj", "up_proj", "down_proj"):
                s[f"{p}.mlp.{name}.weight"] = L[name].weight
            s[f"{p}.input_layernorm.weight"] = self.ln1[l]
            s[f"{p}.post_attention_layernorm.weight"] = self.ln2[l]
        return {k: v.detach().float().contiguous().numpy() for k, v in s.items()}


def write_safetensors(path, tensors):
    header, offset, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name in sorted(tensors):
        b = tensors[name].astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    os.replace(tmp, path)


def main():
    corpus, out_dir = sys.argv[1], sys.argv[2]
    total = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    data = torch.from_numpy(np.fromfile(corpus, dtype=np.uint16).astype(np.int64))
    held = len(data) // 50  # last 2% held out for a validation loss
    train, val = data[:-held], data[-held:]
    model = Llama(CONFIG)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.95), weight_decay=0.1)
    n_windows = (len(train) - 1) // SEQ
    gen = torch.Generator().manual_seed(SEED)
    order = torch.randperm(n_windows, generator=gen)
    steps_per_epoch = n_windows // BATCH
    t0 = time.time()
    step, epoch, pos = 0, 0, 0
    print(f"{total} steps = {total*BATCH*SEQ/len(train):.2f} epochs of {len(train)} tokens", flush=True)
    while step < total:
        if pos + BATCH > n_windows:
            epoch, pos = epoch + 1, 0
            order = torch.randperm(n_windows, generator=gen)
        idx = order[pos:pos + BATCH] * SEQ
        pos += BATCH
        batch = torch.stack([train[i:i + SEQ + 1] for i in idx.tolist()])
        lr = LR * min(1.0, (step + 1) / WARMUP) * 0.5 * (1 + math.cos(math.pi * step / total))
        for g in opt.param_groups:
            g["lr"] = lr
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, CONFIG["vocab_size"]), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 25 == 0:
            print(f"step {step} loss {loss.item():.4f} lr {lr:.2e} {time.time()-t0:.0f}s", flush=True)
    model.eval()
    with torch.no_grad():
        vb = val[: (len(val) - 1) // SEQ * SEQ + 1]
        xs = torch.stack([vb[i:i + SEQ + 1] for i in range(0, len(vb) - SEQ, SEQ)])
        vl = F.cross_entropy(model(xs[:, :-1]).reshape(-1, CONFIG["vocab_size"]), xs[:, 1:].reshape(-1)).item()
    print(f"validation loss {vl:.4f} (perplexity {math.exp(vl):.1f}) after {step} steps, {time.time()-t0:.0f}s")
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), model.hf_state())
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}, f, indent=2)
    # Reference logits for hilo's loader test: two validation windows of 24 tokens.
    with torch.no_grad():
        ids = torch.stack([val[:24], val[100:124]])
        logits = model(ids)
    ref = {"ids": ids.tolist(), "last_logits": logits[:, -1].tolist(), "first_logits_top": logits[:, 0, :16].tolist(),
           "validation_loss": vl, "steps": step, "train_tokens": int(len(train)), "seed": SEED}
    fx = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "base")
    os.makedirs(fx, exist_ok=True)
    with open(os.path.join(fx, "reference.json"), "w") as f:
        json.dump(ref, f)


if __name__ == "__main__":
    main()
