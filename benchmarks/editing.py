"""The editing claim, measured: zero-shot repair of corrupted held-out digits by SIGN, its teacher and IGN.

    python -m benchmarks.editing --sign CKPT [--ign CKPT] [--output benchmarks/results/editing] [--num-images 500]
        [--sign-nfe 1 2 4] [--teacher-nfe 1 4 10] [--ign-nfe 1] [--seed 0] [--smoke]

On ``--num-images`` held-out embedded-MNIST digits (a seeded, class-mixed subset of the 500), seven corruptions:
Gaussian noise σ = 0.2, 0.5, 1 (on the [-1, 1] scale), and inpainting of the lower half, a centre box (half the side)
and 50% / 80% of the pixels at random. Each is repaired by

- SIGN and IGN with the editors of ``signs edit`` (``inference/editing.py``: ``denoise``, ``inpaint``) at their
  NFE settings;
- the teacher doing the same job with DDIM (``teacher_denoise``: the noisy image scaled to its noise level, then
  DDIM down; ``teacher_inpaint``: DDIM from noise, re-imposing the re-noised known pixels at every step);
- nothing: the corrupted input itself (noise added, or the pixels to fill at mid-grey).

Each result is scored by its PSNR against the clean digit, the LeNet classifier's accuracy against the digit's label
(is it still the same digit?) and the Fréchet distance of all results in LeNet features against the training digits.
Writes ``editing.json``, ``editing.md`` (tables and the target) and two figures, ``editing_metrics.png`` (PSNR and
accuracy per corruption strength) and ``editing_examples.png`` (a few edits per corruption and method).

Randomness: image i (its index among the 500 held-out digits) draws its added noise from ``seeded_generator(seed,
i, 1)``, its random mask from ``seeded_generator(seed, i, 2)`` and every editor's draws from ``seeded_generator(seed,
i)``, as ``signs edit`` does: results do not depend on the batch size or on which other digits are in the run.
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
# The target's two tasks: mid-level noise and half-image inpainting.
TARGET_CORRUPTIONS = ("noise_0.5", "box_half")
TARGET_TEACHER_NFE = 4
TARGET_MAX_SIGN_NFE = 2


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
    teacher: ScoreModel, x: Tensor, levels: Sequence[int], constrain: Callable[[Tensor, int], Tensor] | None = None
) -> Tensor:
    """Deterministic DDIM from x at ``levels[0]`` through the other levels to x̂₀ (``ScoreModel.ddim_step``);
    ``constrain(x, t)`` is applied to each state before its step (inpainting re-imposes the known pixels there)."""
    for t, s in zip(levels, [*levels[1:], -1]):
        if constrain is not None:
            x = constrain(x, t)
        level, target = (x.new_full((x.shape[0],), step, dtype=torch.long) for step in (t, s))
        x = teacher.ddim_step(x, level, target)
    return x


def teacher_denoise(teacher: ScoreModel, y: Tensor, sigma: float, nfe: int) -> Tensor:
    """SDEdit at the noise's own level: √ā_t y, for the t of ``editing.noise_level_timestep``, is already a draw of
    q(x, t) (the input SIGN's ``editing.denoise`` gets too; re-noising further would only destroy more), then ``nfe``
    DDIM steps down to x̂₀. Deterministic: DDIM draws nothing."""
    t_start = editing.noise_level_timestep(teacher.schedule, sigma)
    alpha, _ = teacher.schedule.alpha_sigma(torch.full((y.shape[0],), t_start, device=y.device), y)
    return ddim_path(teacher, alpha * y, ddim_levels(t_start, nfe))


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


# -- the compared methods -------------------------------------------------------------------------------------------
# editor(corruption, y, fill or None, one generator per image) -> result
Editor = Callable[[Corruption, Tensor, Optional[Tensor], list[torch.Generator]], Tensor]


@dataclass(frozen=True)
class Method:
    name: str  # sign, ign, teacher or corrupted
    nfe: int
    edit: Editor

    @property
    def label(self) -> str:
        return "corrupted input" if self.name == "corrupted" else f"{self.name} @ {self.nfe}"


def generator_editor(model: GeneratorModule, nfe: int) -> Editor:
    """``signs edit``'s ``denoise`` and ``inpaint`` with ``model``'s EMA network at ``nfe`` NFE."""
    f, schedule, levels = model.sampling_network, model.schedule, model.renoise_timesteps(nfe)

    def edit(corruption: Corruption, y: Tensor, fill: Tensor | None, generators: list[torch.Generator]) -> Tensor:
        if fill is None:
            return editing.denoise(f, y, schedule, corruption.sigma, levels, generators)
        return sampling.inpaint(f, y, fill, schedule, levels, generators)

    return edit


def teacher_editor(teacher: ScoreModel, nfe: int) -> Editor:
    def edit(corruption: Corruption, y: Tensor, fill: Tensor | None, generators: list[torch.Generator]) -> Tensor:
        if fill is None:
            return teacher_denoise(teacher, y, corruption.sigma, nfe)
        return teacher_inpaint(teacher, y, fill, nfe, generators)

    return edit


def unedited(corruption: Corruption, y: Tensor, fill: Tensor | None, generators: list[torch.Generator]) -> Tensor:
    return y


def methods(
    sign: GeneratorModule,
    teacher: ScoreModel,
    ign: GeneratorModule | None,
    sign_nfe: Sequence[int],
    teacher_nfe: Sequence[int],
    ign_nfe: Sequence[int],
) -> list[Method]:
    """The corrupted input, then SIGN, IGN (when given) and the teacher at each of their NFE settings."""
    compared = [Method("corrupted", 0, unedited)]
    compared += [Method("sign", k, generator_editor(sign, k)) for k in sign_nfe]
    if ign is not None:
        compared += [Method("ign", k, generator_editor(ign, k)) for k in ign_nfe]
    return compared + [Method("teacher", k, teacher_editor(teacher, k)) for k in teacher_nfe]


@torch.no_grad()
def apply(
    method: Method, corruption: Corruption, y: Tensor, fill: Tensor | None, keys: Tensor, seed: int, batch_size: int
) -> Tensor:
    """The method's results for all images, in [-1, 1], batch by batch; image i draws from seeded_generator(seed, i)."""
    results = []
    for start in range(0, len(keys), batch_size):
        batch = slice(start, start + batch_size)
        generators = [seeded_generator(seed, int(i)) for i in keys[batch]]
        given = None if fill is None else fill[batch]
        results.append(method.edit(corruption, y[batch], given, generators).float().clamp(-1, 1))
    return torch.cat(results)


# -- scores ---------------------------------------------------------------------------------------------------------
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
def held_out_digits(image_size: int, count: int, seed: int) -> tuple[EmbeddedMNISTDataModule, Tensor, Tensor, Tensor]:
    """(datamodule, images (N, 1, S, S), labels (N,), their indices among the 500 held-out digits).

    The held-out split is sorted by label: a seeded permutation keeps every class in a subset.
    """
    datamodule = EmbeddedMNISTDataModule(image_size=image_size, batch_size=500)
    datamodule.setup("validate")
    images, labels = datamodule.val_set.tensors
    if not 2 <= count <= len(labels):
        raise SignsError(f"--num-images must be in [2, {len(labels)}] (the held-out digits), got {count}")
    keys = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:count]
    return datamodule, images[keys], labels[keys], keys


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
                **scores,
                "images_per_second": len(keys) / max(seconds, 1e-9),
            }
        )
        examples.append(results[: args.examples].cpu())
        print(
            f"[editing] {corruption.label:12} {method.label:16} PSNR {scores['psnr']:6.2f}  "
            f"accuracy {scores['accuracy']:6.1%}  FD {scores['fd']:8.2f}"
        )
    return rows, [clean[: args.examples].cpu(), *examples]


