"""`dppo-robot bench inference`: batch-1 latency of the sampling chain, three ways, against the floor.

For each reference configuration (configs.py) and thread count:
- torch_eager: DiffusionPolicy.sample under torch.inference_mode with torch.set_num_threads(n),
  environment units in and out (sample_env_units: numpy normalisation, torch chain, numpy
  denormalisation).
- ort_per_step: one denoising step exported as an ONNX graph (x [B, Tp, Da], sampling index
  i [B], normalised state [B, To, Do] or, for pixel policies, the encoded features, and for
  DDPM the step's noise z -> x_next), called S times from a Python loop that normalises the
  observation, runs the image encoder graph once per network and denormalises the actions.
  One graph per network that serves steps (actor, actor_ft).
- ort_unrolled: the bundle's whole-chain graph (export_chain_onnx) in one session.run.
Every ONNX session runs on the CPU provider with intra_op_num_threads = n, inter_op 1.

Each ONNX method is checked once per configuration and thread count against the torch chain
on the same inputs (max_abs_diff_vs_torch, environment units). Rows carry p50/p99/mean
latency, the chain's FLOPs and weight bytes (flops.py) and the floor they imply on this
machine (machine_floor.py). Iterations adapt to a per-row time budget (at least min_iters);
the three methods of one configuration and thread count are timed in alternating blocks of
50 calls so that load from other processes does not fall on one method only. Timings are wall-clock on
a machine that may be shared: compare p50s, treat p99 as indicative.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from dppo_robot.bench.configs import CONFIG_NAMES, BenchConfig, get_config
from dppo_robot.bench.flops import ChainCost, chain_cost
from dppo_robot.bench.machine_floor import OtherLoad, floor_ms, measure_machine, read_bandwidth_gbps, torch_threads
from dppo_robot.bundle.onnx_chain import OPSET, example_inputs, export_chain_onnx
from dppo_robot.model.diffusion import DiffusionPolicy
from dppo_robot.model.env_units import sample_env_units
from dppo_robot.model.normalization import Normalization

METHODS = ("torch_eager", "ort_per_step", "ort_unrolled")
DEFAULT_OUT = Path("reports/bench/inference.json")
AGREE_TOL = 1e-4  # environment units, as the bundle export's verification


# --------------------------------------------------------------------- per-step graphs
class StepGraph(nn.Module):
    """One eval-mode denoising step: x [B, Tp, Da], i int64 [B], c, (z) -> x_next [B, Tp, Da].

    c is the normalised state [B, To, Do], or the encoded features [B, F] of a pixel policy.
    z [B, Tp, Da] is the step's noise (DDPM only; clamped, scaled by the std floored at 1e-3,
    none at t = 0, exactly as DiffusionPolicy.sample in eval mode).
    """

    def __init__(self, policy: DiffusionPolicy, network: nn.Module, features: bool) -> None:
        super().__init__()
        self.policy = policy
        self.network = network
        self.features = features

    def forward(self, x: torch.Tensor, i: torch.Tensor, c: torch.Tensor, *z: torch.Tensor) -> torch.Tensor:
        p = self.policy
        cond = {"features": c} if self.features else {"state": c}
        mean, logvar = p.p_mean_var(x, i, cond, self.network, None)
        if p.use_ddim:
            return mean
        std = torch.exp(0.5 * logvar).clamp(min=1e-3)
        noisy = mean + std * z[0].clamp(-p.randn_clip_value, p.randn_clip_value)
        return torch.where((p.step_t[i] > 0).view(-1, 1, 1), noisy, mean)


class EncodeGraph(nn.Module):
    """Pixel policies: normalised state [B, To, Do], images uint8 -> features [B, F] (once per sample)."""

    def __init__(self, network: nn.Module, cameras: list[str]) -> None:
        super().__init__()
        self.network = network
        self.cameras = cameras

    def forward(self, state: torch.Tensor, *images: torch.Tensor) -> torch.Tensor:
        return self.network.encode({"state": state, "images": dict(zip(self.cameras, images))})


def _export(module: nn.Module, args: tuple, names: list[str], output: str) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            args,
            buf,
            input_names=names,
            output_names=[output],
            dynamic_axes={n: {0: "B"} for n in [*names, output]},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return buf.getvalue()


def _net_name(policy: DiffusionPolicy, net: nn.Module) -> str:
    return "actor_ft" if net is policy.actor_ft else "actor"


def export_step_graphs(bc: BenchConfig, policy: DiffusionPolicy) -> dict:
    """{"step": {net: onnx bytes}, "encode": {net: onnx bytes}, "nets": [net of step i]}."""
    pixel = bool(bc.spec.cameras)
    cams = [c.name for c in bc.spec.cameras]
    obs, noise, images = example_inputs(policy, bc.norm, bc.spec, bc.policy.cond_steps, batch=2)
    state = torch.from_numpy(bc.norm.normalize_obs(obs))
    imgs = [torch.from_numpy(images[c]) for c in cams]
    x = torch.from_numpy(noise[:, 0])
    i = torch.zeros(2, dtype=torch.long)
    out: dict = {"step": {}, "encode": {}, "nets": [], "pixel": pixel, "cameras": cams}
    for s in range(policy.n_steps):
        net = policy.network_for(s)
        name = _net_name(policy, net)
        out["nets"].append(name)
        if name in out["step"]:
            continue
        if pixel:
            enc = EncodeGraph(net, cams)
            out["encode"][name] = _export(enc, (state, *imgs), ["state", *[f"image_{c}" for c in cams]], "features")
            with torch.no_grad():
                c = enc(state, *imgs)
        else:
            c = state
        args = (x, i, c) if policy.use_ddim else (x, i, c, torch.from_numpy(noise[:, 0]))
        names = ["x", "i", "c"] if policy.use_ddim else ["x", "i", "c", "z"]
        out["step"][name] = _export(StepGraph(policy, net, pixel), args, names, "x_next")
    return out


def _session(data: bytes, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


class PerStepRunner:
    """The Python loop of ort_per_step: obs, noise, images (env units) -> actions (env units)."""

    def __init__(self, graphs: dict, policy: DiffusionPolicy, norm: Normalization, threads: int) -> None:
        self.norm = norm
        self.nets: list[str] = graphs["nets"]
        self.pixel: bool = graphs["pixel"]
        self.cameras: list[str] = graphs["cameras"]
        self.ddim = policy.use_ddim
        self.final_clip = policy.final_action_clip_value
        self.step = {k: _session(v, threads) for k, v in graphs["step"].items()}
        self.encode = {k: _session(v, threads) for k, v in graphs["encode"].items()}
        self._idx: dict[int, list[np.ndarray]] = {}

    def _indices(self, b: int) -> list[np.ndarray]:
        if b not in self._idx:
            self._idx[b] = [np.full((b,), s, dtype=np.int64) for s in range(len(self.nets))]
        return self._idx[b]

    def __call__(self, obs: np.ndarray, noise: np.ndarray, images: dict[str, np.ndarray] | None = None) -> np.ndarray:
        state = self.norm.normalize_obs(obs)
        x = noise[:, 0]
        idx = self._indices(obs.shape[0])
        feats: dict[str, np.ndarray] = {}
        for s, name in enumerate(self.nets):
            if self.pixel:
                if name not in feats:
                    feeds = {"state": state, **{f"image_{c}": images[c] for c in self.cameras}}
                    feats[name] = self.encode[name].run(None, feeds)[0]
                c = feats[name]
            else:
                c = state
            feeds = {"x": x, "i": idx[s], "c": c}
            if not self.ddim:
                feeds["z"] = noise[:, 1 + s]
            x = self.step[name].run(None, feeds)[0]
        if self.final_clip is not None:
            x = np.clip(x, -self.final_clip, self.final_clip)
        return self.norm.denormalize_action(x)


# --------------------------------------------------------------------- timing
def _n_iters(est_s: float, iters: int, budget_s: float | None, min_iters: int) -> int:
    if budget_s is None or est_s <= 0:
        return iters
    return max(min(iters, min_iters), min(iters, int(budget_s / est_s)))


def time_calls(
    fn: Callable[[], object], iters: int, warmup: int, budget_s: float | None = None, min_iters: int = 30
) -> np.ndarray:
    """Per-call seconds of fn after warmup; iters shrinks to fit budget_s (never below min_iters)."""
    return time_interleaved({"fn": fn}, iters, warmup, budget_s, min_iters)["fn"]


def time_interleaved(
    fns: dict[str, Callable[[], object]],
    iters: int,
    warmup: int,
    budget_s: float | None = None,
    min_iters: int = 30,
    block: int = 50,
    settle: int = 2,
) -> dict[str, np.ndarray]:
    """Per-call seconds of each fn, timed in alternating blocks of `block` calls.

    Alternating spreads load from other processes over the methods instead of letting it land
    on one of them. Each block starts with `settle` untimed calls, so the timed calls see the
    method's own weights in cache and its own thread pool awake. Blocks must not be short: on
    the 2-core test machine, blocks of 10 made 2-thread ORT chains 2x slower than sequential
    timing (3.2 -> 7.3 ms), blocks of 50 did not. Each fn gets `iters` calls, fewer to fit
    budget_s seconds (estimated from its warm-up), never fewer than min_iters.
    """
    want: dict[str, int] = {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        for _ in range(max(warmup, 1)):
            fn()
        want[name] = _n_iters((time.perf_counter() - t0) / max(warmup, 1), iters, budget_s, min_iters)
    times: dict[str, list[float]] = {name: [] for name in fns}
    while any(len(times[n]) < want[n] for n in fns):
        for name, fn in fns.items():
            k = min(block, want[name] - len(times[name]))
            if k <= 0:
                continue
            for _ in range(settle):
                fn()
            for _ in range(k):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {name: np.asarray(v) for name, v in times.items()}


def _maxdiff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def _row(
    bc: BenchConfig,
    method: str,
    threads: int,
    times: np.ndarray,
    cost: ChainCost,
    machine: dict,
    bw_ws: float,
    diff: float,
) -> dict:
    ms = times * 1e3
    gemm = machine["gemm_gflops"][str(threads)]
    dram = machine["bandwidth_gbps"][str(threads)]
    return {
        "config": bc.name,
        "method": method,
        "threads": threads,
        "batch": 1,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
        "flops": cost.flops,
        "weight_bytes": cost.weight_bytes,
        "weight_bytes_read": cost.weight_bytes_read,
        "network_evals": cost.network_evals,
        "floor_ms": floor_ms(cost.flops, cost.weight_bytes_read, gemm, bw_ws),
        "floor_dram_ms": floor_ms(cost.flops, cost.weight_bytes_read, gemm, dram),
        "bandwidth_ws_gbps": round(bw_ws, 2),
        "n_iters": len(times),
        "max_abs_diff_vs_torch": diff,
    }


# --------------------------------------------------------------------- benchmark
def run_benchmark(
    configs: Sequence[str | BenchConfig],
    threads: Sequence[int] = (1, 2),
    iters: int = 200,
    warmup: int = 10,
    *,
    machine: dict | None = None,
    time_budget_s: float | None = 10.0,
    min_iters: int = 30,
    quick: bool = False,
    log: Callable[[str], None] | None = None,
) -> list[dict]:
    """Rows {config, method, threads, batch, p50_ms, p99_ms, mean_ms, flops, weight_bytes, floor_ms, ...}."""
    threads = list(threads)
    machine = machine or measure_machine(threads, quick=quick)
    log = log or (lambda _msg: None)
    rows: list[dict] = []
    for item in configs:
        bc = get_config(item) if isinstance(item, str) else item
        policy = bc.build()
        to = bc.policy.cond_steps
        log(f"{bc.name}: counting FLOPs and exporting graphs")
        cost = chain_cost(policy, bc.norm, bc.spec, to, batch=1)
        unrolled = export_chain_onnx(policy, bc.norm, bc.spec, to)
        steps = export_step_graphs(bc, policy)
        obs, noise, images = example_inputs(policy, bc.norm, bc.spec, to, batch=1, seed=1234)
        feeds = {"obs": obs, "noise": noise, **{f"image_{k}": v for k, v in images.items()}}
        for n in threads:
            load = OtherLoad()
            bw_args = (n, cost.weight_bytes, *((0.02, 2) if quick else (0.05, 10)))
            bw_ws = read_bandwidth_gbps(*bw_args)
            with torch_threads(n), torch.inference_mode():
                eager = functools.partial(sample_env_units, policy, bc.norm, obs, noise, images)
                per_step = functools.partial(PerStepRunner(steps, policy, bc.norm, n), obs, noise, images)
                chain = functools.partial(_session(unrolled, n).run, ["actions"], feeds)
                ref = eager()
                diffs = {
                    "torch_eager": 0.0,
                    "ort_per_step": _maxdiff(per_step(), ref),
                    "ort_unrolled": _maxdiff(chain()[0], ref),
                }
                fns = {"torch_eager": eager, "ort_per_step": per_step, "ort_unrolled": chain}
                times = time_interleaved(fns, iters, warmup, time_budget_s, min_iters)
            # best of a reading before and after the timings (load from other processes only slows it
            # down); a working set cannot be read slower than streaming from DRAM, so that bounds it
            bw_ws = max(bw_ws, read_bandwidth_gbps(*bw_args), machine["bandwidth_gbps"][str(n)])
            other = load.cores()
            for method in METHODS:
                rows.append(_row(bc, method, n, times[method], cost, machine, bw_ws, diffs[method]))
                rows[-1]["other_load_cores"] = other
            for r in rows[-3:]:
                r["speedup_vs_torch_eager"] = rows[-3]["p50_ms"] / r["p50_ms"]
                log(
                    f"{bc.name} threads={n} {r['method']}: p50 {r['p50_ms']:.3f} ms p99 {r['p99_ms']:.3f} ms "
                    f"(floor {r['floor_ms']:.3f} ms, n={r['n_iters']}, diff {r['max_abs_diff_vs_torch']:.2g})"
                )
    return rows


def notes_for(rows: list[dict]) -> list[str]:
    """Where ort_unrolled does not beat torch_eager (p50), and where a method disagrees with torch."""
    notes = []
    by = {(r["config"], r["threads"], r["method"]): r for r in rows}
    for (cfg, n, method), r in by.items():
        if method == "ort_unrolled" and (cfg, n, "torch_eager") in by:
            t = by[(cfg, n, "torch_eager")]
            if r["p50_ms"] >= t["p50_ms"]:
                other = r.get("other_load_cores")
                why = ""
                if other is not None and other >= 0.25:
                    why = (
                        f"; other processes kept {other:.2f} cores busy while it was measured, so with {n} "
                        f"thread(s) on {os.cpu_count()} cores the timings are contended"
                    )
                notes.append(
                    f"{cfg} threads={n}: ort_unrolled p50 {r['p50_ms']:.3f} ms is not faster than torch_eager "
                    f"{t['p50_ms']:.3f} ms{why}"
                )
        if r["max_abs_diff_vs_torch"] > AGREE_TOL or not np.isfinite(r["max_abs_diff_vs_torch"]):
            notes.append(
                f"{cfg} threads={n} {method}: actions differ from the torch chain by {r['max_abs_diff_vs_torch']:.3g} "
                f"> {AGREE_TOL:g}"
            )
    return notes


def write_json(doc: dict, path: str | Path) -> Path:
    """Write doc as JSON atomically (temporary sibling, then rename); creates parent directories."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


