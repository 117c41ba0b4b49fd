"""What this machine can do at best: sustained fp32 GEMM rate and memory read bandwidth.

The latency floor of one chain at a given thread count is

    floor_ms = max(flops / gemm_flops_per_s, weight_bytes_read / bandwidth) * 1e3

with weight_bytes_read = the parameter bytes of every network evaluation of the chain (the
denoiser's weights are re-read at each of its S steps; see flops.py). At batch 1 every layer
is a matrix-vector product, so the memory term dominates by far: each weight is used for
one multiply-add per sample and the GEMM peak is never approached.

How honest the memory term is depends on where the weights live:
- bandwidth_gbps (DRAM) is measured by streaming a buffer far larger than the last-level
  cache. If the chain's weights do not fit in cache, that is the right rate and the floor is
  a true (if optimistic: GEMV kernels rarely reach a stream read's rate) lower bound.
- The reference policies' weights (roughly 1-30 MB) can fit in L2/L3 between steps, and then
  the DRAM floor is pessimistic (not a lower bound at all). The benchmark therefore also
  measures the read bandwidth of a buffer of exactly the chain's weight size, re-read like the
  chain re-reads its weights (working-set bandwidth), and uses that for floor_ms; the DRAM
  floor is reported beside it as floor_dram_ms. On a shared or virtualised machine the cache
  share is not guaranteed, so the working-set rate is itself an optimistic estimate. A
  working-set reading below the DRAM rate can only be load from other processes, so the
  benchmark takes the larger of the two.
- The GEMM rate is the best sustained 1024^3 fp32 matmul; it bounds compute from below.
  Per-op dispatch overhead (microseconds per layer) is not in the floor at all.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Callable, Iterator

import torch


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch ops on n intra-op threads, restoring the previous setting afterwards."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _best_time(fn: Callable[[], object], min_time_s: float, repeats: int) -> float:
    """Best per-call seconds over `repeats` runs of at least min_time_s each."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= min_time_s:
                break
        best = min(best, dt / n)
    return best


def gemm_gflops(threads: int, n: int = 1024, min_time_s: float = 0.2, repeats: int = 5) -> float:
    """Sustained fp32 GEMM rate (n x n @ n x n) in GFLOP/s on `threads` threads."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    out = torch.empty(n, n)
    with torch_threads(threads), torch.inference_mode():
        t = _best_time(lambda: torch.matmul(a, b, out=out), min_time_s, repeats)
    return 2.0 * n**3 / t / 1e9


def gemv_gflops(threads: int, n: int = 1024, min_time_s: float = 0.1, repeats: int = 5) -> float:
    """Batch-1 rate: [1, n] @ [n, n] (n = 1024, a 4 MB weight) in GFLOP/s; memory/cache bound."""
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(1, n, generator=g), torch.randn(n, n, generator=g)
    with torch_threads(threads), torch.inference_mode():
        t = _best_time(lambda: torch.matmul(x, w), min_time_s, repeats)
    return 2.0 * n * n / t / 1e9


def read_bandwidth_gbps(threads: int, nbytes: int = 256 << 20, min_time_s: float = 0.2, repeats: int = 5) -> float:
    """Read bandwidth in GB/s (1e9 B/s) of summing an fp32 buffer of nbytes, re-read repeatedly.

    nbytes far above the last-level cache gives the DRAM rate; nbytes equal to a chain's
    weights gives the rate at which that chain can re-read them (cache-resident or not).
    """
    n = max(nbytes // 4, 1024)
    a = torch.ones(n)
    with torch_threads(threads), torch.inference_mode():
        t = _best_time(lambda: a.sum(), min_time_s, repeats)
    return n * 4 / t / 1e9


class OtherLoad:
    """CPU cores used by other processes over an interval: machine busy time (/proc/stat) minus ours.

    Timings on a shared machine are only as good as this is small: at 2 threads on 2 cores,
    any other runnable process stalls one of our threads and with it every parallel op.
    """

    def __init__(self) -> None:
        self._t0 = time.perf_counter()
        self._busy0 = self._machine_busy_s()
        self._own0 = self._own_cpu_s()

    @staticmethod
    def _machine_busy_s() -> float | None:
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
        return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own_cpu_s() -> float:
        t = os.times()
        return t.user + t.system

    def cores(self) -> float | None:
        """Average cores other processes kept busy since construction (None where unknown)."""
        busy = self._machine_busy_s()
        dt = time.perf_counter() - self._t0
        if busy is None or self._busy0 is None or dt <= 0:
            return None
        other = (busy - self._busy0) - (self._own_cpu_s() - self._own0)
        return round(max(other, 0.0) / dt, 2)


def floor_ms(flops: float, bytes_read: float, gemm_gflops_per_s: float, bandwidth_gbps: float) -> float:
    """Latency floor in ms: the slower of compute at the GEMM peak and streaming the weights."""
    return 1e3 * max(flops / (gemm_gflops_per_s * 1e9), bytes_read / (bandwidth_gbps * 1e9))


def measure_machine(threads: list[int], quick: bool = False) -> dict:
    """CPU model, versions, and per-thread-count GEMM, GEMV and DRAM read rates."""
    import numpy as np
    import onnxruntime as ort

    t_min, reps = (0.02, 2) if quick else (0.2, 5)
    dram = (64 << 20) if quick else (512 << 20)
    out: dict = {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "gemm_gflops": {},
        "gemv_gflops": {},
        "bandwidth_gbps": {},
        "dram_buffer_bytes": dram,
    }
    for n in threads:
        out["gemm_gflops"][str(n)] = round(gemm_gflops(n, min_time_s=t_min, repeats=reps), 2)
        out["gemv_gflops"][str(n)] = round(gemv_gflops(n, min_time_s=t_min / 2, repeats=reps), 2)
        out["bandwidth_gbps"][str(n)] = round(read_bandwidth_gbps(n, dram, min_time_s=t_min, repeats=reps), 2)
    return out