def find_row(rows: list[dict[str, Any]], corruption: str, method: str, nfe: int) -> dict[str, Any] | None:
    return next((r for r in rows if (r["corruption"], r["method"], r["nfe"]) == (corruption, method, nfe)), None)


def evaluate_target(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's target: for each of ``TARGET_CORRUPTIONS``, one SIGN setting at ≤ 2 NFE whose accuracy and PSNR
    are both ≥ the teacher's at 4 NFE. ``met`` is None when the run lacks those rows."""
    text = (
        f"SIGN at <= {TARGET_MAX_SIGN_NFE} NFE matches or beats the teacher at {TARGET_TEACHER_NFE} NFE on "
        "accuracy and PSNR for mid-level noise (σ=0.5) and half-image inpainting"
    )
    verdicts, details = [], []
    for key in TARGET_CORRUPTIONS:
        teacher = find_row(rows, key, "teacher", TARGET_TEACHER_NFE)
        signs = [find_row(rows, key, "sign", k) for k in range(1, TARGET_MAX_SIGN_NFE + 1)]
        signs = [r for r in signs if r is not None]
        if teacher is None or not signs:
            needs = f"needs SIGN at <= {TARGET_MAX_SIGN_NFE} NFE and the teacher at {TARGET_TEACHER_NFE} NFE"
            return {"target": text, "met": None, "detail": f"{needs} (--sign-nfe, --teacher-nfe)"}
        verdicts.append(any(r["accuracy"] >= teacher["accuracy"] and r["psnr"] >= teacher["psnr"] for r in signs))
        scored = ", ".join(f"{r['label']} {r['psnr']:.2f} dB / {r['accuracy']:.1%}" for r in signs)
        details.append(f"{key}: {scored} vs {teacher['label']} {teacher['psnr']:.2f} dB / {teacher['accuracy']:.1%}")
    return {"target": text, "met": all(verdicts), "detail": "; ".join(details)}


# -- outputs --------------------------------------------------------------------------------------------------------
# metric: (title, number format)
METRICS = {
    "psnr": ("PSNR (dB, higher is better)", ".2f"),
    "accuracy": ("classifier accuracy (higher is better)", ".1%"),
    "fd": ("Fréchet distance, LeNet features (lower is better)", ".2f"),
}


def metric_table(rows: list[dict[str, Any]], metric: str) -> str:
    """Markdown: one row per method, one column per corruption."""
    spec = METRICS[metric][1]
    corruptions = [c for c in CORRUPTIONS if any(r["corruption"] == c.key for r in rows)]
    labels = list(dict.fromkeys(r["label"] for r in rows))
    lines = ["| method | " + " | ".join(c.label for c in corruptions) + " |", "|---" * (len(corruptions) + 1) + "|"]
    for label in labels:
        cells = {r["corruption"]: format(r[metric], spec) for r in rows if r["label"] == label}
        lines.append(f"| {label} | " + " | ".join(cells.get(c.key, "-") for c in corruptions) + " |")
    return "\n".join(lines)


def markdown(summary: dict[str, Any]) -> str:
    settings, clean, target = summary["settings"], summary["clean"], summary["target"]
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
    for metric, (title, _) in METRICS.items():
        lines += ["", f"## {title[0].upper()}{title[1:]}", "", metric_table(summary["rows"], metric)]
    verdict = {True: "met", False: "**missed**", None: "not measured"}[target["met"]]
    lines += [
        "",
        "## Target",
        "",
        f"- {target['target']}: {verdict} ({target['detail']})",
        "",
        "![PSNR and accuracy per corruption](editing_metrics.png)",
        "",
        "![Examples: clean, then each method's result, per corruption](editing_examples.png)",
    ]
    return "\n".join(lines) + "\n"


def method_style(name: str, nfe: int, settings: dict[str, Any]) -> dict[str, Any]:
    """One colour family per method (darker = more NFE); the corrupted input dashed grey."""
    from matplotlib import colormaps

    if name == "corrupted":
        return {"color": "0.5", "linestyle": "--"}
    family = {"sign": "Blues", "ign": "Greens", "teacher": "Oranges"}[name]
    steps = settings[f"{name}_nfe"]
    shade = 0.45 + 0.5 * steps.index(nfe) / max(len(steps) - 1, 1)
    return {"color": colormaps[family](shade), "linestyle": "-", "marker": "o"}


# The figures are built without pyplot: no global backend to switch on servers, and a notebook shows them as they are.
def metrics_figure(summary: dict[str, Any]) -> Figure:
    """PSNR (top) and accuracy (bottom) against the noise level (left) and the inpainting mask (right)."""
    from matplotlib.figure import Figure

    rows = summary["rows"]
    groups = [[c for c in CORRUPTIONS if c.is_noise], [c for c in CORRUPTIONS if not c.is_noise]]
    figure = Figure(figsize=(11, 7))
    axes = figure.subplots(2, 2, sharex="col")
    for row_axes, metric in zip(axes, ["psnr", "accuracy"]):
        for ax, group in zip(row_axes, groups):
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
            row_axes[0].axhline(summary["clean"]["accuracy"], color="k", linewidth=0.8, label="clean digits")
    axes[0][0].set_title("denoising")
    axes[0][1].set_title("inpainting (region to fill)")
    axes[1][0].legend(fontsize=8)
    figure.tight_layout()
    return figure


def examples_figure(panels: dict[str, list[Tensor]], row_labels: list[str]) -> Figure:
    """One panel per title in ``panels``, each a list of rows of images (B, C, H, W) in [-1, 1], one per label in
    ``row_labels`` (the same in every panel)."""
    from matplotlib.figure import Figure

    columns = next(iter(panels.values()))[0].shape[0]
    figure = Figure(figsize=(0.35 * columns * len(panels) + 1.5, 0.35 * len(row_labels) + 0.8))
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
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.editing", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sign", required=True, help="a SIGN checkpoint (its teacher is the DDIM baseline)")
    parser.add_argument("--ign", help="an IGN checkpoint of the same image size (optional)")
    parser.add_argument("--teacher", help="the teacher folder, if the checkpoints' recorded one has moved")
    parser.add_argument("--output", default="benchmarks/results/editing", help="(default: benchmarks/results/editing)")
    parser.add_argument("--num-images", type=int, help=f"held-out digits (default: all {HELD_OUT}, with --smoke 16)")
    parser.add_argument("--sign-nfe", type=int, nargs="+", default=[1, 2, 4], help="(default: 1 2 4)")
    parser.add_argument("--teacher-nfe", type=int, nargs="+", default=[1, 4, 10], help="(default: 1 4 10)")
    parser.add_argument("--ign-nfe", type=int, nargs="+", default=[1], help="(default: 1)")
    parser.add_argument("--examples", type=int, default=6, help="digits per corruption in the examples figure")
    parser.add_argument("--batch-size", type=int, default=250, help="images per forward pass (default: 250)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the subset, the corruptions and the editors")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="16 digits: checks the pipeline, numbers meaningless")
    args = parser.parse_args(argv)
    if args.num_images is None:
        args.num_images = 16 if args.smoke else HELD_OUT
    if min(args.sign_nfe + args.teacher_nfe + args.ign_nfe + [args.examples, args.batch_size]) < 1:
        parser.error("NFE settings, --examples and --batch-size must be >= 1")
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
    datamodule, clean, labels, keys = held_out_digits(sign.image_shape[-1], args.num_images, args.seed)
    scorer = EditScorer(datamodule, device, args.batch_size)
    clean, labels = clean.to(device), labels.to(device)
    compared = methods(sign, teacher, ign, args.sign_nfe, args.teacher_nfe, args.ign_nfe if ign else [])

    rows: list[dict[str, Any]] = []
    examples: dict[str, list[Tensor]] = {}
    for corruption in CORRUPTIONS:
        scored, examples[corruption.key] = run_corruption(corruption, compared, (clean, labels, keys), scorer, args)
        rows += scored
    summary = {
        "settings": {
            "argv": args.argv, "device": device_name(device), "sign": args.sign, "ign": args.ign,
            "teacher": teacher.source, "num_images": args.num_images, "image_size": sign.image_shape[-1],
            "seed": args.seed, "sign_nfe": args.sign_nfe, "teacher_nfe": args.teacher_nfe,
            "ign_nfe": args.ign_nfe if ign else [], "classifier": scorer.lenet.name,
            "classifier_held_out_accuracy": scorer.lenet.accuracy,
        },
        "corruptions": [vars(c) for c in CORRUPTIONS],
        "clean": {"accuracy": scorer.accuracy(clean, labels), "fd": scorer.frechet(clean)},
        "rows": rows,
        "target": evaluate_target(rows),
        "wall_seconds": time.perf_counter() - start,
    }  # fmt: skip
    sources = [source_config(path) for path in (args.sign, args.ign) if path]
    summary = write_results(out / "editing.json", summary, "".join([*sources, *args.argv]))
    (out / "editing.md").write_text(markdown(summary))
    metrics_figure(summary).savefig(out / "editing_metrics.png", dpi=120)
    panels = {corruption.label: examples[corruption.key] for corruption in CORRUPTIONS}
    examples_figure(panels, ["clean"] + [m.label for m in compared]).savefig(out / "editing_examples.png", dpi=120)
    target = summary["target"]
    verdict = {True: "MET", False: "MISSED", None: "NOT MEASURED"}[target["met"]]
    print(f"[editing] target {verdict}: {target['target']} ({target['detail']})")
    print(f"[editing] wrote {out} in {summary['wall_seconds']:.0f} s")
    return out


if __name__ == "__main__":
    main()
