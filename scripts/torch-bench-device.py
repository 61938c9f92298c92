"""Run ../shared/bench/torch_train_bench.py on a torch device (CUDA on a GPU machine).

The reference bench builds its model, adapters and batches on the CPU and times each step with
time.perf_counter() before reading the loss, which on a GPU would time only the kernel launches.
This wrapper changes nothing in its arithmetic; it:
  - moves the base model and every batch to --device (the adapters follow the base weights' device,
    ref_moe.MoELoRALinear.__init__);
  - synchronises the device before each perf_counter() the bench reads, so a step's time is the
    time until its GPU work has finished;
  - adds "device" and "device_name" to the bench's JSON line.
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
    tb.make_batches = lambda *args, **kw: [b.to(dev) for b in make_batches(*args, **kw)]

    def emit_on_device(obj, path):
        obj["device"] = str(dev)
        obj["device_name"] = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
        return emit(obj, path)

    tb.emit = emit_on_device
    tb.main(rest)


if __name__ == "__main__":
    main()