TABLE_COLUMNS = [
    "config",
    "thr",
    "method",
    "p50 ms",
    "p99 ms",
    "floor ms",
    "p50/floor",
    "vs torch",
    "MFLOP",
    "W MB",
    "n",
    "diff",
    "other",
]


def _cells(r: dict) -> list[str]:
    return [
        r["config"],
        str(r["threads"]),
        r["method"],
        f"{r['p50_ms']:.3f}",
        f"{r['p99_ms']:.3f}",
        f"{r['floor_ms']:.3f}",
        f"{r['p50_ms'] / r['floor_ms']:.1f}x",
        f"{r.get('speedup_vs_torch_eager', float('nan')):.2f}x",
        f"{r['flops'] / 1e6:.1f}",
        f"{r['weight_bytes'] / 1e6:.1f}",
        str(r["n_iters"]),
        f"{r['max_abs_diff_vs_torch']:.1e}",
        "?" if r.get("other_load_cores") is None else f"{r['other_load_cores']:.2f}",
    ]


def format_table(rows: list[dict]) -> str:
    """Plain-text table of the rows."""
    lines = [_cells(r) for r in rows]
    widths = [max([len(h)] + [len(line[k]) for line in lines]) for k, h in enumerate(TABLE_COLUMNS)]
    fmt = "  ".join(f"{{:<{w}}}" if k < 3 else f"{{:>{w}}}" for k, w in enumerate(widths))
    out = [fmt.format(*TABLE_COLUMNS), fmt.format(*("-" * w for w in widths))]
    out.extend(fmt.format(*line) for line in lines)
    return "\n".join(out)


