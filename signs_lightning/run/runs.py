"""Runs from Python: ``signs fit`` of composed configs with overrides, and a teacher trained once and then reused.

What ``signs demo`` and the benchmarks build on; the same as typing the ``signs fit`` command line (a config's
``# bases:`` layers come with it, ``run/config_layers.py``)::

    signs fit --config configs/sign_mnist.yaml --trainer.default_root_dir runs/x --trainer.max_steps 10
    fit(["configs/sign_mnist.yaml"], ["trainer.max_steps=10"], root_dir="runs/x")
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from signs_lightning.core.errors import SignsError
from signs_lightning.run.cli import SignsCLI, cli_main
from signs_lightning.run.config_layers import composed

# Written into a teacher folder train_teacher made: the settings it was trained with.
TEACHER_STAMP = "signs_demo_teacher.json"
# The shipped configs, and the MNIST teacher's (the one ``signs demo`` and ``make bench`` train).
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TEACHER_CONFIG = CONFIGS / "teacher_mnist.yaml"


def cli_args(
    configs: Sequence[str | Path], overrides: Sequence[str] = (), root_dir: str | Path | None = None
) -> list[str]:
    """``signs fit``'s arguments: each config in order (later ones override earlier ones), the log folder, then
    each ``KEY=VALUE`` override as ``--KEY VALUE`` (the value is parsed as YAML, e.g. ``null`` or ``[8, 8]``)."""
    args = [item for config in configs for item in ("--config", str(config))]
    if root_dir is not None:
        args += ["--trainer.default_root_dir", str(root_dir)]
    for item in overrides:
        key, separator, value = item.partition("=")
        if not separator:
            raise SignsError(f"override {item!r} is not KEY=VALUE")
        args += [f"--{key}", value]
    return args


def fit(configs: Sequence[str | Path], overrides: Sequence[str] = (), root_dir: str | Path | None = None) -> SignsCLI:
    """``signs fit`` of ``configs`` with ``overrides`` (``cli_args``), logs and checkpoints under ``root_dir``
    (default: the configs'); the finished CLI, whose ``model``, ``datamodule`` and ``trainer`` hold the results."""
    return cli_main(["fit", *cli_args(configs, overrides, root_dir)])


def fresh_folder(path: Path) -> None:
    """Empties a run's own log folder: the next fit is a new run, and a fit refuses a folder holding an earlier
    run's checkpoints."""
    if path.exists():
        print(f"[signs] replacing the earlier run in {path}")
        shutil.rmtree(path)


def train_teacher(
    configs: Sequence[str | Path], output: str | Path, overrides: Sequence[str] = ()
) -> tuple[Path, float]:
    """The diffusers teacher folder ``output/teacher`` trained with ``configs`` and ``overrides`` (logs in
    ``output/teacher_logs``), or reused when that folder holds a teacher trained with the same config files'
    contents (their layers' included) and the same arguments; and the seconds spent training it (0 when reused)."""
    output = Path(output)
    teacher_dir = output / "teacher"
    args = cli_args(configs, [f"model.init_args.output_dir={teacher_dir}", *overrides], output / "teacher_logs")
    settings = {"args": args, "config": "".join(Path(config).read_text() for config in composed(configs))}
    stamp = teacher_dir / TEACHER_STAMP
    if stamp.is_file() and json.loads(stamp.read_text()) == settings:
        print(f"[signs] reusing the teacher in {teacher_dir} (same configs and overrides)")
        return teacher_dir, 0.0
    fresh_folder(output / "teacher_logs")
    start = time.perf_counter()
    cli_main(["fit", *args])
    stamp.write_text(json.dumps(settings))
    return teacher_dir, time.perf_counter() - start
