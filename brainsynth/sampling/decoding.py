"""Memory-bounded decoding: MONAI's ``AutoencoderKL`` decoder run slab by slab along the first axis.

A plain decode of the published model keeps several full-resolution activations alive at once
(128 channels at 160 x 224 x 160 are 2.9 GB each in float32). Here every layer is computed in slabs
of planes along the first spatial axis:

- a 3x3x3 convolution reads its slab plus one plane of halo on each side (zero padding is added only
  at the volume's borders, after normalisation, exactly as the network does), so it is exact;
- a GroupNorm needs statistics over the whole volume: they are accumulated (in float64) while the
  layer before it is produced, then applied per slab together with the SiLU that follows;
- nearest upsampling is fused with the convolution after it, so the upsampled tensor never exists;
- in a residual block the input's slabs are released as soon as no later slab needs them.

The result equals the plain decode up to floating-point rounding (the tests check it). The same
weights are used; nothing is copied. Attention blocks are not supported by this path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812
from monai.networks.blocks import Convolution
from monai.networks.nets.autoencoderkl import AEKLResBlock

from brainsynth.errors import InvalidParameterError

DECODING_MODES = ("auto", "full", "split")
SLAB_BYTES = 64 * 2**20  # largest slab (output plus input region) chosen automatically
PLAIN_DECODE_FACTOR = 4.0  # peak memory of a plain decode, in units of its largest activation (measured: 10.5 GB
#                           for the published decoder, whose largest activation is 2.9 GB)


class UnsupportedDecoderError(ValueError):
    """The decoder holds a block the split path does not handle (e.g. attention)."""


class Slabs:
    """A (B, C, X, Y, Z) activation held as separate tensors along X, so finished parts can be freed."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.plane = 0  # voxels per plane (Y x Z)
        self.parts: list[tuple[int, int, torch.Tensor | None]] = []
        self.sums: torch.Tensor | None = None  # (B, C) float64 sums and sums of squares, for a GroupNorm after
        self.squares: torch.Tensor | None = None

    def append(self, start: int, part: torch.Tensor) -> None:
        self.parts.append((start, start + part.shape[2], part))
        self.plane = part.shape[3] * part.shape[4]
        values = part.float()
        sums = values.sum(dim=(2, 3, 4), dtype=torch.float64)
        squares = (values * values).sum(dim=(2, 3, 4), dtype=torch.float64)
        self.sums = sums if self.sums is None else self.sums + sums
        self.squares = squares if self.squares is None else self.squares + squares

    def take(self, start: int, stop: int) -> torch.Tensor:
        """Planes ``start:stop`` (clipped to the volume)."""
        start, stop = max(start, 0), min(stop, self.size)
        pieces = []
        for lo, hi, part in self.parts:
            if hi <= start or lo >= stop:
                continue
            if part is None:
                raise RuntimeError(f"planes {lo}:{hi} were released before use")
            pieces.append(part[:, :, max(start - lo, 0) : min(stop, hi) - lo])
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=2)

    def release_before(self, plane: int) -> None:
        """Free the parts that end at or before ``plane``."""
        self.parts = [(lo, hi, None if hi <= plane else part) for lo, hi, part in self.parts]

    def whole(self) -> torch.Tensor:
        return self.take(0, self.size)


Transform = Callable[[torch.Tensor], torch.Tensor]


