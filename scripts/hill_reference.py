"""The Hill fit both numpy reference scripts use (alpha-hill-reference.py, eigvalsh-reference.py):
eigenvalues <= 1e-5 dropped; every eigenvalue but the largest is a candidate x_min; Hill alpha =
1 + n / sum(ln(lambda_tail / x_min)); KS distance D = max_k |1 - (lambda_k / x_min)^(1 - alpha) - k / n|;
candidates with alpha <= 1 or a zero log-sum skipped; the first minimum of D wins.
"""
import numpy as np

EVALS_THRESH = 1e-5


def hill_fit(eigs):
    """The fit on ascending eigenvalues `eigs`, or None where no candidate qualifies."""
    nz = eigs[eigs > EVALS_THRESH]
    N = len(nz)
    logs = np.log(nz)
    best = None
    for i in range(N - 1):
        n = N - i
        denom = np.sum(logs[i:]) - n * logs[i]
        if not denom > 0:
            continue
        alpha = 1.0 + n / denom
        ks = np.max(np.abs(1.0 - (nz[i:] / nz[i]) ** (1.0 - alpha) - np.arange(n) / n))
        if best is None or ks < best["ks"]:
            best = {"alpha": float(alpha), "xmin": float(nz[i]), "ks": float(ks), "tail": int(n), "nonzero": int(N)}
    return best
