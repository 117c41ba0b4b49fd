"""Choice of onnxruntime execution providers: TensorRT, CUDA, CPU by availability and config."""

from __future__ import annotations

import onnxruntime as ort

from dppo_robot.runtime.errors import ProviderError

PREFERENCE = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


def resolve_providers(requested: list[str] | None, available: list[str] | None = None) -> list[str]:
    """Providers to use, in priority order.

    requested None or ["auto"]: every provider of PREFERENCE that is available. Otherwise the
    named providers (aliases tensorrt/cuda/cpu allowed); a requested provider that is not
    available is an error naming it and the available ones. CPU is always appended last as the
    fallback for ops the accelerators do not take.
    """
    available = list(available if available is not None else ort.get_available_providers())
    if not requested or requested == ["auto"]:
        chosen = [p for p in PREFERENCE if p in available]
    else:
        chosen = []
        for r in requested:
            name = ALIASES.get(r.lower(), r)
            if name not in available:
                raise ProviderError(
                    f"execution provider {r!r} is not available in this onnxruntime build; "
                    f"available: {available} (install onnxruntime-gpu for CUDA/TensorRT)"
                )
            if name not in chosen:
                chosen.append(name)
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen
