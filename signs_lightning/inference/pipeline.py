"""``SIGNPipeline``: a SIGN idempotent generator f as a diffusers pipeline, for sampling and zero-shot editing.

This file is self-contained on purpose (torch, numpy, PIL and diffusers only): ``signs export`` copies it into the
exported folder as ``pipeline.py``, so the folder loads without ``signs_lightning`` installed::

    pipe = DiffusionPipeline.from_pretrained(folder, custom_pipeline="pipeline", trust_remote_code=True)

It therefore restates, in a few lines each, what ``signs_lightning`` computes with ``sampling.py`` (f, re-noising,
the multi-step sampler) and ``editing.py`` (SDEdit, denoising, inpainting, colorization), in the same order of
operations; ``tests/test_sample_edit_export.py`` checks that both give the same images for the same generators.
The method is described in the project's ``docs/method.md`` §3 and §5.
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import torch
from diffusers import DDPMScheduler, DiffusionPipeline, ImagePipelineOutput, UNet2DModel
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

Generators = Union[torch.Generator, Sequence[torch.Generator], None]
Images = Union[torch.Tensor, Image.Image, Sequence[Image.Image]]
# ITU-R 601-2 luma, the weights of PIL's convert("L"): colorize keeps this combination of the channels exactly.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


class SIGNPipeline(DiffusionPipeline):
    r"""One-step (or few-step) unconditional image generation and zero-shot editing with a SIGN generator f.

    f is a diffusers ``UNet2DModel`` called at one fixed timestep and read as a clean image: one call f(z) of noise
    z ~ N(0, I) is a sample. Because f is trained to be idempotent (a projection onto the data), more calls refine a
    sample (re-noise it slightly, apply f again) and the same network edits images: ``project`` (SDEdit),
    ``denoise``, ``inpaint`` and ``colorize``.

    Args:
        unet: the generator's UNet.
        scheduler: a ``DDPMScheduler`` whose ``alphas_cumprod`` define the re-noising q(x, t, ε) =
            √ā_t x + √(1−ā_t) ε (the distilled teacher's schedule).
        conditioning_timestep: the timestep t̄ at which f calls the UNet (``None``: T − 1).
        output_head: ``"x0"``: the UNet's output is the image; ``"prediction"``: it is converted to x̂₀ through the
            scheduler's ``prediction_type`` at t̄.
        renoise_max_level: the multi-step sampler re-noises to ``num_inference_steps − 1`` levels from this
            fraction of T − 1 down, spaced as ``renoise_spacing`` says.
        renoise_noise: what sampling re-noises with: ``"fresh"`` noise at every level, the ``"initial"`` noise z it
            started from, or ``"path"``: the noise the last input and its output imply (DDIM with f as the denoiser);
            the last two draw nothing after z unless ``renoise_eta`` > 0. The editors always draw fresh noise.
        renoise_eta: with ``"initial"`` or ``"path"``, the fresh noise mixed into the rule's noise at each level, in
            [0, 1]: ε ← √(1 − η²)·ε + η·ε_fresh, ε_fresh from ``generator`` (0: none).
        renoise_spacing: ``"even"``: the levels evenly spaced in t from the top level down; ``"constant"``: all at
            the top level (with the path rule and ``renoise_eta`` > 0 each repeated step refines).
    """

    model_cpu_offload_seq = "unet"

    def __init__(
        self,
        unet: UNet2DModel,
        scheduler: DDPMScheduler,
        conditioning_timestep: int | None = None,
        output_head: str = "x0",
        renoise_max_level: float = 0.05,
        renoise_noise: str = "fresh",
        renoise_eta: float = 0.0,
        renoise_spacing: str = "even",
    ) -> None:
        super().__init__()
        last = scheduler.config.num_train_timesteps - 1
        conditioning_timestep = last if conditioning_timestep is None else int(conditioning_timestep)
        if not 0 <= conditioning_timestep <= last:
            raise ValueError(f"conditioning_timestep must be in [0, {last}], got {conditioning_timestep}")
        if output_head not in ("x0", "prediction"):
            raise ValueError(f"output_head must be 'x0' or 'prediction', got {output_head!r}")
        if not 0 < renoise_max_level <= 1:
            raise ValueError(f"renoise_max_level must be in (0, 1], got {renoise_max_level}")
        if renoise_noise not in ("fresh", "initial", "path"):
            raise ValueError(f"renoise_noise must be 'fresh', 'initial' or 'path', got {renoise_noise!r}")
        if not 0 <= renoise_eta <= 1:
            raise ValueError(f"renoise_eta must be in [0, 1], got {renoise_eta}")
        if renoise_eta > 0 and renoise_noise == "fresh":
            raise ValueError(
                f"renoise_eta > 0 (got {renoise_eta}) needs renoise_noise 'initial' or 'path', got 'fresh'"
            )
        if renoise_spacing not in ("even", "constant"):
            raise ValueError(f"renoise_spacing must be 'even' or 'constant', got {renoise_spacing!r}")
        # Inference only. Frozen weights also make PyTorch take the kernels a frozen network takes in
        # signs_lightning (some differ in the last bits when parameters require gradients).
        self.register_modules(unet=unet.requires_grad_(False), scheduler=scheduler)
        self.register_to_config(
            conditioning_timestep=conditioning_timestep,
            output_head=output_head,
            renoise_max_level=renoise_max_level,
            renoise_noise=renoise_noise,
            renoise_eta=renoise_eta,
            renoise_spacing=renoise_spacing,
        )

    # -- geometry --------------------------------------------------------------------------------------------
    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images f makes and edits."""
        size = self.unet.config.sample_size
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        return int(self.unet.config.in_channels), int(height), int(width)

    # -- the building blocks -----------------------------------------------------------------------------------
    def f(self, x: torch.Tensor) -> torch.Tensor:
        """One NFE: the generator applied to x (B, C, H, W) at unit scale (noise, or images in [-1, 1])."""
        t = torch.full((x.shape[0],), self.config.conditioning_timestep, device=x.device, dtype=torch.long)
        out = self.unet(x, t).sample
        if self.config.output_head == "x0":
            return out
        alpha, sigma = self._alpha_sigma(t, x)
        kind = self.scheduler.config.prediction_type
        if kind == "epsilon":
            return (x - sigma * out) / alpha
        if kind == "v_prediction":
            return alpha * x - sigma * out
        return out

    def _alpha_sigma(self, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # In float64, then cast: √(1 − ā) near t = 0 loses digits in float32 (and signs_lightning does the same).
        abar = self.scheduler.alphas_cumprod.double().to(like.device)[t.long().to(like.device)]
        shape = (-1,) + (1,) * (like.ndim - 1)
        return abar.sqrt().reshape(shape).to(like.dtype), (1 - abar).sqrt().reshape(shape).to(like.dtype)

    def renoise(self, x: torch.Tensor, t: int, generator: Generators = None) -> torch.Tensor:
        """q(x, t, ε) = √ā_t x + √(1−ā_t) ε at one level t; ε from ``generator`` (one, or one per sample)."""
        level = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
        alpha, sigma = self._alpha_sigma(level, x)
        return alpha * x + sigma * self._noise(x.shape, generator, x.device, x.dtype)

    def renoise_timesteps(self, num_inference_steps: int) -> list[int]:
        """The ``num_inference_steps − 1`` re-noising levels from ``renoise_max_level``·(T−1) down: evenly spaced, or
        all at that level (``renoise_spacing`` ``"constant"``)."""
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        top = self.config.renoise_max_level * (self.scheduler.config.num_train_timesteps - 1)
        k = num_inference_steps - 1
        if self.config.get("renoise_spacing", "even") == "constant":
            return [round(top)] * k
        return [round(top * (k - i) / k) for i in range(k)]

    def _noise(
        self, shape: Sequence[int], generator: Generators, device: torch.device, dtype: torch.dtype
    ) -> torch.Tensor:
        if isinstance(generator, (list, tuple)) and len(generator) != shape[0]:
            raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]}: one, or one per image")
        generator = list(generator) if isinstance(generator, tuple) else generator
        # Drawn in float32 (on a CPU generator's device), then cast: the numbers do not depend on where f runs.
        return randn_tensor(tuple(shape), generator=generator, device=device, dtype=torch.float32).to(dtype)

    def _refine(
        self,
        x: torch.Tensor,
        timesteps: Sequence[int],
        generator: Generators,
        constrain=lambda x: x,
        start: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """For each level t (non-increasing): x ← f(q(constrain(x), t, ε)); then constrain(x). ε is drawn from
        ``generator``; or, given the ``start`` noise z that x = f(z) came from, it is z (``renoise_noise``
        ``"initial"``) or the noise the last input and its output imply (``"path"``), with fresh noise from
        ``generator`` mixed in by ``renoise_eta``."""
        levels = list(timesteps)
        rule = self.config.get("renoise_noise", "fresh") if start is not None else "fresh"
        eta = self.config.get("renoise_eta", 0.0) if start is not None else 0.0
        x_in, alpha_in, sigma_in = start, 0.0, 1.0
        # No bar for one NFE: it would show an empty loop.
        for t in self.progress_bar(levels) if levels else levels:
            if rule == "fresh":
                x_in = self.renoise(constrain(x), t, generator)
            else:
                noise = start if rule == "initial" else (x_in - alpha_in * x) / sigma_in
                if eta > 0:
                    noise = (1 - eta**2) ** 0.5 * noise + eta * self._noise(noise.shape, generator, x.device, x.dtype)
                level = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
                alpha_in, sigma_in = self._alpha_sigma(level, x)
                x_in = alpha_in * constrain(x) + sigma_in * noise
            x = self.f(x_in)
        return constrain(x)

    def _strength_timestep(self, strength: float) -> int:
        if not 0 <= strength <= 1:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        return round(strength * (self.scheduler.config.num_train_timesteps - 1))

    # -- sampling --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        num_inference_steps: int = 1,
        timesteps: Sequence[int] | None = None,
        generator: Generators = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> ImagePipelineOutput | tuple:
        """Samples: x = f(z), then for each re-noising level t (non-increasing) x = f(q(x, t, ε)), ε fresh from
        ``generator``, or z itself or the noise the last step implies (``renoise_noise``), with fresh noise mixed in
        by ``renoise_eta``.

        Args:
            batch_size: how many images.
            num_inference_steps: NFE (1: one call of f).
            timesteps: explicit re-noising levels (non-increasing), instead of those ``num_inference_steps`` implies.
            generator: one ``torch.Generator`` for the batch, or one per image; draws z, then the re-noising noise.
            latents: the noise z (B, C, H, W) to start from, instead of drawing it.
            output_type: ``"pil"``, ``"np"`` (B, H, W, C) or ``"pt"`` (B, C, H, W), values in [0, 1].
            return_dict: return an ``ImagePipelineOutput`` (else a tuple).
        """
        device = self._execution_device
        if latents is None:
            latents = self._noise((batch_size, *self.image_shape), generator, device, self.unet.dtype)
        latents = latents.to(device=device, dtype=self.unet.dtype)
        levels = list(timesteps) if timesteps is not None else self.renoise_timesteps(num_inference_steps)
        x = self._refine(self.f(latents), levels, generator, start=latents)
        return self._output(x, output_type, return_dict)

    # -- zero-shot editing -----------------------------------------------------------------------------------
    @torch.no_grad()
    def project(
        self,
        image: Images,
        strength: float = 0.3,
        num_inference_steps: int = 1,
        generator: Generators = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> ImagePipelineOutput | tuple:
        """SDEdit-style: re-noise the image to level t = strength · (T − 1), apply f, then refine.

        ``strength`` 0 is f(image) itself (no noise); 1 starts from (almost) pure noise.
        """
        x = self._prepare(image)
        start = x if strength == 0 else self.renoise(x, self._strength_timestep(strength), generator)
        x = self._refine(self.f(start), self.renoise_timesteps(num_inference_steps), generator)
        return self._output(x, output_type, return_dict)

    @torch.no_grad()
    def denoise(
        self,
        image: Images,
        sigma: float | None = None,
        num_inference_steps: int = 1,
        generator: Generators = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> ImagePipelineOutput | tuple:
        """Remove Gaussian noise from y = x + σε.

        Informed (``sigma``, the noise's standard deviation on the [-1, 1] scale, given): y is scaled to the
        variance-preserving input f was trained on, √ā_t y = √ā_t x + √(1−ā_t) ε for the t whose
        σ_t = √((1−ā_t)/ā_t) is closest to ``sigma``; then f, then refinement at the re-noising levels capped at t
        (``capped_timesteps``: never above the noise being removed).

        Blind (``sigma`` None, the level unknown): f(y), then refinement at the usual levels (``project`` at
        strength 0).
        """
        if sigma is None:
            return self.project(image, 0, num_inference_steps, generator, output_type, return_dict)
        x = self._prepare(image)
        t = self.noise_level_timestep(sigma)
        alpha, _ = self._alpha_sigma(torch.full((x.shape[0],), t, device=x.device), x)
        levels = self.capped_timesteps(self.renoise_timesteps(num_inference_steps), t)
        x = self._refine(self.f(alpha * x), levels, generator)
        return self._output(x, output_type, return_dict)

    @staticmethod
    def capped_timesteps(timesteps: Sequence[int], t_max: int) -> list[int]:
        """``timesteps`` scaled by min(1, t_max / max(timesteps)): the top becomes min(top, t_max), the spacing kept
        (constant levels stay constant)."""
        if t_max < 0:
            raise ValueError(f"t_max must be >= 0, got {t_max}")
        levels = list(timesteps)
        top = max(levels, default=0)
        return levels if top <= t_max else [round(t * t_max / top) for t in levels]

    def noise_level_timestep(self, sigma: float) -> int:
        """The t whose noise-to-signal ratio σ_t = √((1−ā_t)/ā_t) is closest to ``sigma``."""
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        abar = self.scheduler.alphas_cumprod.double()
        return int(((1 - abar) / abar).sqrt().sub(sigma).abs().argmin())

    @torch.no_grad()
    def inpaint(
        self,
        image: Images,
        mask_image: torch.Tensor | Image.Image,
        num_inference_steps: int = 1,
        generator: Generators = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> ImagePipelineOutput | tuple:
        """Fill the region where ``mask_image`` is white (1) and keep every other pixel exactly.

        x = f(m⊙y + (1−m)⊙ε); then for each re-noising level: x = f(q(m⊙y + (1−m)⊙x, t, ε)); the result is
        m⊙y + (1−m)⊙x, with m = 1 − mask the known pixels (diffusers' convention: white is repainted).
        """
        y = self._prepare(image)
        known = 1 - self._prepare_mask(mask_image, y)
        start = y * known + self._noise(y.shape, generator, y.device, y.dtype) * (1 - known)
        levels = self.renoise_timesteps(num_inference_steps)
        x = self._refine(self.f(start), levels, generator, lambda x: known * y + (1 - known) * x)
        return self._output(x, output_type, return_dict)

    @torch.no_grad()
    def colorize(
        self,
        image: Images,
        strength: float = 0.5,
        num_inference_steps: int = 1,
        generator: Generators = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> ImagePipelineOutput | tuple:
        """Colour a greyscale image (3-channel models): its luma (``LUMA_WEIGHTS``) is kept exactly.

        The grey image (R = G = B) is re-noised to ``strength`` as in ``project`` and projected; before each
        re-noising and at the end, the luma is re-imposed by adding the same offset to the three channels (which
        keeps the chroma f chose).
        """
        if self.image_shape[0] != 3:
            raise ValueError(f"colorize needs a 3-channel model; this one makes {self.image_shape[0]}-channel images")
        x = self._prepare(image)
        luma = self._luma(x)
        grey = luma.expand(-1, 3, -1, -1)
        start = grey if strength == 0 else self.renoise(grey, self._strength_timestep(strength), generator)
        levels = self.renoise_timesteps(num_inference_steps)
        x = self._refine(self.f(start), levels, generator, lambda x: x + (luma - self._luma(x)))
        return self._output(x, output_type, return_dict)

    @staticmethod
    def _luma(x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            return x
        weights = torch.tensor(LUMA_WEIGHTS, device=x.device, dtype=x.dtype).reshape(1, 3, 1, 1)
        return (x * weights).sum(1, keepdim=True)

    # -- inputs and outputs ------------------------------------------------------------------------------------
    def _prepare(self, image: Images) -> torch.Tensor:
        """Images → (B, C, H, W) in [-1, 1] on the execution device. Tensors must already be in [-1, 1]; PIL images
        are converted to the model's mode. Sizes must be the model's (resize or crop beforehand)."""
        channels, height, width = self.image_shape
        if isinstance(image, Image.Image):
            image = [image]
        if isinstance(image, torch.Tensor):
            x = image[None] if image.ndim == 3 else image
        else:
            mode = "L" if channels == 1 else "RGB"
            arrays = [np.asarray(i.convert(mode), dtype=np.float32) / 127.5 - 1 for i in image]
            x = torch.from_numpy(np.stack([a[..., None] if a.ndim == 2 else a for a in arrays])).permute(0, 3, 1, 2)
        # A greyscale image for a 3-channel model (colorize's input) is repeated, its luma unchanged.
        if x.shape[1] == 1 and channels == 3:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[1:]) != (channels, height, width):
            raise ValueError(
                f"images of shape {tuple(x.shape[1:])} (C, H, W) given; this model takes {channels}x{height}x{width}"
            )
        return x.to(device=self._execution_device, dtype=self.unet.dtype)

    def _prepare_mask(self, mask: torch.Tensor | Image.Image, like: torch.Tensor) -> torch.Tensor:
        if isinstance(mask, Image.Image):
            mask = torch.from_numpy(np.asarray(mask.convert("L"), dtype=np.float32) / 255.0)
        mask = (mask.to(like.device, like.dtype) >= 0.5).to(like.dtype)
        while mask.ndim < 4:
            mask = mask[None]
        if mask.shape[-2:] != like.shape[-2:]:
            raise ValueError(f"mask of size {tuple(mask.shape[-2:])} (H, W) for images of {tuple(like.shape[-2:])}")
        return mask.expand_as(like)

    def _output(self, x: torch.Tensor, output_type: str, return_dict: bool) -> ImagePipelineOutput | tuple:
        if output_type not in ("pt", "np", "pil"):
            raise ValueError(f"output_type must be 'pt', 'np' or 'pil', got {output_type!r}")
        images = (x / 2 + 0.5).clamp(0, 1)
        if output_type != "pt":
            images = images.cpu().permute(0, 2, 3, 1).float().numpy()
            if output_type == "pil":
                images = self.numpy_to_pil(images)
        self.maybe_free_model_hooks()
        return ImagePipelineOutput(images=images) if return_dict else (images,)
