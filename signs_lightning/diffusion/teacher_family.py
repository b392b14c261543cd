"""Which teachers SIGN can distil, told from their configs before any weight is read.

SIGN treats a teacher as a pixel-space, unconditional, variance-preserving DDPM: a ``UNet2DModel`` called as
``unet(x_t, t)`` with integer timesteps t < T, whose one ε/v/x0 prediction per image is turned into DDIM steps by the
ā_t that ``DDPMScheduler`` computes from the scheduler config. A teacher outside that family loads without an error
(a scheduler config of any class is read as a DDPM one, any UNet folder as a ``UNet2DModel``) and is then distilled
wrongly, so it is refused here by what it is: a latent or conditional pipeline, a sigma-based (variance-exploding,
EDM) or flow-matching scheduler, a Fourier (continuous-σ) time embedding, a learned variance, class labels.
"""

from __future__ import annotations

from typing import Any

from signs_lightning.core.errors import SignsError
from signs_lightning.diffusion.schedule import PREDICTION_TYPES

SUPPORTED = (
    "signs_lightning distils pixel-space, unconditional DDPM-family teachers (UNet2DModel with a DDPM/DDIM scheduler)"
)
# Schedulers whose config is a discrete-time VP beta schedule (num_train_timesteps, beta_schedule, trained_betas): the
# samplers diffusers offers for one DDPM-trained UNet. DDPMScheduler computes the same ā_t from each one's config.
DDPM_FAMILY_SCHEDULERS = frozenset(
    {
        "DDPMScheduler",
        "DDIMScheduler",
        "DDPMParallelScheduler",
        "DDIMParallelScheduler",
        "PNDMScheduler",
        "DEISMultistepScheduler",
        "DPMSolverMultistepScheduler",
        "DPMSolverSinglestepScheduler",
        "UniPCMultistepScheduler",
        "EulerDiscreteScheduler",
        "EulerAncestralDiscreteScheduler",
        "HeunDiscreteScheduler",
        "LMSDiscreteScheduler",
        "KDPM2DiscreteScheduler",
        "KDPM2AncestralDiscreteScheduler",
    }
)
# Schedulers over noise levels σ rather than DDPM timesteps (their UNets take σ-derived inputs).
SIGMA_SCHEDULERS = frozenset(
    {
        "ScoreSdeVeScheduler",
        "KarrasVeScheduler",
        "EDMEulerScheduler",
        "EDMDPMSolverMultistepScheduler",
        "CMStochasticIterativeScheduler",
    }
)
# Pipeline components that make a pipeline latent (the UNet denoises an autoencoder's latents) or conditional.
LATENT_COMPONENTS = ("vae", "vqvae", "movq")
CONDITIONING_COMPONENTS = ("text_encoder", "tokenizer", "image_encoder", "feature_extractor", "prior")
# The components of a pipeline SIGN can distil (DDPMPipeline, DDIMPipeline): everything else is refused by name.
TEACHER_COMPONENTS = ("unet", "scheduler")
# Integer-timestep embeddings: sinusoidal ("positional", DDPM's) or a table indexed by t ("learned").
TIMESTEP_EMBEDDINGS = ("positional", "learned")


class UnsupportedTeacher(SignsError, ValueError):
    """A teacher outside the family SIGN distils (a ``ValueError`` too, as load_teacher's refusals always were)."""


def check_distillable(
    source: str,
    components: list[str],
    unet_config: dict[str, Any],
    scheduler_config: dict[str, Any],
    listed_in: str = "model_index.json names",
) -> None:
    """Refuse, by what it is, a teacher SIGN cannot distil; return quietly for a pixel-space unconditional DDPM.

    Args:
        source: the teacher folder or hub id, for the messages.
        components: the pipeline's components (``model_index.json``'s, or the folder's sub-folders when it has
            none; empty when unknown).
        unet_config, scheduler_config: ``unet/config.json`` and ``scheduler/scheduler_config.json``.
        listed_in: where ``components`` were found, as the messages say it (``"the folder has"``).

    Raises:
        UnsupportedTeacher: what was found, that it is not supported, and what is.
    """
    found = (
        _pipeline_found(components, listed_in)
        or _unet_found(unet_config)
        or _scheduler_found(scheduler_config)
        or _time_embedding_found(unet_config)
    )
    if found:
        raise UnsupportedTeacher(f"teacher {source}: {found} is not supported: {SUPPORTED}")
    _check_prediction(source, unet_config, scheduler_config)


