"""The model card (``README.md``) of an exported generator, written with huggingface_hub's ``ModelCard`` and
diffusers' ``populate_model_card``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml
from diffusers.utils.hub_utils import populate_model_card
from huggingface_hub import ModelCard, ModelCardData

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
| NFE | FID |
|---|---|
{%- for nfe, value in fid %}
| {{ nfe }} | {{ value }} |
{%- endfor %}
{% if fid_setting %}
Measured as: {{ fid_setting }}.
{% endif %}{% else %}
No FID was given at export.
{% endif %}
## Model

- Teacher: `{{ teacher }}` (weights fingerprint `{{ fingerprint }}`)
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

```yaml
{{ config }}
```
"""


@dataclass
class CardFacts:
    """What the card states. ``fid``: {NFE: value}, described by ``fid_setting`` (sample count, feature space and
    reference set: FIDs of different settings are not comparable)."""

    teacher: str
    fingerprint: str
    module: str
    shape: str
    conditioning_timestep: int
    output_head: str
    renoise_max_level: float
    generator_steps: int
    config: dict[str, Any]
    renoise_noise: str = "fresh"
    renoise_eta: float = 0.0
    renoise_spacing: str = "even"
    fid: dict[int, float] = field(default_factory=dict)
    fid_setting: str = ""
    grid: str | None = None
    grid_caption: str = ""
    location: str = "path/to/this/folder"
    base_model: str | None = None


def model_card(facts: CardFacts) -> ModelCard:
    """A ``ModelCard`` with diffusers' metadata (``library_name: diffusers`` and tags) and ``facts`` as its text."""
    data = ModelCardData(base_model=facts.base_model, pipeline_tag="unconditional-image-generation")
    values = {k: v for k, v in vars(facts).items() if k not in ("config", "fid", "base_model")}
    card = ModelCard.from_template(
        card_data=data,
        template_str=TEMPLATE,
        **values,
        # Through JSON: hyperparameters may hold tuples or other objects YAML's safe dumper refuses.
        config=yaml.safe_dump(json.loads(json.dumps(facts.config, default=str)), sort_keys=True).strip(),
        fid=sorted(facts.fid.items()),
    )
    return populate_model_card(card, tags=TAGS)
