"""Reading weight files safely and checking their hashes.

Weights come from safetensors files or from PyTorch checkpoints read with
``torch.load(weights_only=True)``, which refuses any pickle that would run code.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from brainsynth.errors import ChecksumError, ModelLoadError, ModelNotFoundError

StateDict = dict[str, torch.Tensor]

#: safetensors' names of the tensor types it stores.
_SAFETENSORS_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}

#: Keys under which training scripts commonly nest the weights inside a checkpoint dictionary.
_NESTED_KEYS = ("state_dict", "model", "model_state_dict", "network", "ema")


def hash_file(path: str | Path, algorithm: str = "sha256", *, chunk_size: int = 1 << 22) -> str:
    """Return the hex digest of a file.

    Parameters
    ----------
    path : str or Path
        File to hash.
    algorithm : str
        Any :mod:`hashlib` algorithm name (``"sha256"``, ``"md5"``).
    """
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify_hash(path: str | Path, expected: str, algorithm: str = "sha256") -> str:
    """Check a file's digest and return it.

    Raises
    ------
    ModelNotFoundError
        If the file does not exist.
    ChecksumError
        If the digest differs from ``expected``.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"weight file {path} is missing")
    actual = hash_file(path, algorithm)
    if actual.lower() != expected.lower():
        raise ChecksumError(
            f"weight file {path} is damaged or not the expected file: its {algorithm} is {actual}, "
            f"the model declares {expected}"
        )
    return actual


def _unwrap(obj: object, path: Path) -> StateDict:
    if isinstance(obj, Mapping):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        for key in _NESTED_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                return _unwrap(obj[key], path)
    raise ModelLoadError(f"{path} is not a checkpoint of network weights (no tensor dictionary found in it)")


def read_state_dict(path: str | Path) -> StateDict:
    """Read network weights from a safetensors file or a PyTorch checkpoint, without running code.

    Parameters
    ----------
    path : str or Path
        A ``.safetensors`` file, or a ``.pt``/``.pth`` checkpoint holding a state dict (possibly under
        a ``state_dict`` or ``model`` key).

    Returns
    -------
    dict
        Tensor name to tensor, on the CPU.

    Raises
    ------
    ModelNotFoundError
        If the file does not exist.
    ModelLoadError
        If the file is truncated, not a checkpoint, or a pickle that carries code.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"weight file {path} is missing")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelLoadError(f"{path} is not a readable safetensors file (truncated or corrupt?): {exc}") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(
            f"{path} was refused: it is a pickle that carries code or objects other than weights, "
            "and brainsynth only loads plain weights (safetensors or torch.load(weights_only=True))"
        ) from exc
    except Exception as exc:  # arbitrary bytes fail inside the unpickler in many ways
        raise ModelLoadError(f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): {exc}") from exc
    return _unwrap(obj, path)


def safetensors_bytes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> bytes:
    """The safetensors file of ``tensors``, byte for byte the same every time.

    safetensors' own writer orders its header by a hash map, so saving the same weights twice can give
    files with different SHA-256 values. Here the header lists the metadata and the tensors in sorted
    order, and the data follow in that order, so equal weights always give equal files (readable by
    any safetensors reader).

    Parameters
    ----------
    tensors : mapping
        Name to tensor (moved to the CPU; any layout).
    metadata : mapping, optional
        String to string, stored under ``__metadata__``.
    """
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in sorted(metadata.items())}
    chunks, offset = [], 0
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        if tensor.dtype not in _SAFETENSORS_DTYPES:
            raise ValueError(f"tensor {name} has type {tensor.dtype}, which safetensors does not store")
        data = tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {
            "dtype": _SAFETENSORS_DTYPES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data start 8-byte aligned
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)
