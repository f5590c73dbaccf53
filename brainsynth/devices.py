"""Choosing the compute device: ``auto``, ``cpu``, ``cuda`` (or ``cuda:N``) and ``mps``."""

from __future__ import annotations

import os

import torch

from brainsynth.errors import DeviceUnavailableError, InvalidParameterError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def available_devices() -> list[str]:
    """Return the devices usable on this machine, best first (``cpu`` always last)."""
    devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    devices.append("cpu")
    return devices


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn a device request into a :class:`torch.device` that exists here.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"`` picks CUDA, then MPS, then the CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` and
        ``"mps"`` ask for that device.

    Raises
    ------
    InvalidParameterError
        For an unknown device name.
    DeviceUnavailableError
        When the requested device does not exist on this machine.
    """
    text = str(device).lower()
    kind = text.split(":", 1)[0]
    if kind not in DEVICE_CHOICES:
        raise InvalidParameterError(f"device must be one of {', '.join(DEVICE_CHOICES)} or cuda:N (got {device!r})")
    if kind == "auto":
        return torch.device(available_devices()[0])
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError("device 'cuda' was requested but no CUDA GPU exists here; use 'auto' or 'cpu'")
        suffix = text.split(":", 1)[1] if ":" in text else "0"
        if not suffix.isdigit():
            raise InvalidParameterError(f"device must be cuda or cuda:N with N a GPU index (got {device!r})")
        index = int(suffix)
        if index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"device {text!r} was requested but only {torch.cuda.device_count()} CUDA GPU(s) exist"
            )
        return torch.device("cuda", index)
    if kind == "mps" and "mps" not in available_devices():
        raise DeviceUnavailableError("device 'mps' was requested but Apple MPS is not available; use 'auto' or 'cpu'")
    return torch.device(kind)


#: Releases with known faults in low-precision 3D convolutions on CUDA GPUs:
#: (precision, first affected cuDNN, first fixed cuDNN, torch versions affected or None for all, fault, reference).
KNOWN_LOW_PRECISION_ISSUES: tuple[tuple[str, int, int, tuple[str, ...] | None, str, str], ...] = (
    (
        "bfloat16",
        90800,
        91300,
        None,
        "bfloat16 3D convolutions can return wrong values",
        "https://github.com/pytorch/pytorch/issues/163539",
    ),
    (
        "bfloat16",
        0,
        91500,
        ("2.9.",),
        "bfloat16 3D convolutions take several times the memory of float32",
        "https://github.com/pytorch/pytorch/issues/166643",
    ),
)


def low_precision_issues(
    precision: str,
    cudnn_version: int | None = None,
    torch_version: str | None = None,
) -> list[str]:
    """Known faults of low-precision 3D convolutions with this cuDNN and PyTorch, as sentences.

    Parameters
    ----------
    precision : str
        ``"float32"``, ``"bfloat16"`` or ``"float16"``.
    cudnn_version : int, optional
        cuDNN's version number as :func:`torch.backends.cudnn.version` gives it (e.g. 91002 for 9.10.2);
        default: the one PyTorch uses here (none without CUDA, and then there is nothing to report).
    torch_version : str, optional
        Default: :data:`torch.__version__`.

    Returns
    -------
    list of str
        One sentence per known fault, naming the versions, what to do instead and where it is described.
    """
    if cudnn_version is None:
        if not torch.cuda.is_available():
            return []
        cudnn_version = torch.backends.cudnn.version()
    if not cudnn_version:
        return []
    torch_version = torch_version or torch.__version__
    found = []
    for affected, first, fixed, torches, fault, link in KNOWN_LOW_PRECISION_ISSUES:
        if precision != affected or not first <= cudnn_version < fixed:
            continue
        if torches is not None and not torch_version.startswith(torches):
            continue
        found.append(
            f"cuDNN {_cudnn_text(cudnn_version)} with PyTorch {torch_version}: {fault} ({link}); "
            f"use precision 'float16' or 'float32', or a PyTorch built with cuDNN {_cudnn_text(fixed)} "
            "or later"
        )
    return found


def _cudnn_text(version: int) -> str:
    return f"{version // 10000}.{version // 100 % 100}.{version % 100}"


#: oneDNN instruction-set limits (``ONEDNN_MAX_CPU_ISA``) under which its kernels still compute bfloat16 natively.
_ONEDNN_BFLOAT16_ISAS = ("ALL", "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16")


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX), where bfloat16 autocast is fast.

    The kernels must also be allowed those instructions: PyTorch's ``ATEN_CPU_CAPABILITY`` below AVX-512 or
    oneDNN's ``ONEDNN_MAX_CPU_ISA`` (``DNNL_MAX_CPU_ISA``) below AVX-512 BF16, as set to run or measure
    like a CPU without them, mean bfloat16 would be emulated.
    """
    if not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return False
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "ALL")).strip().upper()
    if limit not in _ONEDNN_BFLOAT16_ISAS and not limit.startswith("AVX10"):
        return False
    return any(_cpu_check(name) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def _cpu_check(name: str) -> bool:
    check = getattr(torch.cpu, name, None)
    try:
        return check is not None and bool(check())
    except RuntimeError:
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """Turn ``"auto"`` into a precision for ``device``; other values are returned unchanged.

    ``auto`` is bfloat16 on CPUs that compute it natively (AVX-512 BF16 or AMX: about three times
    faster than float32 for the demo model, see the README) and float32 everywhere else (CPUs that
    would emulate bfloat16, and GPUs, where one brain at a time is bound by kernel launches).
    """
    if precision != "auto":
        return precision
    return "bfloat16" if device.type == "cpu" and cpu_has_native_bfloat16() else "float32"


#: Precisions the networks can run in; float32 is exact, the others use autocast.
PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def weight_layers(network: torch.nn.Module) -> list[torch.nn.Module]:
    """The convolution and linear layers of a network, which hold nearly all of its weights."""
    kinds = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear)
    return [m for m in network.modules() if isinstance(m, kinds)]


def stored_weight_dtype(network: torch.nn.Module) -> str:
    """The dtype a network's convolution and linear weights are stored in, e.g. ``"float32"``."""
    return str(weight_layers(network)[0].weight.dtype).removeprefix("torch.")


def store_weights(network: torch.nn.Module, dtype: str) -> None:
    """Store a network's convolution and linear weights in ``dtype`` (normalisation layers stay float32)."""
    if dtype not in PRECISIONS:
        raise InvalidParameterError(f"weight dtype must be one of {', '.join(PRECISIONS)} (got {dtype!r})")
    for layer in weight_layers(network):
        layer.to(PRECISIONS[dtype] or torch.float32)
