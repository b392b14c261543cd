"""The model card (``README.md``) of an exported generator, written with huggingface_hub's ``ModelCard`` and
diffusers' ``populate_model_card``."""

from __future__ import annotations

import getpass
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from diffusers.utils.hub_utils import populate_model_card
from huggingface_hub import ModelCard, ModelCardData

from signs_lightning.evaluation.keys import is_fid_name, parse_key

TAGS = ["sign", "idempotent-generator", "diffusion-distillation", "one-step", "signs_lightning"]

TEMPLATE = """---
{{ card_data }}
---

# SIGN one-step generator distilled from `{{ teacher }}`

A Score-based Idempotent Generative Network (SIGN) generator f, distilled from the diffusion model `{{ teacher }}`
with signs_lightning. One call f(z) of noise z ~ N(0, I) is a {{ shape }} image. Because f is trained to be a
projection onto the data (f(f(z)) = f(z)), more calls refine a sample (re-noise slightly, apply f again), and the
same network edits images zero-shot: SDEdit-style projection, denoising, inpainting, colorization.

## Usage

```python
from diffusers import DiffusionPipeline

# The pipeline's code (pipeline.py) ships in this folder: it needs torch and diffusers only.
pipe = DiffusionPipeline.from_pretrained("{{ location }}", custom_pipeline="pipeline", trust_remote_code=True)
images = pipe(batch_size=16, num_inference_steps=1).images   # 1 NFE; 2 or 4 re-noise and refine

edited = pipe.project(image, strength=0.3).images      # SDEdit: re-noise to a strength in [0, 1], then f
clean = pipe.denoise(noisy, sigma=0.2).images          # Gaussian noise of a known std (on the [-1, 1] scale)
clean = pipe.denoise(noisy).images                     # noise of an unknown level: blind, f(noisy) then refine
filled = pipe.inpaint(image, mask_image).images        # white mask pixels filled, the others kept exactly
{%- if shape.startswith("3") %}
coloured = pipe.colorize(grey).images                  # luma kept exactly
{%- endif %}
```

With signs_lightning installed, `signs sample {{ location }} --output DIR` and `signs edit TASK {{ location }} ...` use
this folder too.

## Samples
{% if grid %}
![samples]({{ grid }})

{{ grid_caption }}
{% else %}
No sample grid was written.
{% endif %}
## Evaluation
{% if fid %}
| NFE | FID | measured as |
|---|---|---|
{%- for row in fid %}
| {{ row.nfe }} | {{ row.value }} | {{ row.source }} |
{%- endfor %}

FIDs measured differently (sample count, feature space, reference set) are not comparable.
{% else %}
No FID was given at export, and the checkpoint records no validation FID.
{% endif %}
## Model

- Teacher: `{{ teacher }}` ({{ teacher_kind }}; weights fingerprint `{{ fingerprint }}`)
- f = the teacher's `UNet2DModel` architecture called at timestep t̄ = {{ conditioning_timestep }}, output head
  `{{ output_head }}`; exported weights: the exponential moving average of the trained generator
- Multi-step sampling re-noises with the teacher's noise schedule (`scheduler/`), to
{%- if renoise_spacing == "constant" %} levels all at {{ renoise_max_level }} · (T − 1)
{%- else %} levels evenly spaced from {{ renoise_max_level }} · (T − 1) down{% endif %}, with
{%- if renoise_noise == "initial" %} the starting noise z
{%- elif renoise_noise == "path" %} the noise its last step implies (DDIM with f as the denoiser)
{%- else %} fresh noise at every level{% endif %}
{%- if renoise_eta %} and η = {{ renoise_eta }} of fresh noise mixed in (ε ← √(1 − η²)·ε + η·ε_fresh){% endif %}
  (`model_index.json`: `renoise_max_level`, `renoise_spacing`, `renoise_noise`, `renoise_eta`)
- Trained for {{ generator_steps }} generator steps ({{ module }})

## Training configuration

From {{ config_source }}; local paths are shortened to their last component.

```yaml
{{ config }}
```
"""


@dataclass(frozen=True)
class FidRow:
    """One FID of the card: its value as shown and where it came from (how it was measured)."""

    nfe: int
    value: str
    source: str


