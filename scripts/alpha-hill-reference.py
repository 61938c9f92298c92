#!/usr/bin/python3
"""Float64 reference for hilo's alpha-hill probe (src/probe/hill.ts), written independently in numpy.

    /usr/bin/python3 scripts/alpha-hill-reference.py test/fixtures/models/stories260K > test/fixtures/probe/alpha-hill-stories260K.json

Same procedure, different route: singular values straight from numpy's SVD of each weight
(float64, no Gram matrix), squared and sorted ascending; eigenvalues <= 1e-5 dropped; every
eigenvalue but the largest is a candidate x_min; Hill alpha = 1 + n / sum(ln(lambda_tail / x_min));
KS distance D = max_k |1 - (lambda_k / x_min)^(1 - alpha) - k / n|; candidates with alpha <= 1 or a
zero log-sum skipped; the first minimum of D wins. Layer score = mean over the layer's linears.
Needs only numpy (apt: python3-numpy libopenblas0-pthread); the safetensors file is parsed by hand.
"""
import json
import struct
import sys

import numpy as np

from hill_reference import EVALS_THRESH, hill_fit

LLAMA_LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                 "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", (name, e["dtype"])
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[b:end], dtype="<f4").reshape(e["shape"]).astype(np.float64)
    return out


def hill_alpha(w):
    return hill_fit(np.sort(np.linalg.svd(w, compute_uv=False) ** 2))


def main(model_dir):
    config = json.load(open(f"{model_dir}/config.json"))
    tensors = read_safetensors(f"{model_dir}/model.safetensors")
    matrices, layers = {}, []
    for l in range(config["num_hidden_layers"]):
        alphas = []
        for m in LLAMA_LINEARS:
            path = f"model.layers.{l}.{m}"
            fit = hill_alpha(tensors[f"{path}.weight"])
            matrices[path] = fit
            alphas.append(fit["alpha"])
        layers.append(float(np.mean(alphas)))
    json.dump({
        "model": model_dir.rstrip("/").split("/")[-1],
        "generator": "scripts/alpha-hill-reference.py (numpy %s, float64 SVD)" % np.__version__,
        "evals_thresh": EVALS_THRESH,
        "xmin_candidates": "all eigenvalues above evals_thresh except the largest",
        "layers": layers,
        "matrices": matrices,
    }, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