def _norm_transform(slabs: Slabs, norm: torch.nn.GroupNorm, silu: bool) -> Transform:
    """GroupNorm with the whole volume's statistics (optionally followed by SiLU) as per-channel scale and shift."""
    assert slabs.sums is not None
    assert slabs.squares is not None
    batch, channels = slabs.sums.shape
    groups = norm.num_groups
    count = slabs.plane * slabs.size * (channels // groups)
    mean = slabs.sums.view(batch, groups, -1).sum(-1) / count
    variance = (slabs.squares.view(batch, groups, -1).sum(-1) / count - mean * mean).clamp_min(0.0)
    rstd = torch.rsqrt(variance + norm.eps)
    rstd_c = rstd.repeat_interleave(channels // groups, dim=1)
    mean_c = mean.repeat_interleave(channels // groups, dim=1)
    ones = torch.ones(channels, dtype=torch.float64, device=rstd.device)
    weight = norm.weight.double() if norm.affine else ones
    bias = norm.bias.double() if norm.affine else ones * 0.0
    scale = (rstd_c * weight).float()[:, :, None, None, None]
    shift = (bias - mean_c * rstd_c * weight).float()[:, :, None, None, None]

    def apply(region: torch.Tensor) -> torch.Tensor:
        out = torch.addcmul(shift, region.float(), scale)
        return F.silu(out, inplace=True) if silu else out

    return apply


def _conv3d(module: torch.nn.Module) -> torch.nn.Conv3d:
    conv = module.conv if isinstance(module, Convolution) else module
    if (
        not isinstance(conv, torch.nn.Conv3d)
        or conv.stride != (1, 1, 1)
        or conv.dilation != (1, 1, 1)
        or conv.groups != 1
        or conv.kernel_size[0] != 2 * conv.padding[0] + 1
    ):
        raise UnsupportedDecoderError(f"unsupported convolution in the decoder: {conv}")
    return conv


class SplitDecoder:
    """Runs a MONAI ``AutoencoderKL``'s ``decode`` in slabs so that peak memory stays bounded.

    Parameters
    ----------
    autoencoder : monai.networks.nets.AutoencoderKL
        The autoencoder whose decoder (and ``post_quant_conv``) to run.
    slab_bytes : int
        Target size of one output slab plus its input region, in bytes; sets the slab thickness of
        every layer (at least one plane).
    """

    def __init__(self, autoencoder: torch.nn.Module, slab_bytes: int = 64 * 2**20) -> None:
        self.autoencoder = autoencoder
        self.slab_bytes = int(slab_bytes)
        check_split_supported(autoencoder)

    @torch.no_grad()
    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """Decode latents ``z`` (B, C, X', Y', Z'); returns the image like ``autoencoder.decode(z)``."""
        x, _ = self._conv(self._whole(z), _conv3d(self.autoencoder.post_quant_conv))
        pending: torch.nn.GroupNorm | None = None
        for block in self.autoencoder.decoder.blocks:
            if isinstance(block, torch.nn.GroupNorm):
                pending = block
            elif isinstance(block, Convolution):
                transform = _norm_transform(x, pending, silu=False) if pending is not None else None
                x, pending = self._conv(x, _conv3d(block), transform)[0], None
            elif isinstance(block, AEKLResBlock):
                x = self._resblock(x, block)
            else:  # an Upsample checked by check_split_supported
                x, _ = self._conv(x, _conv3d(block.postconv), upsample=True)
        return x.whole()

    # ----------------------------------------------------------------------------------- layers

    def _whole(self, tensor: torch.Tensor) -> Slabs:
        slabs = Slabs(tensor.shape[2])
        slabs.append(0, tensor)
        return slabs

    def _thickness(self, channels: int, plane_voxels: int, element: int) -> int:
        return max(1, self.slab_bytes // max(1, channels * plane_voxels * element))

    def _conv(
        self,
        source: Slabs,
        conv: torch.nn.Conv3d,
        transform: Transform | None = None,
        *,
        upsample: bool = False,
        release: bool = True,
        residual: Slabs | None = None,
        side: torch.nn.Conv3d | None = None,
    ) -> tuple[Slabs, Slabs]:
        """``conv(transform(source))`` (after nearest x2 upsampling when asked), slab by slab.

        ``residual`` is added to the output (and released as it is used); ``side``, a 1x1x1
        convolution of the untransformed source, is computed in the same pass (so the source can be
        released early) and returned second.
        """
        factor = 2 if upsample else 1
        size = source.size * factor
        halo = conv.padding[0]
        sample = source.parts[0][2]
        plane = sample.shape[3] * sample.shape[4] * factor * factor
        step = self._thickness(conv.in_channels + conv.out_channels, plane, sample.element_size())
        result, side_out = Slabs(size), Slabs(size)
        for start in range(0, size, step):
            stop = min(start + step, size)
            lo, hi = max(start - halo, 0), min(stop + halo, size)
            region = source.take(lo // factor, (hi - 1) // factor + 1)
            if transform is not None:
                region = transform(region)
            if upsample:
                region = F.interpolate(region, scale_factor=2.0, mode="nearest")
                offset = lo - 2 * (lo // 2)
                region = region[:, :, offset : offset + hi - lo]
            region = F.pad(region, (0, 0, 0, 0, lo - (start - halo), (stop + halo) - hi))
            out = F.conv3d(region, conv.weight, conv.bias, padding=(0, halo, halo))
            del region
            if residual is not None:
                out = out + residual.take(start, stop)
                residual.release_before(stop)
            if side is not None:
                side_out.append(start, F.conv3d(source.take(start, stop), side.weight, side.bias))
            result.append(start, out)
            if release:
                source.release_before((stop - halo) // factor)
        return result, side_out

    def _resblock(self, x: Slabs, block: AEKLResBlock) -> Slabs:
        projected = block.in_channels != block.out_channels
        side = _conv3d(block.nin_shortcut) if projected else None
        h, projection = self._conv(
            x, _conv3d(block.conv1), _norm_transform(x, block.norm1, silu=True), release=projected, side=side
        )
        shortcut = projection if projected else x
        return self._conv(h, _conv3d(block.conv2), _norm_transform(h, block.norm2, silu=True), residual=shortcut)[0]


def check_decoding(mode: str, autoencoder: torch.nn.Module) -> str:
    """Return ``mode`` if it is one of :data:`DECODING_MODES` and this autoencoder can decode that way.

    Raises
    ------
    InvalidParameterError
        For another mode, or ``"split"`` with a decoder the split path cannot run.
    """
    if mode not in DECODING_MODES:
        raise InvalidParameterError(f"decoding must be one of {', '.join(DECODING_MODES)} (got {mode!r})")
    if mode == "split":
        try:
            check_split_supported(autoencoder)
        except UnsupportedDecoderError as exc:
            raise InvalidParameterError(f"decoding 'split' is not available for this model: {exc}") from exc
    return mode


def check_split_supported(autoencoder: torch.nn.Module) -> None:
    """Raise :class:`UnsupportedDecoderError` when the decoder holds blocks the split path cannot run."""
    from monai.networks.blocks import Upsample

    decoder = getattr(autoencoder, "decoder", None)
    if decoder is None or not hasattr(autoencoder, "post_quant_conv"):
        raise UnsupportedDecoderError("split decoding needs a MONAI AutoencoderKL")
    _conv3d(autoencoder.post_quant_conv)
    for block in decoder.blocks:
        if isinstance(block, (torch.nn.GroupNorm, AEKLResBlock)):
            continue
        if isinstance(block, Convolution):
            _conv3d(block)
        elif (
            isinstance(block, Upsample)
            and hasattr(block, "postconv")
            and hasattr(block, "upsample_non_trainable")
            and block.upsample_non_trainable.mode == "nearest"
            and not hasattr(block, "preconv")
        ):
            _conv3d(block.postconv)
        else:
            raise UnsupportedDecoderError(f"split decoding does not support the block {type(block).__name__}")


def largest_activation_bytes(autoencoder: torch.nn.Module, latent_shape: tuple[int, ...], element: int = 4) -> int:
    """Bytes of the decoder's largest activation for one latent (channels x voxels x element size)."""
    from monai.networks.blocks import Upsample

    decoder = autoencoder.decoder
    voxels = 1
    for size in latent_shape[1:]:
        voxels *= size
    largest = 0
    for block in decoder.blocks:
        channels = getattr(block, "out_channels", None) or getattr(block, "num_channels", None)
        if isinstance(block, Upsample):
            voxels *= 2 ** (len(latent_shape) - 1)
            channels = block.postconv.conv.out_channels if hasattr(block, "postconv") else channels
        if channels:
            largest = max(largest, int(channels) * voxels * element)
    return largest


#: Linux's memory report (absent on macOS and Windows).
MEMINFO = Path("/proc/meminfo")


def available_memory(device: torch.device) -> int:
    """Bytes free for new tensors on ``device``.

    CUDA: the driver's free memory. CPU: the memory available to new allocations, reclaimable page
    cache included (psutil's ``available``; Linux's ``MemAvailable`` where psutil is missing), not
    just the unused pages, which a machine that has read files for a while has few of.
    """
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        return _meminfo_available()


def _meminfo_available() -> int:
    """Available memory without psutil: Linux's MemAvailable, else the free pages, else half of all memory.

    Windows has no ``os.sysconf`` and macOS no ``SC_AVPHYS_PAGES``; where nothing is known the answer
    is 0, and ``auto`` decoding then decodes in slabs, which always fits.
    """
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    sysconf = getattr(os, "sysconf", None)
    names = getattr(os, "sysconf_names", {})
    if sysconf is None or "SC_PAGE_SIZE" not in names:
        return 0
    if "SC_AVPHYS_PAGES" in names:
        return int(sysconf("SC_AVPHYS_PAGES") * sysconf("SC_PAGE_SIZE"))
    if "SC_PHYS_PAGES" in names:
        return int(sysconf("SC_PHYS_PAGES") * sysconf("SC_PAGE_SIZE")) // 2
    return 0


def prefers_channels_last(device: torch.device) -> bool:
    """Whether decoding in one piece on ``device`` runs in channels-last 3D memory format.

    On the CPU, oneDNN's 3D convolutions are faster in it: the demo model's decode took 0.69 s instead
    of 0.92 s in float32 and 0.20 s instead of 0.39 s in bfloat16 (2-core Xeon with AVX-512 BF16,
    PyTorch 2.13, ``recipes/measure/cpu_speed.py``). The values are the same; sums are ordered
    differently (float32 results differ by about 1e-5).
    """
    return device.type == "cpu"


def choose_decoding(
    autoencoder: torch.nn.Module, latent_shape: tuple[int, ...], device: torch.device, mode: str = "auto"
) -> tuple[str, int]:
    """Pick ``"full"`` or ``"split"`` and a slab size from the free memory of ``device``.

    ``auto`` decodes in one piece when an estimated plain-decode peak fits in 80 % of the free
    memory, and in slabs otherwise (or when the decoder cannot be split, in one piece regardless).
    Returns the mode and the slab size in bytes.
    """
    free = available_memory(device)
    # Thin slabs cost little time (only the 1-plane halos are read twice) and keep the temporaries
    # small: 64 MB slabs decode the published model in 2.9 GB peak RSS (bfloat16), 512 MB ones in 4.4 GB.
    slab = int(min(SLAB_BYTES, max(8 * 2**20, free // 32)))
    if mode == "full":
        return "full", slab
    if mode == "split":
        return "split", slab
    try:
        check_split_supported(autoencoder)
    except UnsupportedDecoderError:
        return "full", slab
    estimate = PLAIN_DECODE_FACTOR * largest_activation_bytes(autoencoder, latent_shape)
    return ("full" if estimate < 0.8 * free else "split"), slab
