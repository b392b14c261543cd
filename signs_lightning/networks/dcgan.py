"""IGN's generator: a DCGAN discriminator as encoder and a DCGAN generator as decoder (Shocher et al., 2024)."""

from __future__ import annotations

from torch import Tensor, nn


class DCGANAutoencoder(nn.Module):
    """f(x) = decoder(encoder(x)), image → 1×1 latent → image, trained from scratch.

    Encoder: 4×4 stride-2 convolutions halve the resolution down to 4×4 while the width doubles from ``width``
    (BatchNorm on every layer but the first, LeakyReLU 0.2), then a 4×4 valid convolution to a
    (B, latent_channels, 1, 1) code. Decoder: the mirror image with transposed convolutions, BatchNorm, ReLU and
    a final tanh. At 64×64 with ``width = 64`` this is IGN's CelebA network (widths 64-128-256-512, latent 512).

    Args:
        image_size: H = W, a power of two >= 8.
        channels: C.
        width: channels of the first encoder layer (and of the last decoder layer before the output).
        latent_channels: size of the code; ``None`` means the widest encoder layer's width.

    Input: x (B, C, H, W) at unit scale (noise, or images in [-1, 1]). Output: (B, C, H, W) in (-1, 1).
    """

    def __init__(self, image_size: int, channels: int, width: int = 64, latent_channels: int | None = None) -> None:
        super().__init__()
        if image_size < 8 or image_size & (image_size - 1):
            raise ValueError(f"DCGANAutoencoder needs image_size a power of two >= 8, got {image_size}")
        halvings = image_size.bit_length() - 3  # image_size / 2**halvings == 4
        widths = [width * 2**i for i in range(halvings)]
        latent = widths[-1] if latent_channels is None else latent_channels

        encoder: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip([channels, *widths[:-1]], widths)):
            encoder.append(nn.Conv2d(c_in, c_out, 4, 2, 1))
            # DCGAN leaves the first discriminator layer unnormalised: BatchNorm on raw pixels hurts.
            if i > 0:
                encoder.append(nn.BatchNorm2d(c_out))
            encoder.append(nn.LeakyReLU(0.2))
        encoder.append(nn.Conv2d(widths[-1], latent, 4, 1, 0))

        decoder: list[nn.Module] = [
            nn.ConvTranspose2d(latent, widths[-1], 4, 1, 0),
            nn.BatchNorm2d(widths[-1]),
            nn.ReLU(),
        ]
        for c_in, c_out in zip(widths[::-1][:-1], widths[::-1][1:]):
            decoder += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU()]
        decoder += [nn.ConvTranspose2d(widths[0], channels, 4, 2, 1), nn.Tanh()]

        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)
        self.apply(_dcgan_init)

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))


def _dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: convolutions N(0, 0.02), BatchNorm scales N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
