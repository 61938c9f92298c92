"""Reference values for the training stage, from PyTorch (run with Debian's /usr/bin/python3).

Writes test/fixtures/train/reference.json: AdamW trajectories (torch.optim.AdamW), HF warmup
schedules (the transformers formulas, re-derived here with torch's LambdaLR), global-norm
clipping (torch.nn.utils.clip_grad_norm_) and cross-entropy with ignore_index=-100.
"""
import json, math, os
import torch

torch.manual_seed(0)
out = {}

# AdamW: 3 parameters, 5 steps with fixed gradients per step.
p0 = torch.randn(3, 4, dtype=torch.float64)
grads = [torch.randn(3, 4, dtype=torch.float64) for _ in range(5)]
for wd in (0.0, 0.1):
    p = p0.clone().requires_grad_(True)
    opt = torch.optim.AdamW([p], lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
    traj = []
    for g in grads:
        p.grad = g.clone()
        opt.step()
        traj.append(p.detach().flatten().tolist())
    out[f"adamw_wd{wd}"] = {"p0": p0.flatten().tolist(), "grads": [g.flatten().tolist() for g in grads], "lr": 1e-2, "traj": traj}

# Schedules: transformers' lambdas through torch's LambdaLR.
def cosine(w, t):
    return lambda s: s / max(1, w) if s < w else max(0.0, 0.5 * (1.0 + math.cos(math.pi * (s - w) / max(1, t - w))))
def linear(w, t):
    return lambda s: s / max(1, w) if s < w else max(0.0, (t - s) / max(1, t - w))
def constant(w, t):
    return lambda s: s / max(1.0, w) if s < w else 1.0
sched = {}
for name, f in (("cosine", cosine), ("linear", linear), ("constant", constant)):
    q = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([q], lr=3e-4)
    lr = torch.optim.lr_scheduler.LambdaLR(opt, f(4, 20))
    seq = []
    for _ in range(22):
        seq.append(opt.param_groups[0]["lr"])
        opt.step(); lr.step()
    sched[name] = seq
out["schedules"] = {"base": 3e-4, "warmup": 4, "total": 20, "lrs": sched}

# Clipping.
gs = [torch.randn(5, dtype=torch.float64) * 3, torch.randn(2, 3, dtype=torch.float64)]
ps = [torch.nn.Parameter(torch.zeros_like(g)) for g in gs]
for p, g in zip(ps, gs): p.grad = g.clone()
norm = torch.nn.utils.clip_grad_norm_(ps, 1.0)
out["clip"] = {"grads": [g.flatten().tolist() for g in gs], "shapes": [list(g.shape) for g in gs], "max_norm": 1.0,
               "norm": float(norm), "clipped": [p.grad.flatten().tolist() for p in ps]}

# Cross-entropy (HF shift + ignore_index) on [2, 5, 7] logits.
logits = torch.randn(2, 5, 7, dtype=torch.float64)
labels = torch.tensor([[3, 1, -100, 6, 0], [2, 2, 5, -100, -100]])
shift_logits = logits[:, :-1].reshape(-1, 7)
shift_labels = labels[:, 1:].reshape(-1)
loss = torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=-100)
out["cross_entropy"] = {"logits": logits.flatten().tolist(), "labels": labels.flatten().tolist(), "shape": [2, 5, 7], "loss": float(loss)}

path = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "train", "reference.json")
with open(path, "w") as f:
    json.dump(out, f)
print("wrote", path)
