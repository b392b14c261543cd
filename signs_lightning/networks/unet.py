"""Builders for the diffusers UNets that this project trains as teachers."""

from __future__ import annotations

from diffusers import UNet2DModel


def build_unet(
    image_size: int = 16,
    channels: int = 1,
    block_out_channels: tuple[int, ...] = (16, 32, 32),
    layers_per_block: int = 1,
    attention: bool = False,
    norm_num_groups: int = 8,
) -> UNet2DModel:
    """A ``UNet2DModel`` with one down/up block per entry of ``block_out_channels``.

    Attention, when on, sits in the lowest-resolution block (as in ``google/ddpm-cifar10-32``'s 16×16 level).
    The default is the ~270k-parameter MNIST-16 teacher of the measurements in docs/method.md.

    >>> sum(p.numel() for p in build_unet().parameters()) // 1000
    267
    """
    levels = len(block_out_channels)
    down = ["DownBlock2D"] * levels
    up = ["UpBlock2D"] * levels
    if attention:
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    return UNet2DModel(
        sample_size=image_size,
        in_channels=channels,
        out_channels=channels,
        layers_per_block=layers_per_block,
        block_out_channels=tuple(block_out_channels),
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        norm_num_groups=norm_num_groups,
    )
