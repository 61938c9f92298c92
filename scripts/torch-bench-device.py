"""Run ../shared/bench/torch_train_bench.py on a torch device (CUDA on a GPU machine).

The reference bench builds its model, adapters and batches on the CPU and times each step with
time.perf_counter() before reading the loss, which on a GPU would time only the kernel launches.
This wrapper changes nothing in its arithmetic; it:
  - moves the base model and every batch to --device (the adapters follow the base weights' device,
    ref_moe.MoELoRALinear.__init__);
  - synchronises the device before each perf_counter() the bench reads, so a step's time is the
    time until its GPU work has finished;
  - adds "device" and "device_name" to the bench's JSON line, and on CUDA "peak_mib": the peak
    memory torch allocated during each timed row (train rows in order: MoE-LoRA, then any other
    modes, then LoRA; then the forward row), the frozen base's copy for that row included;
  - with --in-place, gives the MoE-LoRA row the base model itself instead of a deep copy, so a
    7B-sized float32 base is held once (only with --no-alt-mode --skip-lora --skip-forward);
  - with --init-on-device, builds a random model (no --model-dir) directly on --device with
    N(0, initializer_range) weights, zero biases and unit norms, instead of ref_model's
    deterministic CPU initialisation, which takes minutes at 7B: the values do not change the
    timing, only the time it takes to start.
Float32 throughout, TF32 off (torch's default for matmuls), to match hilo's float32 WebGPU kernels.

  python3 scripts/torch-bench-device.py [--device cuda] [--bench-dir DIR] -- <torch_train_bench.py flags>
"""
import argparse
import os
import sys
import time
import types


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--in-place", action="store_true", help="no copy of the base for the (only) MoE-LoRA row")
    ap.add_argument("--init-on-device", action="store_true", help="random weights made on --device (fast start)")
    ap.add_argument("--bench-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                        "shared", "bench"))
    a, rest = ap.parse_known_args()
    if rest[:1] == ["--"]:
        rest = rest[1:]
    sys.path.insert(0, os.path.abspath(a.bench_dir))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch
    import torch_train_bench as tb

    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"--device {a.device}: torch {torch.__version__} sees no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def perf_counter():
        sync()
        return time.perf_counter()

    tb.time = types.SimpleNamespace(perf_counter=perf_counter)
    load_model, make_random, make_batches, emit = tb.rm.load_model, tb.rm.make_random, tb.make_batches, tb.emit
    tb.rm.load_model = lambda *args, **kw: load_model(*args, **kw).to(dev)
    tb.rm.make_random = lambda *args, **kw: make_random(*args, **kw).to(dev)
    if a.init_on_device:
        tb.rm.make_random = lambda cfg, seed=0, init="test", dtype=torch.float32: random_on_device(tb.rm, cfg, seed, dev, dtype)
    tb.make_batches = lambda *args, **kw: [b.to(dev) for b in make_batches(*args, **kw)]

    peaks = []

    def with_peak(fn):
        def run(*args, **kw):
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            out = fn(*args, **kw)
            if dev.type == "cuda":
                peaks.append(round(torch.cuda.max_memory_allocated(dev) / 2**20, 1))
            return out
        return run

    tb.time_train = with_peak(tb.time_train)
    tb.time_forward = with_peak(tb.time_forward)
    if a.in_place:
        if not all(f in rest for f in ("--no-alt-mode", "--skip-lora", "--skip-forward")):
            sys.exit("--in-place needs --no-alt-mode --skip-lora --skip-forward (one row on the base itself)")
        tb.copy = types.SimpleNamespace(deepcopy=lambda m: m)

    def emit_on_device(obj, path):
        obj["device"] = str(dev)
        obj["device_name"] = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
        if peaks:
            obj["peak_mib"] = peaks
        return emit(obj, path)

    tb.emit = emit_on_device
    tb.main(rest)


def random_on_device(rm, config_dict, seed, dev, dtype):
    """A random model of config_dict with its parameters allocated on dev (HF-style init)."""
    import torch
    torch.manual_seed(seed)
    if dev.type == "cpu":
        model = rm.build_model(dict(config_dict))
    else:
        with torch.device(dev):
            model = rm.build_model(dict(config_dict))
    std = float(model.config.initializer_range)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(t in name for t in ("layernorm", "norm.", "ln_1", "ln_2", "ln_f")) and name.endswith("weight"):
                p.fill_(1.0)
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.normal_(0.0, std)
    return model.to(dtype).eval()


if __name__ == "__main__":
    main()
