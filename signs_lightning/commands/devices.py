"""The device a command was asked to run on, checked before anything is loaded onto it."""

from __future__ import annotations

import torch

from signs_lightning.core.errors import SignsError

# Lightning accelerator names that mean a CUDA device.
CUDA_ACCELERATORS = ("cuda", "gpu")


def checked_device(option: str, value: str) -> torch.device:
    """``value`` as a torch device, refused in one line when this machine cannot run it.

    Without the check, ``model.to("cuda")`` on a machine without CUDA ends in torch's traceback ("Torch not compiled
    with CUDA enabled"), after the model was loaded.

    Args:
        option: the command-line option that gave ``value`` (``--device``), for the message.
        value: ``cpu``, ``cuda``, ``cuda:1``, ...

    Raises:
        SignsError: not a device name, or a CUDA device this machine does not have.
    """
    try:
        device = torch.device(value)
    except RuntimeError:
        raise SignsError(f"{option} {value}: not a device (e.g. cpu, cuda, cuda:1)") from None
    if device.type == "cuda":
        require_cuda(option, value, device.index)
    return device


def require_cuda(option: str, value: str, index: int | None = None) -> None:
    """Refuse ``option value`` (a CUDA device, ``index`` if one is named) unless this machine has it.

    Raises:
        SignsError: no CUDA device at all, or fewer than ``index + 1``.
    """
    if not torch.cuda.is_available():
        raise SignsError(
            f"{option} {value}: no CUDA device is available here (torch.cuda.is_available() is False): use {option} cpu"
        )
    count = torch.cuda.device_count()
    if index is not None and index >= count:
        raise SignsError(f"{option} {value}: this machine has {count} CUDA device(s), numbered from 0")