def machine_line(m: dict) -> str:
    return (
        f"{m['cpu_model']}, {m['logical_cpus']} CPUs; torch {m['torch']}, onnxruntime {m['onnxruntime']}; "
        f"GEMM GFLOP/s {m['gemm_gflops']}, GEMV GFLOP/s {m['gemv_gflops']}, DRAM read GB/s {m['bandwidth_gbps']}; "
        f"cores used by other processes during the run: {m.get('other_load_cores', '?')} "
        "(per row: column 'other')"
    )


def print_report(doc: dict) -> None:
    """The table (rich when installed, else plain text), the machine line and the notes."""
    head = machine_line(doc["machine"])
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text fallback
        print(format_table(doc["rows"]))
        print(head)
        for note in doc["notes"]:
            print("note:", note)
        return
    table = Table(title="dppo-robot bench inference (batch 1)", caption=head)
    for k, c in enumerate(TABLE_COLUMNS):
        table.add_column(c, justify="left" if k < 3 else "right")
    for r in doc["rows"]:
        table.add_row(*_cells(r))
    console = Console(width=max(150, Console().width))
    console.print(table)
    for note in doc["notes"]:
        console.print(f"note: {note}")


# --------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report (default {DEFAULT_OUT})")
    parser.add_argument(
        "--configs", nargs="+", choices=CONFIG_NAMES, default=list(CONFIG_NAMES), help="configurations (default all)"
    )
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="thread counts (default 1 2)")
    parser.add_argument("--iters", type=int, default=200, help="timed iterations per row (default 200)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed warm-up calls per row (default 10)")
    parser.add_argument(
        "--time-budget",
        type=float,
        default=10.0,
        help="seconds per row; iterations shrink to fit, never below --min-iters (default 10)",
    )
    parser.add_argument("--min-iters", type=int, default=30, help="fewest timed iterations per row (default 30)")
    parser.add_argument("--quick", action="store_true", help="tiny iteration counts and quick machine probes (tests)")


