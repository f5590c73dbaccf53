"""Choosing the compute device: ``auto``, ``cpu``, ``cuda`` (or ``cuda:N``) and ``mps``."""

from __future__ import annotations

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
