"""How fast can an exact time-safe k-NN be on this CPU? The matrix-product floor.

Every exact method computes the similarity of each post with every earlier post: N^2/2 dot
products of dimension D, i.e. N^2 * D floating-point operations. This measures the
sustained matrix-product rate of the machine for float32 (numpy/BLAS, what
``time_safe_neighbours(method="exact")`` uses) and for bfloat16 (torch, AMX/AVX-512-BF16 when
the CPU has it), and prints the lower bound N^2 * D / rate for the SMPD size, before any
top-k selection or masking.

    python -m benchmarks.bench_gemm_floor [--n 486194] [--dim 512] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits


def rate(matmul, a, b, repeat: int = 5) -> float:
    """Sustained flop/s of ``matmul(a, b)`` for a (m, d) and b (n, d)."""
    matmul(a, b)
    t0 = time.perf_counter()
    for _ in range(repeat):
        matmul(a, b)
    return 2 * a.shape[0] * b.shape[0] * a.shape[1] * repeat / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=486_194)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4096, args.dim), dtype=np.float32)
    b = rng.standard_normal((16384, args.dim), dtype=np.float32)
    flops = float(args.n) ** 2 * args.dim  # N^2/2 pairs x 2 flops x D
    rows = []
    with threadpool_limits(args.threads):
        rows.append(("float32, numpy/BLAS", rate(lambda x, y: x @ y.T, a, b)))
    try:
        import torch
        torch.set_num_threads(args.threads)
        ta, tb = torch.from_numpy(a).bfloat16(), torch.from_numpy(b).bfloat16()
        rows.append(("bfloat16, torch (oneDNN)", rate(lambda x, y: x @ y.T, ta, tb)))
    except ImportError:
        pass
    print(f"| precision | TFLOP/s on {args.threads} threads | floor for N={args.n:,}, D={args.dim} (s) |")
    print("|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r / 1e12:.2f} | {flops / r:.0f} |")


if __name__ == "__main__":
    main()