def _pipeline_found(components: list[str], listed_in: str) -> str | None:
    extra = [name for name in components if name not in TEACHER_COMPONENTS]
    latent = [name for name in extra if name in LATENT_COMPONENTS]
    if latent:
        return f"a latent pipeline ({listed_in} a {', '.join(latent)}: its UNet denoises latents, not images)"
    conditioning = [name for name in extra if name.startswith(CONDITIONING_COMPONENTS)]
    if conditioning:
        return f"a conditional pipeline ({listed_in} a {', '.join(conditioning)})"
    if extra:
        return f"a pipeline with more than a unet and a scheduler ({listed_in} {', '.join(extra)})"
    return None


def _unet_found(config: dict[str, Any]) -> str | None:
    name = config.get("_class_name", "UNet2DModel")
    if name == "UNet2DModel":
        return None
    conditional = " conditioned on encoder states" if "cross_attention_dim" in config else ""
    return f"a {name}{conditional} (unet/config.json), not a UNet2DModel"


def _scheduler_found(config: dict[str, Any]) -> str | None:
    name = config.get("_class_name", "DDPMScheduler")  # a hand-written config without a class: read as DDPM's
    if name in SIGMA_SCHEDULERS:
        return f"a sigma-based (variance-exploding / EDM) schedule (scheduler_config.json names {name})"
    if name not in DDPM_FAMILY_SCHEDULERS:
        return f"a {name} schedule (scheduler_config.json), not a DDPM-family one"
    if config.get("use_flow_sigmas"):
        return f"a flow-matching schedule ({name} with use_flow_sigmas)"
    if config.get("timestep_type", "discrete") != "discrete":
        return f"a UNet fed continuous σ timesteps ({name} with timestep_type {config['timestep_type']!r})"
    prediction = config.get("prediction_type", "epsilon")
    if prediction not in PREDICTION_TYPES:
        return f"a {prediction!r} prediction ({name}), not ε, v or x0"
    return None


def _time_embedding_found(config: dict[str, Any]) -> str | None:
    embedding = config.get("time_embedding_type", "positional")
    if embedding in TIMESTEP_EMBEDDINGS:
        return None
    return (
        f"a UNet with a {embedding} time embedding (unet/config.json time_embedding_type {embedding!r}, made for "
        "continuous noise levels, while SIGN feeds integer DDPM timesteps)"
    )


def _check_prediction(source: str, unet_config: dict[str, Any], scheduler_config: dict[str, Any]) -> None:
    """Refuse UNets whose output is not one ε/v/x0 image per input, or that need a class label."""
    in_channels, out_channels = unet_config.get("in_channels", 3), unet_config.get("out_channels", 3)
    variance = scheduler_config.get("variance_type")
    if out_channels == 2 * in_channels or variance in ("learned", "learned_range"):
        raise UnsupportedTeacher(
            f"teacher {source} predicts a learned variance (UNet out_channels {out_channels}, in_channels "
            f"{in_channels}, scheduler variance_type {variance!r}): SIGN's DDIM steps and losses use a single "
            "ε/v/x0 prediction per image; choose a teacher trained with a fixed variance (out_channels = "
            "in_channels, variance_type fixed_small or fixed_large), e.g. google/ddpm-cifar10-32"
        )
    if out_channels != in_channels:
        raise UnsupportedTeacher(
            f"teacher {source} outputs {out_channels} channels for {in_channels}-channel images: an ε/v/x0 "
            "prediction has as many channels as its input; choose an unconditional DDPM teacher"
        )
    classes, embedding = unet_config.get("num_class_embeds"), unet_config.get("class_embed_type")
    if classes is not None or embedding is not None:
        raise UnsupportedTeacher(
            f"teacher {source} is class-conditional (UNet num_class_embeds {classes}, class_embed_type "
            f"{embedding!r}): SIGN distils an unconditional teacher, whose UNet it calls without class labels; "
            "choose an unconditional teacher"
        )
