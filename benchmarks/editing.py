"""The editing claim, measured: zero-shot repair of corrupted held-out digits by SIGN, its teacher and IGN, in the two
settings users face: the corruption's level (or mask) known, and not.

    python -m benchmarks.editing --sign CKPT [--ign CKPT] [--output benchmarks/results/editing] [--num-images 400]
        [--tune-images 100] [--blind-levels 0.05 0.1 ...] [--sign-nfe 1 2 4] [--teacher-nfe 1 4 10] [--ign-nfe 1]
        [--seed 0] [--smoke]

Seven corruptions of held-out embedded-MNIST digits: Gaussian noise σ = 0.2, 0.5, 1 (on the [-1, 1] scale), and
inpainting of the lower half, a centre box (half the side) and 50% / 80% of the pixels at random (shown mid-grey).

**Informed** (the corruption is given to every method: σ, or the mask):

- SIGN and IGN with the editors of ``signs edit`` (``inference/editing.py: denoise`` with σ, its refinement capped
  at σ's level; ``sampling.inpaint`` with the mask) at their NFE settings;
- the teacher doing the same job with DDIM (``teacher_denoise``: the noisy image scaled to its noise level, then
  DDIM down; ``teacher_inpaint``: DDIM from noise, re-imposing the re-noised known pixels at every step).

**Blind** (every method gets only the corrupted image: no σ, no mask; ``Method.blind`` hides them in ``apply``):

- SIGN and IGN project: f(y), then their own re-noising levels (``editing.project`` at strength 0);
- the teacher, two ways: ``teacher_fixed``, SDEdit from the one level t* best for it over all seven corruptions
  (``choose_blind_level``: on ``--tune-images`` held-out digits disjoint from the scored ones, the level of the
  ``--blind-levels`` grid with the highest mean classifier accuracy, ties to the higher mean PSNR; one t* per
  teacher NFE setting), then ``nfe`` DDIM steps down; and ``teacher_estimated``, the informed denoiser at the noise
  level it estimates from the image itself (``editing.estimate_noise_sigma``).

Both settings also score the corrupted input itself. Each result is scored by its PSNR against the clean digit, the
LeNet classifier's accuracy against the digit's label (is it still the same digit?) and the Fréchet distance of all
results in LeNet features against the training digits. Writes ``editing.json`` (``informed`` and ``blind``
sections, ``targets``), ``editing.md`` (tables and targets per setting) and three figures, ``editing_metrics.png``
(PSNR and accuracy per corruption, both settings) and ``editing_examples_informed.png`` /
``editing_examples_blind.png`` (a few edits per corruption and method).

Randomness: image i (its index among the 500 held-out digits) draws its added noise from ``seeded_generator(seed,
i, 1)``, its random mask from ``seeded_generator(seed, i, 2)`` and every editor's draws from ``seeded_generator(seed,
i)``, as ``signs edit`` does: results do not depend on the batch size or on which other digits are in the run. The
scored digits are the first ``--num-images`` of a seeded permutation of the 500, the tuning digits its last
``--tune-images``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import torch
from torch import Tensor

from benchmarks.measure import device_name, synchronize
from benchmarks.provenance import source_config, write_results
from signs_lightning.commands.loading import load_generator
from signs_lightning.core.distributed import LocalStrategy
from signs_lightning.core.errors import SignsError
from signs_lightning.core.randomness import seeded_generator
from signs_lightning.data import EmbeddedMNISTDataModule
from signs_lightning.diffusion.score_model import ScoreModel
from signs_lightning.evaluation.grid import sample_rows_grid
from signs_lightning.evaluation.scoring import classifier_evaluator
from signs_lightning.inference import editing, sampling
from signs_lightning.modules.common import GeneratorModule

if TYPE_CHECKING:
    from matplotlib.figure import Figure

HELD_OUT = 500
SETTINGS = ("informed", "blind")
# The teacher's blind SDEdit levels tried, as fractions of T − 1 (σ = 0.2, 0.5, 1 sit at t = 57, 144, 258 of 1000).
BLIND_LEVELS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)
TARGET_TEACHER_NFE = 4
TARGET_MAX_SIGN_NFE = 2
# Informed: SIGN within this much of the teacher, or better.
INFORMED_PSNR_MARGIN = 0.5
INFORMED_ACCURACY_MARGIN = 0.01


# -- corruptions ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Corruption:
    """Gaussian noise of standard deviation ``sigma``, or a ``region`` to fill: ``half`` (the lower half), ``centre``
    (a centred box of half the side) or ``random`` (a ``fraction`` of the pixels)."""

    key: str
    label: str
    sigma: float | None = None
    region: str | None = None
    fraction: float = 0.0

    @property
    def is_noise(self) -> bool:
        return self.sigma is not None


CORRUPTIONS = (
    Corruption("noise_0.2", "noise σ=0.2", sigma=0.2),
    Corruption("noise_0.5", "noise σ=0.5", sigma=0.5),
    Corruption("noise_1", "noise σ=1", sigma=1.0),
    Corruption("box_half", "lower half", region="half"),
    Corruption("box_centre", "centre box", region="centre"),
    Corruption("pixels_50", "50% pixels", region="random", fraction=0.5),
    Corruption("pixels_80", "80% pixels", region="random", fraction=0.8),
)


def fill_mask(corruption: Corruption, size: int, generators: Sequence[torch.Generator | None]) -> Tensor:
    """(B, 1, size, size) float: 1 on the pixels to fill, one mask per generator (random masks are drawn from it).

    >>> fill_mask(Corruption("c", "c", region="centre"), 4, [None])[0, 0].int().tolist()
    [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    """
    masks = torch.zeros(len(generators), 1, size, size)
    if corruption.region == "half":
        masks[..., size // 2 :, :] = 1
    elif corruption.region == "centre":
        start = size // 4
        masks[..., start : start + size // 2, start : start + size // 2] = 1
    elif corruption.region == "random":
        count = round(corruption.fraction * size * size)
        for mask, generator in zip(masks.view(len(generators), -1), generators):
            mask[torch.randperm(size * size, generator=generator)[:count]] = 1
    else:
        raise ValueError(f"unknown region {corruption.region!r}")
    return masks


def corrupt(corruption: Corruption, x: Tensor, keys: Tensor, seed: int) -> tuple[Tensor, Tensor | None]:
    """(y, fill): y = x + σε (not clamped: the editors are given it as is), or x with the pixels to fill at
    mid-grey (0) and ``fill`` their mask; ``keys`` (B,) are the images' held-out indices, which seed the draws."""
    if corruption.is_noise:
        noise = sampling.randn_like(x, [seeded_generator(seed, int(i), 1) for i in keys])
        return x + corruption.sigma * noise, None
    fill = fill_mask(corruption, x.shape[-1], [seeded_generator(seed, int(i), 2) for i in keys]).to(x)
    return x * (1 - fill), fill


# -- the teacher's editors ------------------------------------------------------------------------------------------
def ddim_levels(t_start: int, nfe: int) -> list[int]:
    """``nfe`` decreasing DDIM levels evenly spaced from ``t_start`` down (the last step then goes to x̂₀).

    >>> ddim_levels(150, 4)
    [150, 112, 75, 38]
    """
    if not 1 <= nfe <= max(t_start, 1):
        raise ValueError(f"{nfe} DDIM steps do not fit below level {t_start}")
    return [round(t_start * (nfe - k) / nfe) for k in range(nfe)]


def ddim_path(
    teacher: ScoreModel,
    x: Tensor,
    levels: Sequence[int | Tensor],
    constrain: Callable[[Tensor, int], Tensor] | None = None,
) -> Tensor:
    """Deterministic DDIM from x at ``levels[0]`` through the other levels to x̂₀ (``ScoreModel.ddim_step``); a level
    is one int for the batch or a (B,) tensor of one per image. ``constrain(x, t)`` is applied to each state before
    its step (inpainting re-imposes the known pixels there)."""
    for t, s in zip(levels, [*levels[1:], -1]):
        if constrain is not None:
            x = constrain(x, t)
        level, target = (torch.as_tensor(step, device=x.device).long().expand(x.shape[0]) for step in (t, s))
        x = teacher.ddim_step(x, level, target)
    return x


def start_level(teacher: ScoreModel, sigma: float, nfe: int) -> int:
    """The level of noise σ (``editing.noise_level_timestep``; σ ≤ 0 is level 0), raised to ``nfe`` if below it so
    that ``nfe`` DDIM steps fit."""
    return max(editing.noise_level_timestep(teacher.schedule, sigma) if sigma > 0 else 0, nfe)


def teacher_denoise(teacher: ScoreModel, y: Tensor, sigma: float | Tensor, nfe: int) -> Tensor:
    """SDEdit at the noise's own level: √ā_t y, for the t of ``start_level``, is already a draw of q(x, t) (the input
    SIGN's ``editing.denoise`` gets too; re-noising further would only destroy more), then ``nfe`` DDIM steps down to
    x̂₀. ``sigma``: one for the batch or a (B,) tensor, one per image. Deterministic: DDIM draws nothing."""
    sigmas = torch.as_tensor(sigma, dtype=torch.float64).flatten().expand(y.shape[0]).tolist()
    levels = torch.tensor([ddim_levels(start_level(teacher, s, nfe), nfe) for s in sigmas], device=y.device).T
    alpha, _ = teacher.schedule.alpha_sigma(levels[0], y)
    return ddim_path(teacher, alpha * y, list(levels))


def teacher_inpaint(
    teacher: ScoreModel, y: Tensor, fill: Tensor, nfe: int, generator: sampling.RandomSource = None
) -> Tensor:
    """Inpainting by replacement: the teacher's own ``nfe``-step DDIM sampler from noise, where before every step the
    known pixels are replaced by y re-noised to that step's level (fresh noise each time); known pixels kept exactly."""
    keep = 1 - fill

    def known(x: Tensor, t: int) -> Tensor:
        return keep * sampling.renoise(y, teacher.schedule, t, generator) + fill * x

    x0 = ddim_path(teacher, sampling.randn_like(y, generator), teacher.schedule.ddim_timesteps(nfe), known)
    return keep * y + fill * x0


def teacher_sdedit(
    teacher: ScoreModel, y: Tensor, t_start: int, nfe: int, generator: sampling.RandomSource = None
) -> Tensor:
    """Blind SDEdit at a fixed level: q(y, t_start, ε) (fresh noise), then ``nfe`` DDIM steps down to x̂₀."""
    return ddim_path(teacher, sampling.renoise(y, teacher.schedule, t_start, generator), ddim_levels(t_start, nfe))


def teacher_estimated(teacher: ScoreModel, y: Tensor, nfe: int) -> Tensor:
    """Blind denoising by the teacher: its informed denoiser at each image's own estimated noise level
    (``editing.estimate_noise_sigma``; ≈ 0 for images without noise, which then barely change)."""
    return teacher_denoise(teacher, y, editing.estimate_noise_sigma(y), nfe)


# -- the compared methods -------------------------------------------------------------------------------------------
# editor(corruption or None, y, fill or None, one generator per image) -> result; blind editors get None for both.
Editor = Callable[[Optional[Corruption], Tensor, Optional[Tensor], list[torch.Generator]], Tensor]
# Method names → (label prefix, colour family of the figures).
NAMES = {
    "sign": ("sign", "Blues"),
    "ign": ("ign", "Greens"),
    "teacher": ("teacher", "Oranges"),
    "teacher_fixed": ("teacher, fixed t*", "Oranges"),
    "teacher_estimated": ("teacher, estimated σ", "Purples"),
}


@dataclass(frozen=True)
class Method:
    name: str  # corrupted, or a key of NAMES
    nfe: int
    edit: Editor
    blind: bool = False  # given only the corrupted image (``apply`` withholds the corruption and the mask)
    level: int | None = None  # teacher_fixed: its SDEdit level t*

    @property
    def label(self) -> str:
        return "corrupted input" if self.name == "corrupted" else f"{NAMES[self.name][0]} @ {self.nfe}"


def generator_editor(model: GeneratorModule, nfe: int) -> Editor:
    """``signs edit``'s editors with ``model``'s EMA network at ``nfe`` NFE: informed ``denoise`` (σ given) and
    ``inpaint`` (mask given); blind (neither given), ``project`` at strength 0: f(y), then the model's own levels."""
    f, schedule, levels = model.sampling_network, model.schedule, model.renoise_timesteps(nfe)

    def edit(
        corruption: Corruption | None, y: Tensor, fill: Tensor | None, generators: list[torch.Generator]
    ) -> Tensor:
        if corruption is None:
            return editing.project(f, y, schedule, 0, levels, generators)
        if fill is None:
            return editing.denoise(f, y, schedule, corruption.sigma, levels, generators)
        return sampling.inpaint(f, y, fill, schedule, levels, generators)

    return edit


def teacher_editor(teacher: ScoreModel, nfe: int) -> Editor:
    """Informed: ``teacher_denoise`` at the given σ, ``teacher_inpaint`` with the given mask."""

    def edit(
        corruption: Corruption | None, y: Tensor, fill: Tensor | None, generators: list[torch.Generator]
    ) -> Tensor:
        if corruption is None:
            raise ValueError("the informed teacher needs the corruption")
        if fill is None:
            return teacher_denoise(teacher, y, corruption.sigma, nfe)
        return teacher_inpaint(teacher, y, fill, nfe, generators)

    return edit


def fixed_level_editor(teacher: ScoreModel, t_start: int, nfe: int) -> Editor:
    """Blind: ``teacher_sdedit`` from ``t_start``, whatever the corruption."""

    def edit(
        corruption: Corruption | None, y: Tensor, fill: Tensor | None, generators: list[torch.Generator]
    ) -> Tensor:
        return teacher_sdedit(teacher, y, t_start, nfe, generators)

    return edit


def estimated_level_editor(teacher: ScoreModel, nfe: int) -> Editor:
    """Blind: ``teacher_estimated``, whatever the corruption."""

    def edit(
        corruption: Corruption | None, y: Tensor, fill: Tensor | None, generators: list[torch.Generator]
    ) -> Tensor:
        return teacher_estimated(teacher, y, nfe)

    return edit


def unedited(
    corruption: Corruption | None, y: Tensor, fill: Tensor | None, generators: list[torch.Generator]
) -> Tensor:
    return y


def methods(
    sign: GeneratorModule,
    teacher: ScoreModel,
    ign: GeneratorModule | None,
    sign_nfe: Sequence[int],
    teacher_nfe: Sequence[int],
    ign_nfe: Sequence[int],
) -> list[Method]:
    """Informed: the corrupted input, then SIGN, IGN (when given) and the teacher at each of their NFE settings."""
    compared = [Method("corrupted", 0, unedited)]
    compared += [Method("sign", k, generator_editor(sign, k)) for k in sign_nfe]
    if ign is not None:
        compared += [Method("ign", k, generator_editor(ign, k)) for k in ign_nfe]
    return compared + [Method("teacher", k, teacher_editor(teacher, k)) for k in teacher_nfe]


def blind_methods(
    sign: GeneratorModule,
    teacher: ScoreModel,
    ign: GeneratorModule | None,
    sign_nfe: Sequence[int],
    teacher_levels: dict[int, int],
    ign_nfe: Sequence[int],
) -> list[Method]:
    """Blind: the corrupted input, SIGN and IGN projecting, then at each teacher NFE k (``teacher_levels``: k → its
    chosen t*) the teacher's fixed-level SDEdit and its estimated-σ denoiser."""
    compared = [Method("corrupted", 0, unedited, blind=True)]
    compared += [Method("sign", k, generator_editor(sign, k), blind=True) for k in sign_nfe]
    if ign is not None:
        compared += [Method("ign", k, generator_editor(ign, k), blind=True) for k in ign_nfe]
    for k, t in teacher_levels.items():
        compared.append(Method("teacher_fixed", k, fixed_level_editor(teacher, t, k), blind=True, level=t))
    return compared + [Method("teacher_estimated", k, estimated_level_editor(teacher, k), blind=True)
                       for k in teacher_levels]  # fmt: skip


@torch.no_grad()
def apply(
    method: Method, corruption: Corruption, y: Tensor, fill: Tensor | None, keys: Tensor, seed: int, batch_size: int
) -> Tensor:
    """The method's results for all images, in [-1, 1], batch by batch; image i draws from seeded_generator(seed, i).
    A blind method is given y alone: None for the corruption and the mask."""
    results = []
    for start in range(0, len(keys), batch_size):
        batch = slice(start, start + batch_size)
        generators = [seeded_generator(seed, int(i)) for i in keys[batch]]
        given = None if fill is None or method.blind else fill[batch]
        told = None if method.blind else corruption
        results.append(method.edit(told, y[batch], given, generators).float().clamp(-1, 1))
    return torch.cat(results)


# -- scores ---------------------------------------------------------------------------------------------------------
# metric: (title, number format)
METRICS = {
    "psnr": ("PSNR (dB, higher is better)", ".2f"),
    "accuracy": ("classifier accuracy (higher is better)", ".1%"),
    "fd": ("Fréchet distance, LeNet features (lower is better)", ".2f"),
}


def psnr(results: Tensor, clean: Tensor) -> Tensor:
    """(B,) dB on the [-1, 1] scale (peak-to-peak 2), i.e. the PSNR of the images as 8-bit files up to rounding.

    >>> float(psnr(torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.2)))  # 10·log10(4 / 0.04)
    20.0
    """
    mse = (results.float() - clean.float()).pow(2).mean(dim=(1, 2, 3))
    return 10 * torch.log10(4 / mse.clamp(min=1e-10))


class EditScorer:
    """PSNR, the held-out LeNet classifier's accuracy and the LeNet Fréchet distance of a set of results.

    The Fréchet distance is ``FIDEvaluator.score_images`` against the training digits' statistics it caches (the
    ones every other benchmark and ``signs demo`` measure against).
    """

    def __init__(self, datamodule: EmbeddedMNISTDataModule, device: torch.device, batch_size: int) -> None:
        self.strategy = LocalStrategy(device)
        # It scores the images it is given (its own sample count and seed go unused).
        self.evaluator = classifier_evaluator(datamodule, self.strategy, num_samples=2, batch_size=batch_size)
        self.lenet = self.evaluator.extractor
        self.batch_size = batch_size

    @torch.no_grad()
    def accuracy(self, images: Tensor, labels: Tensor) -> float:
        hits = [
            (self.lenet.classify(images[i : i + self.batch_size]).argmax(1) == labels[i : i + self.batch_size]).sum()
            for i in range(0, len(images), self.batch_size)
        ]
        return float(sum(hits)) / len(images)

    def frechet(self, images: Tensor) -> float:
        return self.evaluator.score_images(images.split(self.batch_size), self.strategy)["fid"]

    def __call__(self, results: Tensor, clean: Tensor, labels: Tensor) -> dict[str, float]:
        return {
            "psnr": psnr(results, clean).mean().item(),
            "accuracy": self.accuracy(results, labels),
            "fd": self.frechet(results),
        }


# -- the run --------------------------------------------------------------------------------------------------------
def held_out_module(image_size: int) -> EmbeddedMNISTDataModule:
    datamodule = EmbeddedMNISTDataModule(image_size=image_size, batch_size=500)
    datamodule.setup("validate")
    return datamodule


def pick_digits(
    datamodule: EmbeddedMNISTDataModule, count: int, seed: int, last: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """(images (N, 1, S, S), labels (N,), their indices among the held-out digits): the first ``count`` of a seeded
    permutation of them (the scored digits), or with ``last`` its last ``count`` (the tuning digits; disjoint from
    the scored ones while the two counts add up to at most the held-out split's size). The held-out split is sorted
    by label: the permutation keeps every class in a subset."""
    images, labels = datamodule.val_set.tensors
    if not 2 <= count <= len(labels):
        raise SignsError(f"--num-images must be in [2, {len(labels)}] (the held-out digits), got {count}")
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    keys = order[-count:] if last else order[:count]
    return images[keys], labels[keys], keys


def held_out_digits(image_size: int, count: int, seed: int) -> tuple[EmbeddedMNISTDataModule, Tensor, Tensor, Tensor]:
    """(datamodule, images (N, 1, S, S), labels (N,), their indices among the 500 held-out digits): ``pick_digits``'
    scored digits."""
    datamodule = held_out_module(image_size)
    return (datamodule, *pick_digits(datamodule, count, seed))


def blind_level_grid(teacher: ScoreModel, fractions: Sequence[float], nfe: int) -> list[int]:
    """The grid's levels round(fraction · (T − 1)) where ``nfe`` DDIM steps fit (t ≥ nfe), without repeats."""
    levels = dict.fromkeys(round(fraction * (teacher.schedule.num_timesteps - 1)) for fraction in fractions)
    return [t for t in levels if t >= nfe]


def choose_blind_level(
    teacher: ScoreModel,
    nfe: int,
    grid: Sequence[int],
    tuning: tuple[Tensor, Tensor, Tensor],
    scorer: EditScorer,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """The teacher's blind SDEdit level t* at ``nfe`` NFE: the level of ``grid`` with the highest classifier accuracy
    averaged over all corruptions of the ``tuning`` digits (ties: the higher mean PSNR).

    Accuracy, because it asks what a repair is for (is it still the same digit?), is on one scale for every
    corruption (a mean over them weighs each alike, as dB do not), and is half of what the blind target compares;
    the Fréchet distance, the other half, is a set statistic too noisy on a small tuning split. Returns ``{"level":
    t*, "scores": {t: {"accuracy", "psnr"}}}``."""
    clean, labels, keys = tuning
    corrupted = [corrupt(corruption, clean, keys, args.seed)[0] for corruption in CORRUPTIONS]
    scores: dict[str, dict[str, float]] = {}
    for t in grid:
        method = Method("teacher_fixed", nfe, fixed_level_editor(teacher, t, nfe), blind=True, level=t)
        results = [apply(method, c, y, None, keys, args.seed, args.batch_size) for c, y in zip(CORRUPTIONS, corrupted)]
        scores[str(t)] = {
            "accuracy": sum(scorer.accuracy(r, labels) for r in results) / len(results),
            "psnr": sum(psnr(r, clean).mean().item() for r in results) / len(results),
        }
    if not scores:
        raise SignsError(f"no level of --blind-levels fits {nfe} DDIM steps: add higher ones")
    best = max(scores, key=lambda t: (scores[t]["accuracy"], scores[t]["psnr"]))
    mean = scores[best]
    print(
        f"[editing] blind teacher @ {nfe}: t* = {best} (mean accuracy {mean['accuracy']:.1%}, PSNR "
        f"{mean['psnr']:.2f} over {len(CORRUPTIONS)} corruptions of {len(keys)} tuning digits)"
    )
    return {"level": int(best), "scores": scores}


def run_corruption(
    corruption: Corruption,
    compared: list[Method],
    digits: tuple[Tensor, Tensor, Tensor],
    scorer: EditScorer,
    args: argparse.Namespace,
) -> tuple[list[dict[str, Any]], list[Tensor]]:
    """(one result row per method, each method's first ``args.examples`` results) for one corruption."""
    clean, labels, keys = digits
    y, fill = corrupt(corruption, clean, keys, args.seed)
    rows, examples = [], []
    for method in compared:
        synchronize(scorer.strategy.root_device)
        start = time.perf_counter()
        results = apply(method, corruption, y, fill, keys, args.seed, args.batch_size)
        synchronize(scorer.strategy.root_device)
        seconds = time.perf_counter() - start
        scores = scorer(results, clean, labels)
        rows.append(
            {
                "corruption": corruption.key,
                "method": method.name,
                "nfe": method.nfe,
                "label": method.label,
                **({} if method.level is None else {"level": method.level}),
                **scores,
                "images_per_second": len(keys) / max(seconds, 1e-9),
            }
        )
        examples.append(results[: args.examples].cpu())
        setting = "blind" if method.blind else "informed"
        print(
            f"[editing] {setting:8} {corruption.label:12} {method.label:26} PSNR {scores['psnr']:6.2f}  "
            f"accuracy {scores['accuracy']:6.1%}  FD {scores['fd']:8.2f}"
        )
    return rows, [clean[: args.examples].cpu(), *examples]


def run_setting(
    compared: list[Method], digits: tuple[Tensor, Tensor, Tensor], scorer: EditScorer, args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, list[Tensor]]]:
    """({"rows", "tables"}, each corruption's example rows) of one setting's methods over every corruption."""
    rows: list[dict[str, Any]] = []
    examples: dict[str, list[Tensor]] = {}
    for corruption in CORRUPTIONS:
        scored, examples[corruption.key] = run_corruption(corruption, compared, digits, scorer, args)
        rows += scored
    return {"rows": rows, "tables": tables(rows)}, examples


def tables(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """{metric: {method label: {corruption: value}}} for PSNR, accuracy and Fréchet distance."""
    labels = dict.fromkeys(r["label"] for r in rows)
    return {
        metric: {label: {r["corruption"]: r[metric] for r in rows if r["label"] == label} for label in labels}
        for metric in METRICS
    }


def find_row(rows: list[dict[str, Any]], corruption: str, method: str, nfe: int) -> dict[str, Any] | None:
    return next((r for r in rows if (r["corruption"], r["method"], r["nfe"]) == (corruption, method, nfe)), None)


# -- targets --------------------------------------------------------------------------------------------------------
def target(text: str, met: bool | None, detail: str) -> dict[str, Any]:
    """One entry of ``targets``, the shape of ``make bench``'s summary (``benchmarks/report.py``)."""
    return {"target": text, "met": met, "detail": detail}


NEEDS = (
    f"needs SIGN at <= {TARGET_MAX_SIGN_NFE} NFE"
    f" and the teacher at {TARGET_TEACHER_NFE} NFE (--sign-nfe, --teacher-nfe)"
)


def sign_rows(rows: list[dict[str, Any]], corruption: str) -> list[dict[str, Any]]:
    """SIGN's rows at ≤ ``TARGET_MAX_SIGN_NFE`` NFE for one corruption."""
    found = [find_row(rows, corruption, "sign", k) for k in range(1, TARGET_MAX_SIGN_NFE + 1)]
    return [r for r in found if r is not None]


def scored(row: dict[str, Any]) -> str:
    return f"{row['label']} {row['psnr']:.2f} dB / {row['accuracy']:.1%} / FD {row['fd']:.2f}"


def overall(text: str, entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Met when every per-corruption entry (corruption label → entry) is; not measured when one is not."""
    verdicts = [e["met"] for e in entries.values()]
    if None in verdicts:
        return target(text, None, "needs every corruption measured (see the entries above)")
    missed = [label for label, e in entries.items() if not e["met"]]
    detail = f"{len(entries) - len(missed)} of {len(entries)} corruptions met"
    return target(text, all(verdicts), detail + (f"; missed: {', '.join(missed)}" if missed else ""))


def informed_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Informed: per corruption, one SIGN setting at ≤ 2 NFE within 0.5 dB and 1 accuracy point of the teacher at 4
    NFE, or better (both by the same setting); then all of them."""
    claim = (
        f"SIGN at <= {TARGET_MAX_SIGN_NFE} NFE within {INFORMED_PSNR_MARGIN} dB and "
        f"{INFORMED_ACCURACY_MARGIN * 100:g} accuracy point of the teacher at {TARGET_TEACHER_NFE} NFE, or better"
    )
    entries: dict[str, dict[str, Any]] = {}
    for corruption in CORRUPTIONS:
        text = f"informed, {corruption.label}: {claim}"
        teacher, signs = find_row(rows, corruption.key, "teacher", TARGET_TEACHER_NFE), sign_rows(rows, corruption.key)
        if teacher is None or not signs:
            entries[corruption.label] = target(text, None, NEEDS)
            continue
        met = any(
            r["psnr"] >= teacher["psnr"] - INFORMED_PSNR_MARGIN
            and r["accuracy"] >= teacher["accuracy"] - INFORMED_ACCURACY_MARGIN
            for r in signs
        )
        entries[corruption.label] = target(text, met, "; ".join(scored(r) for r in [*signs, teacher]))
    return [*entries.values(), overall(f"informed, every corruption: {claim}", entries)]


def blind_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Blind: per corruption, one SIGN setting at ≤ 2 NFE with a higher accuracy and a lower Fréchet distance than
    both blind teachers at 4 NFE (fixed t* and estimated σ); then all of them."""
    claim = (
        f"SIGN at <= {TARGET_MAX_SIGN_NFE} NFE beats the teacher at {TARGET_TEACHER_NFE} NFE (fixed t* and estimated "
        "σ) on accuracy and Fréchet distance"
    )
    entries: dict[str, dict[str, Any]] = {}
    for corruption in CORRUPTIONS:
        text = f"blind, {corruption.label}: {claim}"
        teachers = [find_row(rows, corruption.key, name, TARGET_TEACHER_NFE)
                    for name in ("teacher_fixed", "teacher_estimated")]  # fmt: skip
        signs = sign_rows(rows, corruption.key)
        if None in teachers or not signs:
            entries[corruption.label] = target(text, None, NEEDS)
            continue
        best_accuracy, best_fd = max(t["accuracy"] for t in teachers), min(t["fd"] for t in teachers)
        met = any(r["accuracy"] > best_accuracy and r["fd"] < best_fd for r in signs)
        entries[corruption.label] = target(text, met, "; ".join(scored(r) for r in [*signs, *teachers]))
    return [*entries.values(), overall(f"blind, every corruption: {claim}", entries)]


# -- outputs --------------------------------------------------------------------------------------------------------
def value_cell(row: dict[str, Any], metric: str) -> str:
    """A table cell: the row's value of ``metric`` in its ``METRICS`` format."""
    return format(row[metric], METRICS[metric][1])


def metric_table(
    rows: list[dict[str, Any]], metric: str, cell: Callable[[dict[str, Any], str], str] = value_cell
) -> str:
    """Markdown: one row per method, one column per corruption; ``cell(row, metric)`` writes each cell."""
    corruptions = [c for c in CORRUPTIONS if any(r["corruption"] == c.key for r in rows)]
    labels = list(dict.fromkeys(r["label"] for r in rows))
    lines = ["| method | " + " | ".join(c.label for c in corruptions) + " |", "|---" * (len(corruptions) + 1) + "|"]
    for label in labels:
        cells = {r["corruption"]: cell(r, metric) for r in rows if r["label"] == label}
        lines.append(f"| {label} | " + " | ".join(cells.get(c.key, "-") for c in corruptions) + " |")
    return "\n".join(lines)


SETTING_TEXT = {
    "informed": (
        "Informed: the corruption is given",
        "Every method is told σ (denoising) or the mask (inpainting). SIGN and IGN: `editing.denoise` with σ (its "
        "refinement re-noises to at most σ's level) and `sampling.inpaint`; the teacher: DDIM from σ's level, and "
        "inpainting by replacement.",
    ),
    "blind": (
        "Blind: only the corrupted image",
        "No σ, no mask (the pixels to fill are mid-grey). SIGN and IGN project: f(y), then their own re-noising "
        "levels. The teacher: SDEdit from one fixed level t* (`teacher, fixed t*`), and its informed denoiser at the "
        "noise level it estimates from the image (`teacher, estimated σ`).",
    ),
}


def target_line(item: dict[str, Any]) -> str:
    """One entry of ``targets`` as a markdown list item."""
    verdict = {True: "met", False: "**missed**", None: "not measured"}[item["met"]]
    return f"- {item['target']}: {verdict} ({item['detail']})"


def markdown(summary: dict[str, Any]) -> str:
    settings, clean = summary["settings"], summary["clean"]
    lines = [
        "# Editing benchmark",
        "",
        f"`python -m benchmarks.editing {' '.join(settings['argv'])}` on {settings['device']}: "
        f"{summary['wall_seconds']:.0f} s. {settings['num_images']} held-out digits "
        f"({settings['image_size']}x{settings['image_size']}), seed {settings['seed']}. SIGN `{settings['sign']}`, "
        f"IGN `{settings['ign']}`, teacher `{settings['teacher']}`. What is measured: `benchmarks/README.md`.",
        "",
        f"The clean digits themselves: classifier accuracy {clean['accuracy']:.1%}, Fréchet distance "
        f"{clean['fd']:.2f} (the floor at {settings['num_images']} images).",
    ]
    for setting in SETTINGS:
        title, text = SETTING_TEXT[setting]
        lines += ["", f"## {title}", "", text]
        if setting == "blind":
            chosen = ", ".join(f"t* = {v['level']} at {k} NFE" for k, v in summary["blind"]["teacher_levels"].items())
            lines += [
                "",
                f"The teacher's t*, chosen on {settings['tune_images']} other held-out digits (disjoint from the "
                f"scored ones) over the levels {settings['blind_levels']}, by the mean classifier accuracy over all "
                f"corruptions (ties: mean PSNR): {chosen}.",
            ]
        for metric, (metric_title, _) in METRICS.items():
            lines += ["", f"### {metric_title[0].upper()}{metric_title[1:]}", "", metric_table(
                summary[setting]["rows"], metric)]  # fmt: skip
        lines += ["", f"![Examples, {setting}: clean, then each method's result, per corruption]"
                      f"(editing_examples_{setting}.png)"]  # fmt: skip
    lines += ["", "## Targets", ""]
    lines += [target_line(item) for item in summary["targets"]]
    lines += ["", "![PSNR and accuracy per corruption, informed and blind](editing_metrics.png)"]
    return "\n".join(lines) + "\n"


def method_style(name: str, nfe: int, settings: dict[str, Any]) -> dict[str, Any]:
    """One colour family per method (darker = more NFE); the corrupted input dashed grey."""
    from matplotlib import colormaps

    if name == "corrupted":
        return {"color": "0.5", "linestyle": "--"}
    steps = settings["teacher_nfe" if name.startswith("teacher") else f"{name}_nfe"]
    shade = 0.45 + 0.5 * steps.index(nfe) / max(len(steps) - 1, 1)
    marker = {"teacher_fixed": "s", "teacher_estimated": "^"}.get(name, "o")
    return {"color": colormaps[NAMES[name][1]](shade), "linestyle": "-", "marker": marker}


# The figures are built without pyplot: no global backend to switch on servers, and a notebook shows them as they are.
def metrics_figure(summary: dict[str, Any]) -> Figure:
    """PSNR (top) and accuracy (bottom) against the noise level and the inpainting mask, informed (left two columns)
    and blind (right two)."""
    from matplotlib.figure import Figure

    groups = [[c for c in CORRUPTIONS if c.is_noise], [c for c in CORRUPTIONS if not c.is_noise]]
    figure = Figure(figsize=(20, 7.5))
    axes = figure.subplots(2, 2 * len(SETTINGS), sharex="col")
    for s, setting in enumerate(SETTINGS):
        rows = summary[setting]["rows"]
        for row_axes, metric in zip(axes, ["psnr", "accuracy"]):
            for ax, group in zip(row_axes[2 * s : 2 * s + 2], groups):
                for label in dict.fromkeys(r["label"] for r in rows):
                    points = [
                        (i, r[metric])
                        for i, c in enumerate(group)
                        for r in rows
                        if r["label"] == label and r["corruption"] == c.key
                    ]
                    if points:
                        first = next(r for r in rows if r["label"] == label)
                        style = method_style(first["method"], first["nfe"], summary["settings"])
                        ax.plot(*zip(*points), label=label, **style)
                ax.set_xticks(range(len(group)), [c.label for c in group])
                ax.set_ylabel(METRICS[metric][0])
                ax.grid(True, alpha=0.3)
            if metric == "accuracy":
                row_axes[2 * s].axhline(summary["clean"]["accuracy"], color="k", linewidth=0.8, label="clean digits")
        axes[0][2 * s].set_title(f"{setting}: denoising")
        axes[0][2 * s + 1].set_title(f"{setting}: inpainting (region to fill)")
        axes[1][2 * s].legend(fontsize=7)
    figure.tight_layout()
    return figure


def examples_figure(panels: dict[str, list[Tensor]], row_labels: list[str]) -> Figure:
    """One panel per title in ``panels``, each a list of rows of images (B, C, H, W) in [-1, 1], one per label in
    ``row_labels`` (the same in every panel)."""
    from matplotlib.figure import Figure

    columns = next(iter(panels.values()))[0].shape[0]
    figure = Figure(figsize=(0.35 * columns * len(panels) + 2.5, 0.35 * len(row_labels) + 0.8))
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for index, (ax, (title, rows)) in enumerate(zip(axes, panels.items())):
        grid = sample_rows_grid(rows, per_row=columns)
        ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        height = grid.shape[1] / len(rows)
        ax.set_yticks([height * (i + 0.5) for i in range(len(rows))], row_labels if index == 0 else [], fontsize=8)
    figure.tight_layout()
    return figure


# -- command line ---------------------------------------------------------------------------------------------------
# The multi-step sampler's settings a run may set for SIGN instead of the checkpoint's (checked by the module's own
# validation): a sampler rule promoted after a model was trained is scored on that model.
SAMPLER_OPTIONS = (
    ("renoise_noise", str, "re-noising rule: fresh, initial or path"),
    ("renoise_max_level", float, "top re-noising level, a fraction of T"),
    ("renoise_spacing", str, "level spacing: even or constant"),
    ("renoise_eta", float, "fresh noise mixed into the initial / path rules, in [0, 1]"),
)


def sampler_settings(model: GeneratorModule, args: argparse.Namespace) -> dict[str, Any]:
    """Apply the sampler options given on the command line to ``model`` (``sampling.check_renoise_settings``, as its
    constructor does) and return the settings it samples with."""
    given = {name: getattr(args, name) for name, _, _ in SAMPLER_OPTIONS if getattr(args, name) is not None}
    settings = {name: getattr(model, name) for name, _, _ in SAMPLER_OPTIONS} | given
    try:
        sampling.check_renoise_settings(
            settings["renoise_noise"],
            settings["renoise_max_level"],
            settings["renoise_spacing"],
            settings["renoise_eta"],
        )
    except ValueError as error:
        raise SignsError(f"{args.sign}: {error} (--renoise-* options)") from None
    for name, value in settings.items():
        setattr(model, name, value)
    return settings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.editing", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sign", required=True, help="a SIGN checkpoint (its teacher is the DDIM baseline)")
    parser.add_argument("--ign", help="an IGN checkpoint of the same image size (optional)")
    parser.add_argument("--teacher", help="the teacher folder, if the checkpoints' recorded one has moved")
    parser.add_argument("--output", default="benchmarks/results/editing", help="(default: benchmarks/results/editing)")
    parser.add_argument(
        "--num-images", type=int, help=f"scored held-out digits (default: {HELD_OUT} - --tune-images, with --smoke 16)"
    )
    parser.add_argument(
        "--tune-images", type=int, help="other held-out digits that choose the blind teacher's level (default: 100, "
        "with --smoke 8)"
    )  # fmt: skip
    parser.add_argument(
        "--blind-levels", type=float, nargs="+", default=list(BLIND_LEVELS),
        help="the blind teacher's SDEdit levels tried, as fractions of T - 1 (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--sign-nfe", type=int, nargs="+", default=[1, 2, 4], help="(default: 1 2 4)")
    parser.add_argument("--teacher-nfe", type=int, nargs="+", default=[1, 4, 10], help="(default: 1 4 10)")
    parser.add_argument("--ign-nfe", type=int, nargs="+", default=[1], help="(default: 1)")
    parser.add_argument("--examples", type=int, default=6, help="digits per corruption in the examples figures")
    parser.add_argument("--batch-size", type=int, default=250, help="images per forward pass (default: 250)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the subsets, the corruptions and the editors")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="16 digits (8 to tune): checks the pipeline only")
    for name, kind, text in SAMPLER_OPTIONS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, help=f"SIGN's {text} (default: the checkpoint's)")
    args = parser.parse_args(argv)
    if args.tune_images is None:
        args.tune_images = 8 if args.smoke else 100
    if args.num_images is None:
        args.num_images = 16 if args.smoke else HELD_OUT - args.tune_images
    if min(args.sign_nfe + args.teacher_nfe + args.ign_nfe + [args.examples, args.batch_size]) < 1:
        parser.error("NFE settings, --examples and --batch-size must be >= 1")
    if args.tune_images < 2 or args.num_images + args.tune_images > HELD_OUT:
        parser.error(f"--tune-images must be >= 2 and, with --num-images, at most the {HELD_OUT} held-out digits")
    if not all(0 < level <= 1 for level in args.blind_levels):
        parser.error("--blind-levels must be fractions in (0, 1]")
    args.examples = min(args.examples, args.num_images)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    return args


def load_models(
    args: argparse.Namespace, device: torch.device
) -> tuple[GeneratorModule, ScoreModel, GeneratorModule | None]:
    """SIGN with its teacher, and IGN, on ``device``; IGN must make the same images."""
    sign = load_generator(args.sign, args.teacher).to(device)
    if sign.teacher is None:
        raise SignsError(f"{args.sign} has no teacher (an exported folder?): pass the SIGN checkpoint")
    ign = load_generator(args.ign, args.teacher).to(device) if args.ign else None
    if ign is not None and ign.image_shape != sign.image_shape:
        raise SignsError(f"IGN makes {ign.image_shape} images, SIGN {sign.image_shape}: compare models of one size")
    if sign.image_shape[0] != 1:
        raise SignsError(f"the editing benchmark uses MNIST digits: SIGN makes {sign.image_shape} images")
    return sign, sign.teacher, ign


def main(argv: list[str] | None = None) -> Path:
    """Run the benchmark; returns the output folder."""
    args = parse_args(argv)
    start = time.perf_counter()
    device = torch.device(args.device)
    out = Path(args.output).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    sign, teacher, ign = load_models(args, device)
    sign_sampler = sampler_settings(sign, args)
    datamodule = held_out_module(sign.image_shape[-1])
    scorer = EditScorer(datamodule, device, args.batch_size)
    clean, labels, keys = pick_digits(datamodule, args.num_images, args.seed)
    tuning = pick_digits(datamodule, args.tune_images, args.seed, last=True)
    digits = (clean.to(device), labels.to(device), keys)
    tuning = (tuning[0].to(device), tuning[1].to(device), tuning[2])
    ign_nfe = args.ign_nfe if ign else []

    informed_methods = methods(sign, teacher, ign, args.sign_nfe, args.teacher_nfe, ign_nfe)
    informed, informed_examples = run_setting(informed_methods, digits, scorer, args)
    grids = {k: blind_level_grid(teacher, args.blind_levels, k) for k in args.teacher_nfe}
    levels = {str(k): choose_blind_level(teacher, k, grids[k], tuning, scorer, args) for k in args.teacher_nfe}
    chosen = {k: levels[str(k)]["level"] for k in args.teacher_nfe}
    blind_compared = blind_methods(sign, teacher, ign, args.sign_nfe, chosen, ign_nfe)
    blind, blind_examples = run_setting(blind_compared, digits, scorer, args)
    blind["teacher_levels"] = levels
    summary = {
        "settings": {
            "argv": args.argv, "device": device_name(device), "sign": args.sign, "ign": args.ign,
            "sign_sampler": sign_sampler, "teacher": teacher.source, "num_images": args.num_images,
            "tune_images": args.tune_images,
            "blind_levels": sorted({t for grid in grids.values() for t in grid}),
            "blind_level_criterion": "mean classifier accuracy over all corruptions of the tuning digits; ties: PSNR",
            "image_size": sign.image_shape[-1], "seed": args.seed, "sign_nfe": args.sign_nfe,
            "teacher_nfe": args.teacher_nfe, "ign_nfe": ign_nfe, "classifier": scorer.lenet.name,
            "classifier_held_out_accuracy": scorer.lenet.accuracy,
        },
        "corruptions": [vars(c) for c in CORRUPTIONS],
        "clean": {"accuracy": scorer.accuracy(digits[0], digits[1]), "fd": scorer.frechet(digits[0])},
        "informed": informed,
        "blind": blind,
        "targets": informed_targets(informed["rows"]) + blind_targets(blind["rows"]),
        "wall_seconds": time.perf_counter() - start,
    }  # fmt: skip
    sources = [source_config(path) for path in (args.sign, args.ign) if path]
    summary = write_results(out / "editing.json", summary, "".join([*sources, *args.argv]))
    (out / "editing.md").write_text(markdown(summary))
    metrics_figure(summary).savefig(out / "editing_metrics.png", dpi=110)
    for setting, compared, examples in [("informed", informed_methods, informed_examples),
                                        ("blind", blind_compared, blind_examples)]:  # fmt: skip
        panels = {corruption.label: examples[corruption.key] for corruption in CORRUPTIONS}
        figure = examples_figure(panels, ["clean"] + [m.label for m in compared])
        figure.savefig(out / f"editing_examples_{setting}.png", dpi=120)
    for item in summary["targets"]:
        verdict = {True: "MET", False: "MISSED", None: "NOT MEASURED"}[item["met"]]
        print(f"[editing] target {verdict}: {item['target']} ({item['detail']})")
    print(f"[editing] wrote {out} in {summary['wall_seconds']:.0f} s")
    return out


if __name__ == "__main__":
    main()