@dataclass
class CardFacts:
    """What the card states. ``teacher``: the teacher as a card may name it (folder name or hub id, never a local
    path); ``config``: the training configuration, already free of local paths (``public_config``), read from
    ``config_source``."""

    teacher: str
    teacher_kind: str
    fingerprint: str
    module: str
    shape: str
    conditioning_timestep: int
    output_head: str
    renoise_max_level: float
    generator_steps: int
    config: dict[str, Any]
    config_source: str = "the checkpoint's hyperparameters"
    renoise_noise: str = "fresh"
    renoise_eta: float = 0.0
    renoise_spacing: str = "even"
    fid: list[FidRow] = field(default_factory=list)
    grid: str | None = None
    grid_caption: str = ""
    location: str = "path/to/this/folder"
    base_model: str | None = None


def model_card(facts: CardFacts) -> ModelCard:
    """A ``ModelCard`` with diffusers' metadata (``library_name: diffusers`` and tags) and ``facts`` as its text."""
    data = ModelCardData(base_model=facts.base_model, pipeline_tag="unconditional-image-generation")
    values = {k: v for k, v in vars(facts).items() if k not in ("config", "base_model")}
    card = ModelCard.from_template(
        card_data=data,
        template_str=TEMPLATE,
        **values,
        # Through JSON: hyperparameters may hold tuples or other objects YAML's safe dumper refuses.
        config=yaml.safe_dump(json.loads(json.dumps(facts.config, default=str)), sort_keys=True).strip(),
    )
    return populate_model_card(card, tags=TAGS)


# -- FIDs: typed at export, or the checkpoint's last validation -----------------------------------------------------
def fid_rows(
    given: dict[int, float], given_setting: str, validated: dict[str, float], validated_where: str
) -> list[FidRow]:
    """The card's FID rows: ``given`` ({NFE: value}, typed with ``--fid``, measured as ``given_setting``), and the
    SIGN FIDs of ``validated`` (metric name -> value, e.g. ``val/fid1k_lenet16_nfe2``) at every other NFE, each
    described by its name's sample count and feature space and by ``validated_where``."""
    typed = "given on the command line" + (f": {given_setting}" if given_setting else "")
    rows = [FidRow(nfe, f"{value:g}", typed) for nfe, value in given.items()]
    for name, value in validated.items():
        key = parse_key(name)
        # The teacher's FIDs and named samplers (f(f(z))) are not the exported sampler at an NFE.
        if key.prefix != "val" or key.teacher or key.nfe is None or not is_fid_name(key.name):
            continue
        if key.nfe not in given:  # a typed value wins over the checkpoint's at its NFE
            rows.append(FidRow(key.nfe, f"{float(value):.2f}", f"{validated_where}, {fid_setting(key.name)}"))
    return sorted(rows, key=lambda row: (row.nfe, row.source))


def fid_setting(name: str) -> str:
    """How an FID named by ``keys.fid_name`` was measured.

    >>> fid_setting("fid2.5k_lenet16"), fid_setting("fid500_inception")
    ('2,500 samples, lenet16 features', '500 samples, inception features')
    """
    tag, _, extractor = name.removeprefix("fid").partition("_")
    count = round(float(tag.removesuffix("k")) * (1000 if tag.endswith("k") else 1))
    return f"{count:,} samples, {extractor} features"


# -- no local paths: a card is meant to be published -----------------------------------------------------------------
# An absolute (or home-relative) path inside a string: after its start, a space, a quote, "=", ":" not of "://"...
_PATH = re.compile(r"(?:^|(?<=[\s'\"=(\[,]))(?:~|/)[^\s'\"),\]]*")


def public_teacher(source: str) -> tuple[str, str]:
    """(name, kind) a card gives a teacher: a hub id as is, a local folder (recorded by its absolute path) by its
    folder name alone."""
    if Path(source).is_absolute():
        return Path(source).name, "a local folder"
    return source, "Hugging Face hub"


def public_config(config: Any) -> Any:
    """``config`` with every absolute or home path cut to its last component (``…/name``) and the user's name
    replaced: a run's folders say where it ran and who ran it, which a published card must not."""
    if isinstance(config, dict):
        return {key: public_config(value) for key, value in config.items()}
    if isinstance(config, list | tuple):
        return [public_config(value) for value in config]
    if not isinstance(config, str):
        return config
    text = _PATH.sub(lambda match: "…/" + Path(match.group(0).rstrip("/")).name, config)
    user = _user_name()
    # Bounded by anything but a letter or digit: "alice_runs" names her, "malice" does not.
    user_name = rf"(?<![^\W_]){re.escape(user)}(?![^\W_])"
    return re.sub(user_name, "<user>", text) if len(user) >= 3 else text


def _user_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (a container without a passwd entry): nothing to hide
        return ""
