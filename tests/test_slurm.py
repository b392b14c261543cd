"""The SLURM launch template under a real one-node Slurm: a 2-task CPU DDP fit is interrupted and resumes by itself.

(a) ``scontrol requeue`` (what a pre-emption or an admin does): the tasks get SIGTERM, the job runs again and resumes
    from ``last.ckpt``.
(b) SIGUSR1 to the tasks (what the template's ``--signal=SIGUSR1@90`` sends before the time limit): Lightning saves
    ``hpc_ckpt_1.ckpt``, requeues the job itself, and the rerun resumes from that step.
Both reruns must end at exactly ``max_generator_steps``. The first run is held after a known step
(tests/slurm_hold.py), so the interrupt lands mid-run whatever the machine's speed. The cluster is installed
(apt-get) when missing and started for this module only (tests/slurm_cluster.py); a machine where it cannot be
installed fails here, it never skips.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.loggers import TensorBoardLogger
from slurm_cluster import LocalSlurm, SlurmClusterError, ensure_slurm_installed, local_slurm

from signs_lightning.run.callbacks import ModelCheckpoint
from signs_lightning.run.resume import resolve_ckpt_path

# Each case takes about a minute here; a job that never ends fails the test instead of holding CI.
pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "scripts" / "slurm" / "fit_1node.sbatch"
MAX_GENERATOR_STEPS = 8
# Two optimizers step per batch (L_dmd's fake score), so global_step counts 2 per generator step: a last.ckpt every
# 2 generator steps, the first run held (and interrupted) after step 5, so its last periodic save is step 4.
SAVE_EVERY_GLOBAL_STEPS = 4
HOLD_AT = 5
LAST_PERIODIC_SAVE = 4
# From submission to the held step (start-up of 2 processes on 2 cores), and from the interrupt to the rerun's end
# (Slurm's requeue delay with cred_expire=10 is 11-13 s, then a second start-up).
HOLD_TIMEOUT_S = 240
FINISH_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def slurm() -> Iterator[LocalSlurm]:
    ensure_slurm_installed()
    with local_slurm() as cluster:
        yield cluster


def write_config(folder: Path, teacher: Path, markers: Path) -> Path:
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            # Two optimizers stepped alternately: plain "ddp" refuses the unused parameters.
            "strategy": "ddp_find_unused_parameters_true",
            "max_epochs": -1,
            "limit_val_batches": 0,
            "num_sanity_val_steps": 0,
            "log_every_n_steps": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "callbacks": [
                {
                    "class_path": "signs_lightning.run.callbacks.ModelCheckpoint",
                    "init_args": {"save_last": True, "every_n_train_steps": SAVE_EVERY_GLOBAL_STEPS},
                },
                {"class_path": "slurm_hold.HoldFirstRun", "init_args": {"step": HOLD_AT, "marker_dir": str(markers)}},
            ],
        },
        "model": {
            "class_path": "signs_lightning.modules.SIGNModule",
            "init_args": {
                "teacher": str(teacher),
                "flow": {"class_path": "signs_lightning.losses.Flow", "init_args": {"intervals": 4}},
                "dmd": {"class_path": "signs_lightning.losses.DistributionMatching"},
                "reg": {
                    "class_path": "signs_lightning.losses.Regression",
                    "init_args": {"pairs": 16, "sampler_steps": 2, "cache_dir": str(folder / "cache")},
                },
                "max_generator_steps": MAX_GENERATOR_STEPS,
                "ema_decay": 0.9,
                "sample_nfe": [1],
            },
        },
        "data": {
            "class_path": "signs_lightning.data.EmbeddedMNISTDataModule",
            "init_args": {"image_size": 8, "batch_size": 8},
        },
    }
    path = folder / "sign_tiny.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def submit(slurm: LocalSlurm, folder: Path, config: Path, name: str) -> int:
    """The launch template as a user submits it, with a CPU allocation of 2 tasks instead of GPUs."""
    return slurm.submit(
        [
            f"--job-name={name}",
            "--ntasks-per-node=2",
            "--gpus-per-node=0",
            "--cpus-per-task=1",
            "--time=15",
            f"--output={folder}/job-%j.out",
            f"--chdir={folder}",
            str(TEMPLATE),
            str(config),
        ],
        env={
            # The job's `signs` and Python are this test's; slurm_hold (the test callback) is importable.
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "PYTHONPATH": str(Path(__file__).parent),
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        },
    )


def counters(checkpoint: Path) -> dict[str, int]:
    return torch.load(checkpoint, map_location="cpu", weights_only=False)["signs_counters"]


@pytest.mark.slurm
@pytest.mark.parametrize(
    ("interrupt", "resumable", "resumed_at"),
    [
        # SIGTERM finds the ranks after step HOLD_AT: the rerun resumes from the periodic save before it, or from
        # that step when the fit saves last.ckpt on SIGTERM.
        (["scontrol", "requeue"], {"checkpoints/last.ckpt"}, {LAST_PERIODIC_SAVE, HOLD_AT}),
        # The HPC checkpoint, or the last.ckpt of the same step written after it when the fit saves on the SIGTERM
        # that follows the requeue (`--ckpt_path last` takes the newer of equals).
        (["scancel", "--signal=USR1"], {"hpc_ckpt_1.ckpt", "checkpoints/last.ckpt"}, {HOLD_AT}),
    ],
    ids=["scontrol-requeue", "sigusr1-auto-requeue"],
)
def test_interrupted_job_requeues_and_resumes_to_the_end(
    slurm: LocalSlurm,
    tiny_teacher_dir: Path,
    tmp_path: Path,
    interrupt: list[str],
    resumable: set[str],
    resumed_at: set[int],
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    job = submit(slurm, tmp_path, write_config(tmp_path, tiny_teacher_dir, markers), name=f"signs-{interrupt[0]}")
    output = tmp_path / f"job-{job}.out"
    run_dir = tmp_path / "runs" / f"sign_tiny-{job}"

    def fail(error: Exception) -> None:
        text = output.read_text(errors="replace") if output.is_file() else "(no output file)"
        pytest.fail(f"{error}\n--- job output (end):\n{text[-6000:]}")

    try:
        slurm.wait_for_job(
            job, lambda _: len(list(markers.glob("held-*"))) == 2, HOLD_TIMEOUT_S, "both ranks at the held step"
        )
        slurm.run([*interrupt, str(job)])
        record = slurm.wait_for_job(
            job, lambda fields: fields["JobState"] == "COMPLETED", FINISH_TIMEOUT_S, "the rerun to complete"
        )
    except SlurmClusterError as error:
        fail(error)

    text = output.read_text()
    assert record["Restarts"] == "1" and record["ExitCode"] == "0:0", record
    # Both runs appended to one log; the second knows it is a rerun.
    assert "SLURM_RESTART_COUNT=0" in text and "SLURM_RESTART_COUNT=1" in text, text[-6000:]
    assert "HOLD-TEST run 0 starts at generator step 0" in text, text[-6000:]
    restored = re.findall(r"^Restored all states from the checkpoint at (.+)$", text, re.MULTILINE)
    # Paths are relative to the job's working folder, tmp_path (joining an absolute path keeps it).
    expected = {(run_dir / name).resolve() for name in resumable}
    assert len(restored) == 1 and (tmp_path / restored[0]).resolve() in expected, text[-6000:]
    starts = re.findall(r"^HOLD-TEST run 1 starts at generator step (\d+)$", text, re.MULTILINE)
    assert len(starts) == 1 and int(starts[0]) in resumed_at, text[-6000:]
    assert counters(run_dir / "checkpoints" / "last.ckpt")["generator_steps"] == MAX_GENERATOR_STEPS
    if interrupt[0] == "scancel":
        # Lightning's SIGUSR1 handler saved the HPC checkpoint and rank 0 requeued the job.
        assert counters(run_dir / "hpc_ckpt_1.ckpt")["generator_steps"] == HOLD_AT
        assert f"Requeued SLURM job: {job}" in text, text[-6000:]


def test_ckpt_path_last_takes_the_newest_of_last_and_hpc_checkpoints(tmp_path: Path) -> None:
    # The template's layout: logger files and ModelCheckpoint's checkpoints/ in the run folder itself.
    trainer = L.Trainer(
        accelerator="cpu",
        default_root_dir=tmp_path,
        logger=TensorBoardLogger(tmp_path, name="", version=""),
        callbacks=[ModelCheckpoint(save_last=True)],
        enable_progress_bar=False,
    )
    with pytest.warns(UserWarning, match="starting from scratch"):
        assert resolve_ckpt_path("last", trainer) is None
    last, hpc = tmp_path / "checkpoints" / "last.ckpt", tmp_path / "hpc_ckpt_2.ckpt"
    last.parent.mkdir()
    for age, path in enumerate([hpc, tmp_path / "hpc_ckpt_1.ckpt", last]):
        path.touch()
        os.utime(path, ns=(0, 10**18 - age))
    assert resolve_ckpt_path("last", trainer) == str(hpc)
    os.utime(last, ns=(0, 2 * 10**18))
    assert resolve_ckpt_path("last", trainer) == str(last)
    assert resolve_ckpt_path("other.ckpt", trainer) == "other.ckpt"
    assert resolve_ckpt_path(None, trainer) is None
