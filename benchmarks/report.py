"""The benchmark's outputs: one JSON per model, ``summary.json``, ``results.md`` (table, targets) and the plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.provenance import write_results
from benchmarks.variants import BASELINE, HEADLINE

TEACHER = "teacher"
IGN_TIME_FACTOR_TARGET = 3.0
IGN_FID_RATIO_TARGET = 0.6
LIGHTNING_RATIO_TARGET = 0.9


def fid(entry: dict[str, Any] | None, sampler: str, nfe: int) -> float | None:
    """The LeNet FID of ``entry``'s row for (sampler, nfe), None when that row was not run."""
    for row in (entry or {}).get("rows", []):
        if row["sampler"] == sampler and row["nfe"] == nfe:
            return row["fid_lenet"]
    return None


def target(text: str, met: bool | None, detail: str) -> dict[str, Any]:
    return {"target": text, "met": met, "detail": detail}


def targets(models: dict[str, dict[str, Any]], overhead: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's four targets, each met / missed (with the numbers) / not measured (``met`` None)."""
    sign, ign = models.get(HEADLINE), models.get(BASELINE)
    sign1, ign1, teacher10 = fid(sign, "multistep", 1), fid(ign, "multistep", 1), fid(models.get(TEACHER), "ddim", 10)
    results = []

    text = (
        f"{HEADLINE} 1-NFE FID <= {IGN_FID_RATIO_TARGET} x {BASELINE} 1-NFE FID, {BASELINE} given >= "
        f"{IGN_TIME_FACTOR_TARGET:g}x the training time"
    )
    if sign1 is None or ign1 is None:
        results.append(target(text, None, f"needs both {HEADLINE} and {BASELINE} in the run"))
    else:
        time_factor = ign["budget_seconds"] / sign["budget_seconds"]
        results.append(
            target(
                text,
                sign1 <= IGN_FID_RATIO_TARGET * ign1 and time_factor >= IGN_TIME_FACTOR_TARGET,
                f"FID {sign1:.2f} vs {ign1:.2f} (ratio {sign1 / ign1:.2f}); budget {ign['budget_seconds']:.0f} s vs "
                f"{sign['budget_seconds']:.0f} s ({time_factor:.1f}x), trained {ign['train_seconds']:.0f} s vs "
                f"{sign['train_seconds']:.0f} s",
            )
        )

    text = f"{HEADLINE} 1-NFE FID <= teacher DDIM FID at 10 NFE"
    if sign1 is None or teacher10 is None:
        results.append(target(text, None, f"needs {HEADLINE} and the teacher's DDIM-10"))
    else:
        results.append(target(text, sign1 <= teacher10, f"FID {sign1:.2f} vs {teacher10:.2f}"))

    text = f"{HEADLINE} FID improves from 1 to 2 to 4 NFE"
    fids = [fid(sign, "multistep", k) for k in (1, 2, 4)]
    if None in fids:
        results.append(target(text, None, f"needs {HEADLINE} at 1, 2 and 4 NFE"))
    else:
        results.append(target(text, fids[0] > fids[1] > fids[2], " -> ".join(f"{value:.2f}" for value in fids)))

    text = f"Lightning training-step throughput >= {LIGHTNING_RATIO_TARGET} x the bare PyTorch loop"
    training = overhead.get("training")
    if training is None:
        results.append(target(text, None, "overhead run disabled (--overhead-steps 0)"))
    else:
        ratio = training["lightning_throughput_ratio"]
        results.append(
            target(
                text,
                ratio >= LIGHTNING_RATIO_TARGET,
                f"ratio {ratio:.3f}: median step {training['lightning_step_seconds'] * 1e3:.1f} ms through "
                f"Lightning vs {training['bare_step_seconds'] * 1e3:.1f} ms bare ({training['steps_timed']} steps "
                "each)",
            )
        )
    return results


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(models: dict[str, dict[str, Any]], metric_names: dict[str, str]) -> str:
    """Markdown table, one row per model and sampler setting; per-model columns repeat on each of its rows."""
    inception = metric_names.get("fid_inception", "inception (not run)")
    columns = [
        "model @ NFE", f"FID {metric_names['fid_lenet']}", f"FID {inception}", "coverage", "idem err", "rec err",
        "train img/s", "sample img/s", "peak MB", "steps", "seconds",
    ]  # fmt: skip
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for name, entry in models.items():
        for row in entry["rows"]:
            lines.append("| " + " | ".join([
                row["label"],
                _number(row["fid_lenet"], ".2f"),
                _number(row["fid_inception"], ".2f"),
                _number(row["class_coverage"], ".0%"),
                _number(entry.get("idempotence_error"), ".4f"),
                _number(entry.get("reconstruction_error"), ".4f"),
                _number(entry.get("train_images_per_second"), ".0f"),
                _number(row["sample_images_per_second"], ".0f"),
                _number(entry.get("peak_memory_mb"), ".0f"),
                _number(entry.get("generator_steps"), "d"),
                _number(entry.get("train_seconds"), ".0f"),
            ]) + " |")  # fmt: skip
    return "\n".join(lines)


def markdown(summary: dict[str, Any]) -> str:
    settings, overhead = summary["settings"], summary["overhead"]
    lines = [
        "# Benchmark results",
        "",
        f"`python -m benchmarks.run {' '.join(settings['argv'])}` on {settings['device']}: "
        f"{summary['wall_seconds'] / 60:.1f} min wall time. Budget {settings['budget_seconds']:g} s of training per "
        f"SIGN variant, {settings['budget_seconds'] * settings['ign_time_factor']:g} s for IGN; teacher "
        f"`{settings['teacher']}`. What each column means: `benchmarks/README.md`.",
        "",
        table(summary["models"], settings["metric_names"]),
        "",
        "![FID vs NFE](fid_vs_nfe.png)",
        "",
        "## Targets",
        "",
    ]
    for item in summary["targets"]:
        verdict = {True: "met", False: "**missed**", None: "not measured"}[item["met"]]
        lines.append(f"- {item['target']}: {verdict} ({item['detail']})")
    lines += ["", "## Overhead", ""]
    training, sampling = overhead.get("training"), overhead.get("sampling")
    if training is not None:
        lines.append(
            f"- training step ({training['variant']}): {training['lightning_step_seconds'] * 1e3:.1f} ms through "
            f"`Trainer.fit`, {training['bare_step_seconds'] * 1e3:.1f} ms in a bare loop; throughput ratio "
            f"{training['lightning_throughput_ratio']:.3f} (median of {training['steps_timed']} steps each)"
        )
    if sampling is not None:
        lines.append(
            f"- one-step sampling ({HEADLINE}, batch {settings['sample_batch']}): `model.sample(z, 1)` "
            f"{sampling['sample_seconds'] * 1e3:.1f} ms vs bare `unet(z, t).sample` "
            f"{sampling['forward_seconds'] * 1e3:.1f} ms; ratio {sampling['sampling_overhead_ratio']:.3f}"
        )
    lines += ["", "## Variants", "", "| name | terms | overrides |", "|---|---|---|"]
    for name, entry in summary["models"].items():
        if name != TEACHER:
            lines.append(f"| {name} | {entry['description']} | {' '.join(entry['overrides']) or '-'} |")
    return "\n".join(lines) + "\n"


def plot(models: dict[str, dict[str, Any]], metric_name: str, path: Path) -> None:
    """FID (LeNet features) against NFE, log-log: a line per model's sampler, f(f(z)) as a cross at 2 NFE."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    # tab20's strong hues first, then their pale partners: the default cycle repeats after 10 models.
    palette = plt.get_cmap("tab20").colors
    colours = palette[::2] + palette[1::2]
    for index, (name, entry) in enumerate(models.items()):
        line = [(row["nfe"], row["fid_lenet"]) for row in entry["rows"] if row["sampler"] in ("multistep", "ddim")]
        emphasis = name in (TEACHER, HEADLINE, BASELINE)
        colour = colours[index % len(colours)]
        axes.plot(
            *zip(*line),
            marker="o",
            label=name,
            color=colour,
            linewidth=2.5 if emphasis else 1,
            alpha=1 if emphasis else 0.6,
        )
        ffz = fid(entry, "ffz", 2)
        if ffz is not None:
            axes.plot([2], [ffz], marker="x", markersize=9, color=colour, linestyle="none")
    nfes = sorted({row["nfe"] for entry in models.values() for row in entry["rows"]})
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xticks(nfes, [str(k) for k in nfes])
    axes.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    # Plain numbers: FIDs often span less than a decade, where log axes label only minor ticks, as 2x10^2.
    axes.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    axes.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    axes.set_xlabel("NFE (network evaluations per sample)")
    axes.set_ylabel(f"FID ({metric_name}, lower is better)")
    axes.set_title("FID vs NFE (x: f(f(z)) at 2 NFE)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    """``summary.json``, ``results.md`` and ``fid_vs_nfe.png`` (per-model JSONs are written as models finish).

    The summary's config digest covers the command line and every model's own digest."""
    digests = [entry.get("provenance", {}).get("config_sha256", "") for entry in summary["models"].values()]
    summary = write_results(out / "summary.json", summary, "\n".join([*summary["settings"]["argv"], *digests]))
    (out / "results.md").write_text(markdown(summary))
    plot(summary["models"], summary["settings"]["metric_names"]["fid_lenet"], out / "fid_vs_nfe.png")
