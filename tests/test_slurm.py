"""The SLURM launch template under a real one-node Slurm: a 2-task CPU DDP fit is interrupted and resumes by itself.

Both cases signal while both ranks train (``slurm_hold.PaceFirstRun`` only marks that they passed a step and slows
each backward, so the signal most likely lands mid-step):
(a) ``scontrol requeue`` (what a pre-emption or an admin does): the tasks get SIGTERM, whose handler only raises a
    flag (signs_lightning/run/sigterm.py); the ranks stop at the next batch start, save ``last.ckpt`` there, and the
    job runs again from it.
(b) SIGUSR1 to the tasks (what the template's ``--signal=SIGUSR1@90`` sends before the time limit): the fit saves
    ``last.ckpt`` at the end of that batch, requeues the job itself (signs_lightning/run/requeue.py), and the rerun
    resumes from exactly that checkpoint.
Both reruns must end at exactly ``max_generator_steps``. The cluster is installed (apt-get) when missing and started
for this module only (tests/slurm_cluster.py); a machine where it cannot be installed fails here, it never skips.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
# Two optimizers step per batch (L_dmd's fake score), so global_step counts 2 per generator step: a last.ckpt every
# 2 generator steps.
SAVE_EVERY_GLOBAL_STEPS = 4
# 16 steps, signalled once both ranks passed step 3; at 2 x 0.3 s of sleep per batch the job trains on for 4 s or
# more after that, ample for the test to see the markers and signal it.
PACED_MAX_GENERATOR_STEPS = 16
PASS_AT = 3
PACE_SECONDS = 0.3
# From submission to the marked step (start-up of 2 processes on 2 cores), and from the interrupt to the rerun's end
# (Slurm's requeue delay with cred_expire=10 is 11-13 s, then a second start-up).
HOLD_TIMEOUT_S = 240
FINISH_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def slurm() -> Iterator[LocalSlurm]:
    ensure_slurm_installed()
    with local_slurm() as cluster:
        yield cluster


def write_config(folder: Path, teacher: Path, first_run: dict[str, Any], max_generator_steps: int) -> Path:
    """A tiny SIGN fit config with a ``slurm_hold`` callback (``first_run``) that paces the job's first run."""
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
                first_run,
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
                "max_generator_steps": max_generator_steps,
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
            # The job's `signs` and Python are this test's; slurm_hold (the test callbacks) is importable.
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "PYTHONPATH": str(Path(__file__).parent),
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        },
    )


def checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


def counters(path: Path) -> dict[str, int]:
    return checkpoint(path)["signs_counters"]


def job_output(output: Path) -> str:
    return output.read_text(errors="replace") if output.is_file() else "(no output file)"


def paced_job(slurm: LocalSlurm, folder: Path, teacher: Path, name: str) -> tuple[int, Path, Path]:
    """Submits the tiny fit with ``PaceFirstRun``; once both ranks passed ``PASS_AT`` (still training): the job, its
    output file and its run folder."""
    markers = folder / "markers"
    markers.mkdir()
    pace = {
        "class_path": "slurm_hold.PaceFirstRun",
        "init_args": {"step": PASS_AT, "marker_dir": str(markers), "seconds": PACE_SECONDS},
    }
    job = submit(slurm, folder, write_config(folder, teacher, pace, PACED_MAX_GENERATOR_STEPS), name=name)
    output = folder / f"job-{job}.out"
    wait(slurm, job, output, lambda _: len(list(markers.glob("passed-*"))) == 2, HOLD_TIMEOUT_S, "both ranks past it")
    return job, output, folder / "runs" / f"sign_tiny-{job}"


def wait(
    slurm: LocalSlurm, job: int, output: Path, done: Callable[[dict[str, str]], bool], timeout: float, what: str
) -> dict[str, str]:
    """``slurm.wait_for_job``; a job that does not get there fails the test with the end of its output."""
    try:
        return slurm.wait_for_job(job, done, timeout, what)
    except SlurmClusterError as error:
        pytest.fail(f"{error}\n--- job output (end):\n{job_output(output)[-6000:]}")


def completed(fields: dict[str, str]) -> bool:
    return fields["JobState"] == "COMPLETED"