def _loadavg() -> float | None:
    """1-minute load average: other work on the machine shows up as timing noise."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def run(args: argparse.Namespace) -> int:
    threads = list(args.threads)
    if any(n < 1 for n in threads):
        print(f"error: --threads must be >= 1, got {threads}")
        return 2
    iters, warmup, budget, min_iters = args.iters, args.warmup, args.time_budget, args.min_iters
    if args.quick:
        iters, warmup, budget, min_iters = min(iters, 3), 1, None, 1
    if iters < 1 or warmup < 0:
        print("error: --iters must be >= 1 and --warmup >= 0")
        return 2
    t0 = time.perf_counter()
    load_start, whole_run = _loadavg(), OtherLoad()
    machine = measure_machine(threads, quick=args.quick)
    rows = run_benchmark(
        args.configs,
        threads,
        iters,
        warmup,
        machine=machine,
        time_budget_s=budget,
        min_iters=min_iters,
        quick=args.quick,
        log=lambda msg: print(msg, flush=True),
    )
    machine["loadavg_1min"] = {"start": load_start, "end": _loadavg()}
    machine["other_load_cores"] = whole_run.cores()
    doc = {
        "machine": machine,
        "settings": {
            "configs": list(args.configs),
            "threads": threads,
            "iters": iters,
            "warmup": warmup,
            "time_budget_s": budget,
            "min_iters": min_iters,
            "quick": bool(args.quick),
            "batch": 1,
            "floor": "max(flops / gemm_rate, weight_bytes_read / working-set read bandwidth); "
            "floor_dram_ms uses the DRAM read bandwidth",
        },
        "rows": rows,
        "notes": notes_for(rows),
        "elapsed_s": round(time.perf_counter() - t0, 1),
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    path = write_json(doc, args.out)
    print_report(doc)
    print(f"wrote {path}")
    return 0
