#!/usr/bin/python3
"""numpy's eigvalsh of W^T W (or W W^T) for a few small weight-like matrices: the reference the
LAPACK and JS spectrum paths of the alpha-hill probe (src/probe/spectrum.ts, hill.ts) must match.

    /usr/bin/python3 scripts/eigvalsh-reference.py > test/fixtures/probe/eigvalsh.json

Each case stores W itself (row-major, float64 values that are exact in bfloat16 or float32, as
stored checkpoints are), the Gram side numpy used (the smaller one), its eigenvalues ascending
and the Hill fit on them (scripts/hill_reference.py, shared with alpha-hill-reference.py), so the tests check
the spectrum and the fit without Python.
"""
import json
import sys

import numpy as np

from hill_reference import EVALS_THRESH, hill_fit


def bf16(x):
    """Round float32 values to bfloat16 (round to nearest even), returned as float64."""
    b = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    b = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16
    return b.astype(np.uint32).view(np.float32).astype(np.float64)


def case(name, w):
    rows, cols = w.shape
    gram = w.T @ w if cols <= rows else w @ w.T
    eigs = np.maximum(np.linalg.eigvalsh(gram), 0.0)
    return {"name": name, "rows": rows, "cols": cols, "data": w.ravel().tolist(),
            "eigenvalues": eigs.tolist(), "fit": {k: v for k, v in hill_fit(eigs).items() if k != "nonzero"}}


def main():
    rng = np.random.default_rng(28)
    # heavy-tailed columns (Student t, 3 dof), the kind of spectrum a trained layer has; bf16 as stored
    tall = bf16(rng.standard_t(3, size=(96, 40)) * 0.05)
    # wide: the W W^T side; float32 values
    wide = rng.normal(size=(24, 70)).astype(np.float32).astype(np.float64) * np.geomspace(1, 20, 70)
    # rank 12 of 32: twenty eigenvalues at zero (round-off), dropped by the threshold
    low = (rng.normal(size=(32, 12)) @ rng.normal(size=(12, 32))).astype(np.float32).astype(np.float64)
    cases = [case("tall-bf16-t3", tall), case("wide-f32-scaled", wide), case("square-rank12", low)]
    json.dump({"generator": "scripts/eigvalsh-reference.py (numpy %s)" % np.__version__,
               "evals_thresh": EVALS_THRESH, "cases": cases}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
