"""Reference values for hilo's mixture-of-LoRA-experts layer, from the PyTorch reference.

    /usr/bin/python3 scripts/make-moe-fixtures.py
        # writes test/fixtures/moe/layer.json and test/fixtures/moe/stories260K-adapter/

Debian's python3-torch (see the team notes); CI never runs this, the JSON is committed.

Each case: one adapted projection with frozen W0 [out, in] (HF layout), experts A [E, r, in],
B [E, out, r] (B ~ N(0, 0.5) so the adapters matter), router [E, in], inputs x [N, in], a
padding mask and an upstream gradient G [N, out]. The script records
  y      = x W0^T + delta                     (delta from ref_moe.moe_lora_delta for topk / LoRA)
  aux    = E * sum_e f_e P_e over all tokens  (ref_moe.load_balancing_loss for topk)
  loss   = sum(y * G) + 0.5 * aux_masked + 0.1 * zloss_masked   (padding rows left out of both)
  grads of loss wrt x, A, B, router.
topk cases use ref_moe's own routing and delta. topp and dense are not in ref_moe; they are
written here with the same formulas hilo documents (src/adapters/routing.ts):
  topp:  in descending probability keep an expert while the mass before it is < p; renormalise.
  dense: gates = softmax probabilities.
Everything is computed in float64 from float32-representable inputs, so the only error in a
comparison is the float32 arithmetic of the implementation under test.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "bench"))
import ref_model as rm  # noqa: E402
import ref_moe as mo  # noqa: E402

OUT = os.path.join(HERE, "..", "test", "fixtures", "moe", "layer.json")
MODEL_DIR = os.path.join(HERE, "..", "test", "fixtures", "models", "stories260K")
ADAPTER_DIR = os.path.join(HERE, "..", "test", "fixtures", "moe", "stories260K-adapter")
N, IN, OUTF = 8, 16, 12
TOKEN_MASK = [1, 1, 1, 1, 1, 1, 0, 0]  # the last two rows are padding


def f32(t):
    """Round to float32, then compute in float64."""
    return t.float().double()


def gates_for(strategy, probs, k, p):
    """[N, E] gates and 0/1 mask for topp / dense (topk goes through ref_moe)."""
    if strategy == "dense":
        return probs, torch.ones_like(probs)
    values, order = torch.sort(probs, dim=-1, descending=True)
    before = values.cumsum(-1) - values
    keep_sorted = (before < p).double()
    mask = torch.zeros_like(probs).scatter(1, order, keep_sorted)
    kept = probs * mask
    return kept / kept.sum(-1, keepdim=True), mask


def balance(probs, mask, tok):
    """E * sum_e f_e * P_e over real tokens; f = share of the selections, P = mean probability."""
    E = probs.shape[1]
    sel = (mask * tok[:, None]).sum(0)
    f = sel / sel.sum()
    P = (probs * tok[:, None]).sum(0) / tok.sum()
    return E * (f * P).sum()


def rnd(t):
    """Rows of a 2-D tensor with 9 significant digits: exact for float32 inputs, ~1e-9 for results."""
    return [[float(f"{v:.9g}") for v in row] for row in t.detach().reshape(t.shape[0], -1).tolist()]


def case(name, strategy, E, r, k, p, alpha, seed):
    g = torch.Generator().manual_seed(seed)
    x = f32(torch.randn(N, IN, generator=g))
    W0 = f32(torch.randn(OUTF, IN, generator=g) * 0.3)
    A = f32((torch.rand(E, r, IN, generator=g) * 2 - 1) / 4)  # |A| <= 1/sqrt(16), as the init
    B = f32(torch.randn(E, OUTF, r, generator=g) * 0.5)
    Wr = f32(torch.randn(E, IN, generator=g))
    G = f32(torch.randn(N, OUTF, generator=g))
    tok = torch.tensor(TOKEN_MASK, dtype=torch.float64)
    scale = alpha / r
    leaves = [t.clone().requires_grad_(True) for t in (x, A, B, Wr)]
    xl, Al, Bl, Wl = leaves
    rec = {}
    if E == 1:
        delta, _, _, _ = mo.moe_lora_delta(xl, xl, Al, Bl, None, 1, scale)
        loss_aux = torch.zeros((), dtype=torch.float64)
    else:
        logits = F.linear(xl, Wl)
        probs = F.softmax(logits, dim=-1)
        if strategy == "topk":
            delta, aux_all, _, topi = mo.moe_lora_delta(xl, xl, Al, Bl, Wl, k, scale, mode="gather")
            real = tok.bool()
            aux_masked = mo.load_balancing_loss(probs[real], topi[real], E)
            mask = torch.zeros_like(probs).scatter(1, topi, 1.0)
        else:
            gates, mask = gates_for(strategy, probs, k, p)
            h = F.linear(xl, Al.reshape(E * r, IN)).view(N, E, r) * gates.unsqueeze(-1)
            delta = F.linear(h.reshape(N, E * r), Bl.permute(1, 0, 2).reshape(OUTF, E * r)) * scale
            aux_all = balance(probs, mask, torch.ones_like(tok))
            aux_masked = balance(probs, mask, tok)
        z = torch.logsumexp(logits, dim=-1) ** 2
        zloss = (z * tok).sum() / tok.sum()
        loss_aux = 0.5 * aux_masked + 0.1 * zloss
        rec.update(aux=aux_all.item(), aux_masked=aux_masked.item(), zloss=zloss.item(),
                   mask=mask.detach().tolist(), probs=rnd(probs))
    y = F.linear(xl, W0) + delta
    loss = (y * G).sum() + loss_aux
    loss.backward()
    rec.update(
        name=name, strategy=strategy, experts=E, rank=r, top_k=k, top_p=p, alpha=alpha, scale=scale,
        x=rnd(x), W0=rnd(W0), A=rnd(A.reshape(E * r, IN)), B=rnd(B.reshape(E * OUTF, r)),
        router=rnd(Wr) if E > 1 else None, G=rnd(G), token_mask=TOKEN_MASK,
        y=rnd(y), loss=loss.item(),
        grad_x=rnd(xl.grad), grad_A=rnd(Al.grad.reshape(E * r, IN)), grad_B=rnd(Bl.grad.reshape(E * OUTF, r)),
        grad_router=rnd(Wl.grad) if E > 1 else None,
    )
    return rec


def whole_model():
    """stories260K with ref_moe adapters (per-layer experts/ranks, B ~ N(0, 0.02)), written in
    hilo's adapter format, plus the reference logits and summed aux loss for a padded batch."""
    torch.manual_seed(0)
    model = rm.load_model(MODEL_DIR, dtype=torch.float64)
    targets = ["q_proj", "v_proj", "down_proj"]
    experts, ranks, alpha = [1, 2, 3, 4, 2], [2, 2, 4, 4, 2], 8.0
    added = mo.attach_moe_lora(model, targets, experts, ranks, 2, alpha, mode="gather", seed=7, b_std=0.02)
    tensors, plan_layers = {}, [dict() for _ in experts]
    for name, m in added:
        parts = name.split(".")  # model.layers.{l}.{self_attn|mlp}.{proj}
        plan_layers[int(parts[2])][".".join(parts[3:])] = {"experts": m.num_experts, "rank": m.rank, "topK": 2}
        if m.num_experts == 1:
            tensors[f"{name}.lora_A.weight"] = m.lora_A[0].detach().float()
            tensors[f"{name}.lora_B.weight"] = m.lora_B[0].detach().float()
            continue
        tensors[f"{name}.moe_gate.weight"] = m.router.weight.detach().float()
        for e in range(m.num_experts):
            tensors[f"{name}.experts.{e}.lora_A.weight"] = m.lora_A[e].detach().float()
            tensors[f"{name}.experts.{e}.lora_B.weight"] = m.lora_B[e].detach().float()
    # compute in float64 from exactly the float32 values written
    with torch.no_grad():
        for name, m in added:
            m.lora_A.copy_(m.lora_A.float().double())
            m.lora_B.copy_(m.lora_B.float().double())
            if m.router is not None:
                m.router.weight.copy_(m.router.weight.float().double())
    os.makedirs(ADAPTER_DIR, exist_ok=True)
    rm.write_safetensors(os.path.join(ADAPTER_DIR, "adapter_model.safetensors"), tensors, {"hilo": "hilo-moe-lora"})
    plan = {"method": "manual", "targetModules": targets, "strategy": "topk", "topP": 0.8, "alpha": alpha,
            "scaling": "alpha/r", "fixedScale": 1.0, "dropout": 0.0, "layers": plan_layers}
    config = {"format": "hilo-moe-lora", "format_version": 1, "router_aux_loss_coef": 1.0, "router_z_loss_coef": 0.0,
              "seed": 7, "written_by": "scripts/make-moe-fixtures.py from ref_moe.attach_moe_lora", "plan": plan}
    with open(os.path.join(ADAPTER_DIR, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    ids = torch.tensor([[1, 200, 37, 90, 4, 450], [1, 5, 6, 7, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    with torch.no_grad():
        logits = model(ids, attention_mask=mask)["logits"]
        aux = mo.moe_aux_loss(model).item()  # ref_moe counts padded tokens too
    ref = {"tokens": ids.tolist(), "attention_mask": mask.tolist(), "aux_loss_unmasked": aux,
           "logits": [[[float(f"{v:.8g}") for v in row] for row in b] for b in logits.tolist()]}
    with open(os.path.join(ADAPTER_DIR, "reference.json"), "w") as f:
        json.dump(ref, f, separators=(",", ":"))
        f.write("\n")
    sizes = {n: os.path.getsize(os.path.join(ADAPTER_DIR, n)) for n in os.listdir(ADAPTER_DIR)}
    print(f"wrote {ADAPTER_DIR}: {sizes}")


def main():
    cases = [
        case("lora r4", "topk", 1, 4, 1, 0.0, 8.0, 1),
        case("topk k=1", "topk", 4, 3, 1, 0.0, 6.0, 2),
        case("topk k=2", "topk", 4, 3, 2, 0.0, 6.0, 3),
        case("topp p=0.6", "topp", 4, 3, 0, 0.6, 6.0, 4),
        case("dense", "dense", 3, 2, 0, 0.0, 4.0, 5),
    ]
    doc = {
        "generated_by": "scripts/make-moe-fixtures.py (ref_moe.py, torch %s, float64)" % torch.__version__,
        "layout": "HF: W0 [out,in]; A rows = experts' lora_A stacked [E*r, in]; B rows = lora_B stacked [E*out, r]; router [E, in]",
        "loss": "sum(y*G) + 0.5*aux_masked + 0.1*zloss_masked",
        "cases": cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}: {os.path.getsize(OUT)} bytes, {len(cases)} cases")
    whole_model()


if __name__ == "__main__":
    main()
