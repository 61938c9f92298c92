#!/usr/bin/python3
"""Float64 PyTorch reference for hilo's data-driven probes (src/probe/grad-sensitivity.ts,
src/probe/activation-rank.ts) on stories260K, using the shared reference model.

    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 scripts/probe-reference.py test/fixtures/models/stories260K \
        > test/fixtures/probe/calibration-stories260K.json

The calibration batches are fixed token ids (written into the fixture, so the TypeScript test
feeds the very same ones); one row is right-padded. Labels = ids on real tokens, -100 on padding
(HF-aligned; the loss shifts them).
- grad-sensitivity: per batch, loss = HF causal-LM mean cross-entropy; per module
  sum |W * dL/dW| over the weight (no bias); averaged over batches; layer = sum over its 7 linears.
- activation-rank: the inputs of each layer's q_proj on real tokens, X [tokens, hidden];
  sigma = singular values of X (np.linalg.svd, float64), p = sigma / sum sigma, erank = exp(-sum p ln p).
"""
import json
import sys

import numpy as np
import torch

sys.path.insert(0, __file__.rsplit("/", 2)[0] + "/../shared/bench")
from ref_model import causal_lm_loss, load_model  # noqa: E402

LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def make_batches():
    """Two batches, [2, 12] and [3, 10]; row 2 of batch 1 has 6 real tokens."""
    out = []
    for b, (B, T) in enumerate([(2, 12), (3, 10)]):
        ids = [[3 + (7 + 31 * (t + 1) + 101 * i + 211 * b + 13 * t * t) % 509 for t in range(T)] for i in range(B)]
        mask = [[1] * T for _ in range(B)]
        if b == 1:
            mask[2] = [1] * 6 + [0] * (T - 6)
            ids[2] = ids[2][:6] + [0] * (T - 6)
        labels = [[ids[i][t] if mask[i][t] else -100 for t in range(T)] for i in range(B)]
        out.append({"batchSize": B, "seqLen": T, "inputIds": ids, "attentionMask": mask, "labels": labels})
    return out


def main(model_dir):
    torch.manual_seed(0)
    model = load_model(model_dir, dtype=torch.float64)
    L = model.config.num_hidden_layers
    batches = make_batches()
    grad = [{m: 0.0 for m in LINEARS} for _ in range(L)]
    rows = [[] for _ in range(L)]
    hooks = [model.model.layers[l].self_attn.q_proj.register_forward_hook(
        lambda mod, inp, out, l=l: rows[l].append(inp[0].detach())) for l in range(L)]
    for b in batches:
        ids = torch.tensor(b["inputIds"])
        mask = torch.tensor(b["attentionMask"])
        model.zero_grad(set_to_none=True)
        out = model(ids, attention_mask=mask)
        loss = causal_lm_loss(out["logits"], torch.tensor(b["labels"]))
        loss.backward()
        for l in range(L):
            layer = model.model.layers[l]
            for m in LINEARS:
                w = layer.get_submodule(m).weight
                grad[l][m] += float((w * w.grad).abs().sum()) / len(batches)
        keep = mask.reshape(-1).bool()
        for l in range(L):
            x = rows[l].pop()
            rows[l].append(x.reshape(-1, x.shape[-1])[keep])
    for h in hooks:
        h.remove()
    erank = []
    for l in range(L):
        X = torch.cat(rows[l]).numpy()
        s = np.linalg.svd(X, compute_uv=False)
        p = s[s > 0] / s.sum()
        erank.append(float(np.exp(-(p * np.log(p)).sum())))
    json.dump({
        "model": model_dir.rstrip("/").split("/")[-1],
        "generator": f"scripts/probe-reference.py (torch {torch.__version__}, numpy {np.__version__}, float64)",
        "batches": batches,
        "grad_sensitivity": {"layers": [sum(g.values()) for g in grad], "modules": grad},
        "activation_rank": {"input_module": "self_attn.q_proj", "layers": erank},
    }, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
