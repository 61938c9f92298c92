"""A PEFT LoRA adapter for stories260K in the exact layout PeftModel.save_pretrained writes,
built with PyTorch from PEFT's documented semantics (PEFT itself is not installed here), plus
the reference logits of the adapted model, for test/export/peft-fixture.test.ts.

    /usr/bin/python3 scripts/make-peft-fixture.py    # writes test/fixtures/peft/stories260K-lora/

Debian's python3-torch (see the team notes); CI never runs this, the files are committed.

What it follows (peft:src/peft/tuners/lora/{config,layer}.py, peft:src/peft/utils/save_and_load.py,
see ../shared/reference/formats-and-protocols.md section 1):
  - a target nn.Linear(in, out) keeps its weight and gains lora_A = nn.Linear(in, r, bias=False)
    (weight [r, in], Kaiming-uniform a=sqrt(5)) and lora_B = nn.Linear(r, out, bias=False)
    (weight [out, r]; zeros in PEFT, N(0, 0.02) here so the adapter matters);
  - y = base(x) + lora_B(lora_A(x)) * scaling, scaling = alpha / r (use_rslora false);
  - r and alpha per module from rank_pattern / alpha_pattern, first key k whose
    re.match(rf"(.*\\.)?({k})$", module name) matches (peft:src/peft/utils/other.py:get_pattern_key);
  - saved keys: "base_model.model." + module name + ".lora_A.weight" / ".lora_B.weight" (adapter
    name stripped), safetensors with {"format": "pt"} metadata; adapter_config.json with the
    LoraConfig fields, sorted.
The logits are computed in float64 on a right-padded batch; merging (W + scaling * B @ A, what
merge_and_unload does) is checked to give the same logits.
"""
import json
import math
import os
import re
import sys

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "bench"))
import ref_model as rm  # noqa: E402

MODEL_DIR = os.path.join(HERE, "..", "test", "fixtures", "models", "stories260K")
OUT = os.path.join(HERE, "..", "test", "fixtures", "peft", "stories260K-lora")
TARGETS = ["q_proj", "v_proj", "down_proj"]
R, ALPHA = 4, 8
RANK_PATTERN = {"model.layers.0.self_attn.q_proj": 2, "layers.4.mlp.down_proj": 8}
ALPHA_PATTERN = {"model.layers.2.self_attn.v_proj": 32}
IDS = [[1, 403, 407, 261, 378, 90, 4, 450], [1, 5, 6, 7, 8, 9, 0, 0]]
MASK = [[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 0, 0]]


def pattern_value(pattern, name, default):
    for k, v in pattern.items():
        if re.match(rf"(.*\.)?({k})$", name):
            return v
    return default


class LoraLinear(nn.Module):
    def __init__(self, base, r, alpha):
        super().__init__()
        self.base_layer = base
        self.lora_A = nn.Linear(base.in_features, r, bias=False, dtype=base.weight.dtype)
        self.lora_B = nn.Linear(r, base.out_features, bias=False, dtype=base.weight.dtype)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.normal_(self.lora_B.weight, std=0.02)
        self.scaling = alpha / r

    def forward(self, x):
        return self.base_layer(x) + self.lora_B(self.lora_A(x)) * self.scaling


def main():
    torch.manual_seed(0)
    model = rm.load_model(MODEL_DIR, dtype=torch.float64)
    ids = torch.tensor(IDS)
    mask = torch.tensor(MASK)
    wrapped = {}
    for name, mod in list(model.named_modules()):
        if isinstance(mod, nn.Linear) and any(name == t or name.endswith("." + t) for t in TARGETS):
            r = pattern_value(RANK_PATTERN, name, R)
            alpha = pattern_value(ALPHA_PATTERN, name, ALPHA)
            parent = model.get_submodule(name.rsplit(".", 1)[0])
            lora = LoraLinear(mod, r, alpha)
            setattr(parent, name.rsplit(".", 1)[1], lora)
            wrapped[name] = lora
    with torch.no_grad():
        for lora in wrapped.values():  # float32-representable, as the file stores them
            lora.lora_A.weight.copy_(lora.lora_A.weight.float().double())
            lora.lora_B.weight.copy_(lora.lora_B.weight.float().double())
        logits = model(ids, attention_mask=mask)["logits"]
        tensors = {}
        for name, lora in wrapped.items():
            tensors[f"base_model.model.{name}.lora_A.weight"] = lora.lora_A.weight.detach().float()
            tensors[f"base_model.model.{name}.lora_B.weight"] = lora.lora_B.weight.detach().float()
        # merge_and_unload: W + scaling * B @ A gives the same logits
        for name, lora in wrapped.items():
            lora.base_layer.weight += lora.scaling * lora.lora_B.weight @ lora.lora_A.weight
            parent = model.get_submodule(name.rsplit(".", 1)[0])
            setattr(parent, name.rsplit(".", 1)[1], lora.base_layer)
        merged = model(ids, attention_mask=mask)["logits"]
        assert (merged - logits).abs().max().item() < 1e-10, "merge and LoRA forward disagree"
    os.makedirs(OUT, exist_ok=True)
    rm.write_safetensors(os.path.join(OUT, "adapter_model.safetensors"), tensors, {"format": "pt"})
    config = {
        "alpha_pattern": ALPHA_PATTERN, "auto_mapping": None, "base_model_name_or_path": "stories260K", "bias": "none",
        "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True, "layer_replication": None,
        "layers_pattern": None, "layers_to_transform": None, "loftq_config": {}, "lora_alpha": ALPHA, "lora_dropout": 0.0,
        "megatron_config": None, "megatron_core": "megatron.core", "modules_to_save": None, "peft_type": "LORA", "r": R,
        "rank_pattern": RANK_PATTERN, "revision": None, "target_modules": TARGETS, "task_type": "CAUSAL_LM",
        "use_dora": False, "use_rslora": False,
    }
    with open(os.path.join(OUT, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    ref = {"written_by": "scripts/make-peft-fixture.py", "input_ids": IDS, "attention_mask": MASK,
           "logits": [[[float(f"{v:.8g}") for v in row] for row in b] for b in logits.tolist()]}
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(ref, f)
    print(f"wrote {OUT}: {len(tensors)} tensors")


if __name__ == "__main__":
    main()