def check_one_resumed_rerun(record: dict[str, str], text: str, restored_from: set[Path], folder: Path) -> int:
    """The job requeued once and succeeded; its rerun restored one of ``restored_from``. The rerun's first step."""
    assert record["Restarts"] == "1" and record["ExitCode"] == "0:0", record
    # Both runs appended to one log; the second knows it is a rerun.
    assert "SLURM_RESTART_COUNT=0" in text and "SLURM_RESTART_COUNT=1" in text, text[-6000:]
    assert "HOLD-TEST run 0 starts at generator step 0" in text, text[-6000:]
    restored = re.findall(r"^Restored all states from the checkpoint at (.+)$", text, re.MULTILINE)
    # Paths are relative to the job's working folder (joining an absolute path keeps it).
    assert len(restored) == 1 and (folder / restored[0]).resolve() in restored_from, text[-6000:]
    starts = re.findall(r"^HOLD-TEST run 1 starts at generator step (\d+)$", text, re.MULTILINE)
    assert len(starts) == 1, text[-6000:]
    return int(starts[0])


@pytest.mark.slurm
def test_scontrol_requeue_while_training_saves_at_a_batch_end_and_resumes_there(
    slurm: LocalSlurm, tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    """SIGTERM (what a pre-emption or ``scontrol requeue`` sends) while both ranks train: the handler only raises
    the flag (signs_lightning/run/sigterm.py), the ranks stop at a batch start and save last.ckpt there."""
    job, output, run_dir = paced_job(slurm, tmp_path, tiny_teacher_dir, "signs-scontrol")
    last = run_dir / "checkpoints" / "last.ckpt"
    slurm.run(["scontrol", "requeue", str(job)])
    record = wait(slurm, job, output, completed, FINISH_TIMEOUT_S, "the rerun to complete")

    text = output.read_text()
    resumed_at = check_one_resumed_rerun(record, text, {last.resolve()}, tmp_path)
    saves = re.findall(r"^SIGTERM: saved the fit's state at global step (\d+) to ", text, re.MULTILINE)
    assert len(saves) == 1, text[-6000:]
    # Saved at a batch boundary (both optimizers of every batch stepped: global step = 2 x generator steps), while
    # training, and the rerun continued from exactly there to exactly the end.
    assert int(saves[0]) == 2 * resumed_at and PASS_AT < resumed_at < PACED_MAX_GENERATOR_STEPS, text[-6000:]
    assert counters(last)["generator_steps"] == PACED_MAX_GENERATOR_STEPS


@pytest.mark.slurm
def test_sigusr1_while_training_saves_at_a_batch_end_requeues_and_resumes_there(
    slurm: LocalSlurm, tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    job, output, run_dir = paced_job(slurm, tmp_path, tiny_teacher_dir, "signs-sigusr1")
    last, signalled = run_dir / "checkpoints" / "last.ckpt", tmp_path / "signalled.ckpt"
    slurm.run(["scancel", "--signal=USR1", str(job)])
    # The rerun starts 11 s or more after the requeue: last.ckpt is still the one the signal had written.
    wait(slurm, job, output, lambda fields: fields["Restarts"] == "1", FINISH_TIMEOUT_S, "the job to requeue")
    shutil.copyfile(last, signalled)
    assert "SLURM_RESTART_COUNT=1" not in job_output(output), "the rerun started before last.ckpt was copied"
    record = wait(slurm, job, output, completed, FINISH_TIMEOUT_S, "the rerun to complete")

    text = output.read_text()
    resumed_at = check_one_resumed_rerun(record, text, {last.resolve()}, tmp_path)
    saved = checkpoint(signalled)
    steps = saved["signs_counters"]
    # Signalled while training, after PASS_AT and before the end; saved at a batch boundary: both optimizers of every
    # batch counted have stepped (a save inside a step would have one generator update without its fake-score one).
    assert PASS_AT < steps["generator_steps"] < PACED_MAX_GENERATOR_STEPS, steps
    assert saved["global_step"] == 2 * steps["global_batches"] == 2 * steps["generator_steps"], (saved, steps)
    assert f"SIGUSR1: saving at global step {saved['global_step']}, then requeuing the job" in text, text[-6000:]
    assert text.count(f"Requeued SLURM job: {job}") == 1, text[-6000:]
    # The rerun continued from exactly that state, to exactly the end; Lightning's in-handler save stayed off.
    assert resumed_at == steps["generator_steps"], text[-6000:]
    assert counters(last)["generator_steps"] == PACED_MAX_GENERATOR_STEPS
    assert not list(run_dir.glob("hpc_ckpt_*.ckpt"))


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
