"""Networks: the idempotent generator f and UNet builders for teachers trained here."""

from signs_lightning.networks.dcgan import DCGANAutoencoder
from signs_lightning.networks.generator import IdempotentGenerator
from signs_lightning.networks.unet import build_unet

__all__ = ["DCGANAutoencoder", "IdempotentGenerator", "build_unet"]
