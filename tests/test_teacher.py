"""The teacher wrapper, run over a grid of scheduler configs (diffusers' scheduler-test style)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch
import yaml
from conftest import write_tiny_teacher
from diffusers import DDIMScheduler
from helpers import SCHEDULE_GRID
from torch import nn

from signs_lightning.diffusion import NoiseSchedule, ScoreModel, load_teacher


class OracleUNet(nn.Module):
    """Outputs the exact training target for a known (x0, noise): a perfect network of any prediction type."""

    def __init__(self, schedule: NoiseSchedule, x0: torch.Tensor, noise: torch.Tensor) -> None:
        super().__init__()
        self.schedule, self.x0, self.noise = schedule, x0, noise

    def forward(self, x_t: torch.Tensor, t: torch.Tensor):
        return type("Out", (), {"sample": self.schedule.training_target(self.x0, self.noise, t)})


@pytest.mark.parametrize("prediction_type,beta_schedule", SCHEDULE_GRID)
class TestTeacherOverConfigs:
    def schedule(self, prediction_type: str, beta_schedule: str) -> NoiseSchedule:
        return NoiseSchedule.from_scheduler_config(
            {"num_train_timesteps": 1000, "beta_schedule": beta_schedule, "prediction_type": prediction_type}
        )

    def test_oracle_network_recovers_x0(self, prediction_type: str, beta_schedule: str) -> None:
        schedule = self.schedule(prediction_type, beta_schedule)
        torch.manual_seed(0)
        x0 = torch.rand(6, 1, 8, 8) * 2 - 1
        noise = torch.randn_like(x0)
        # Up to t=900: near T an epsilon->x0 conversion divides by sqrt(abar) (1e-4.5 for cosine) and float32
        # rounding dominates; that regime is what the x0 head of the generator avoids.
        t = torch.tensor([0, 10, 250, 500, 800, 900])
        model = ScoreModel(OracleUNet(schedule, x0, noise), schedule)
        x_t = schedule.q_sample(x0, t, noise)
        torch.testing.assert_close(model.predict_x0(x_t, t), x0, atol=1e-3, rtol=0)
        _, eps = schedule.split_prediction(model(x_t, t), x_t, t)
        torch.testing.assert_close(eps[1:-1], noise[1:-1], atol=2e-3, rtol=0)

    @pytest.mark.parametrize("num_steps", [1, 4, 10])
    def test_ddim_step_matches_diffusers(
        self, prediction_type: str, beta_schedule: str, num_steps: int, tmp_path
    ) -> None:
        teacher = load_teacher(write_tiny_teacher(tmp_path / "t", prediction_type, beta_schedule))
        reference = DDIMScheduler.from_config(
            DDIMScheduler.load_config(tmp_path / "t", subfolder="scheduler"),
            clip_sample=False,
            set_alpha_to_one=True,
            timestep_spacing="trailing",
        )
        reference.set_timesteps(num_steps)
        assert reference.timesteps.tolist() == teacher.schedule.ddim_timesteps(num_steps)
        torch.manual_seed(1)
        x = torch.randn(3, 1, 8, 8)
        expected = x
        states = []
        for step, t in enumerate(reference.timesteps.tolist()):
            t_batch = torch.full((3,), t)
            with torch.no_grad():
                output = teacher(expected, t_batch)
            prev = reference.timesteps[step + 1].item() if step + 1 < num_steps else -1
            ours = teacher.ddim_step(expected, t_batch, torch.full((3,), prev))
            expected = reference.step(output, t, expected, eta=0.0).prev_sample
            torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)
            states.append(expected)
        torch.testing.assert_close(teacher.ddim_sample(x, num_steps), expected, atol=1e-4, rtol=1e-4)
        # The trajectory is the scheduler's own sequence of states, ending at the sample.
        torch.testing.assert_close(
            torch.stack(list(teacher.ddim_trajectory(x, num_steps))), torch.stack(states), atol=1e-4, rtol=1e-4
        )

    def test_frozen_and_reproducible(self, prediction_type: str, beta_schedule: str, tmp_path) -> None:
        teacher = load_teacher(write_tiny_teacher(tmp_path / "t", prediction_type, beta_schedule))
        assert teacher.schedule.prediction_type == prediction_type
        assert not any(p.requires_grad for p in teacher.parameters())
        teacher.train()
        assert not teacher.training and not teacher.unet.training
        z = torch.randn(2, 1, 8, 8)
        torch.testing.assert_close(teacher.ddim_sample(z, 3), teacher.ddim_sample(z, 3), atol=0, rtol=0)
        assert teacher.image_shape == (1, 8, 8)


def test_trainable_copy_is_independent(tiny_teacher_dir) -> None:
    teacher = load_teacher(tiny_teacher_dir)
    fake = teacher.trainable_copy()
    assert fake.training and all(p.requires_grad for p in fake.parameters())
    with torch.no_grad():
        next(fake.parameters()).add_(1.0)
    assert teacher.fingerprint() != fake.fingerprint()
    assert teacher.fingerprint() == load_teacher(tiny_teacher_dir).fingerprint()


def test_a_loaded_teacher_is_fingerprinted_once(tiny_teacher_dir, monkeypatch) -> None:
    teacher = load_teacher(tiny_teacher_dir)
    expected = teacher._weights_hash()
    calls = []
    hash_weights = ScoreModel._weights_hash
    monkeypatch.setattr(ScoreModel, "_weights_hash", lambda self: calls.append(self) or hash_weights(self))
    assert [teacher.fingerprint() for _ in range(3)] == [expected] * 3 and calls == []  # computed at load
    fake = teacher.trainable_copy()  # trains: hashed at each call, never the teacher's stale value
    assert fake.fingerprint() == expected and calls == [fake]
    with torch.no_grad():
        next(fake.parameters()).add_(1.0)
    assert fake.fingerprint() != expected and teacher.fingerprint() == expected


def test_missing_teacher_names_what_to_do(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="unet/config.json"):
        load_teacher(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="`hf download no-such-org/no-such-teacher-xyz`"):
        load_teacher("no-such-org/no-such-teacher-xyz")


@pytest.mark.parametrize(
    "source,expected",
    [
        ("teachers/mnist16", "`signs fit --config configs/teacher_mnist.yaml` trains the teacher and exports it there"),
        ("./teachers/ddpm-celeba64", "`signs fit --config configs/teacher_celeba64.yaml` trains the teacher"),
        ("runs/nothing", "point model.init_args.teacher at a diffusers pipeline folder"),  # runs/ exists: a path
        ("/no/such/teacher", "point model.init_args.teacher at a diffusers pipeline folder"),
    ],
    ids=["mnist_export", "celeba_export", "under_a_folder", "absolute"],
)
def test_a_missing_local_teacher_folder_says_how_to_make_it(tmp_path, monkeypatch, source, expected) -> None:
    # `teachers/mnist16` used to be taken for a hub id: `huggingface-cli download teachers/mnist16`.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(FileNotFoundError) as raised:
        load_teacher(source)
    message = str(raised.value)
    assert message.startswith(f"teacher folder {os.path.abspath(Path(source).expanduser())} does not exist: ")
    assert expected in message and "make demo" in message and "download" not in message


def test_the_teacher_exports_are_where_the_teacher_configs_write() -> None:
    import inspect

    from signs_lightning.diffusion.score_model import TEACHER_EXPORTS
    from signs_lightning.modules import TeacherModule

    default = inspect.signature(TeacherModule.__init__).parameters["output_dir"].default
    root = Path(__file__).resolve().parents[1]
    for folder, command in TEACHER_EXPORTS.items():
        config = root / command.split("--config ")[1]
        output_dir = (yaml.safe_load(config.read_text())["model"].get("init_args") or {}).get("output_dir", default)
        assert output_dir == folder, config


def test_ddim_timesteps_rejects_bad_counts() -> None:
    schedule = NoiseSchedule.from_scheduler_config({"num_train_timesteps": 1000})
    with pytest.raises(ValueError, match="num_steps"):
        schedule.ddim_timesteps(0)


# -- what load_teacher refuses, and how it says so -----------------------------------------------------------------


def edited_teacher(tmp_path, tiny_teacher_dir, config: str, **changes):
    """A copy of the tiny teacher with ``changes`` written into one of its JSON configs."""
    import json
    import shutil

    folder = shutil.copytree(tiny_teacher_dir, tmp_path / "edited")
    path = folder / config
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return folder


def test_local_path_that_does_not_exist_is_named_as_a_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=re.escape(f"teacher folder {tmp_path / 'x'} does not exist")):
        load_teacher("./x")
    # "org/name" may be a hub id too: both readings are ruled out by name.
    folder = tmp_path / "teachers" / "no_such_teacher"
    with pytest.raises(FileNotFoundError, match=re.escape(f"the folder {folder} does not exist")):
        load_teacher("teachers/no_such_teacher")


def test_folder_without_scheduler_config_says_which_file(tmp_path, tiny_teacher_dir) -> None:
    import shutil

    folder = shutil.copytree(tiny_teacher_dir, tmp_path / "no_scheduler")
    shutil.rmtree(folder / "scheduler")
    with pytest.raises(FileNotFoundError, match=r"has no scheduler/scheduler_config.json \(the noise schedule"):
        load_teacher(folder)


@pytest.mark.parametrize(
    "config,changes",
    [
        ("unet/config.json", {"out_channels": 2}),
        ("scheduler/scheduler_config.json", {"variance_type": "learned_range"}),
    ],
)
def test_learned_variance_teacher_is_refused(tmp_path, tiny_teacher_dir, config, changes) -> None:
    refusal = "predicts a learned variance .*choose a teacher trained with a fixed variance"
    with pytest.raises(ValueError, match=refusal):
        load_teacher(edited_teacher(tmp_path, tiny_teacher_dir, config, **changes))


@pytest.mark.parametrize("changes", [{"num_class_embeds": 10}, {"class_embed_type": "timestep"}])
def test_class_conditional_teacher_is_refused(tmp_path, tiny_teacher_dir, changes) -> None:
    with pytest.raises(ValueError, match="is class-conditional .*SIGN distils an unconditional teacher"):
        load_teacher(edited_teacher(tmp_path, tiny_teacher_dir, "unet/config.json", **changes))


def test_local_source_is_recorded_as_an_absolute_path(tiny_teacher_dir, monkeypatch) -> None:
    monkeypatch.chdir(tiny_teacher_dir.parent)
    teacher = load_teacher(tiny_teacher_dir.name)
    assert teacher.source == str(tiny_teacher_dir)


# -- teachers outside the family: refused by what they are, before any weight is read -------------------------------

NOT_SUPPORTED = (
    r" is not supported: signs_lightning distils pixel-space, unconditional DDPM-family teachers \(UNet2DModel with "
    r"a DDPM/DDIM scheduler\)$"
)


def tiny_unet(channels: int = 1, size: int = 8, **config):
    from diffusers import UNet2DModel

    blocks = {"down_block_types": ("DownBlock2D",) * 2, "up_block_types": ("UpBlock2D",) * 2}
    return UNet2DModel(
        sample_size=size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=(8, 8),
        layers_per_block=1,
        norm_num_groups=4,
        **blocks,
        **config,
    )


def test_a_latent_pipeline_is_refused_as_latent_not_for_its_shape(tmp_path, tiny_teacher_dir) -> None:
    """A 4-channel UNet on 16x16 latents with a model_index.json naming a vae (an LDM/Stable Diffusion layout)."""
    import json
    import shutil

    from diffusers import DDPMScheduler

    folder = tmp_path / "ldm"
    tiny_unet(channels=4, size=16).save_pretrained(folder / "unet")
    DDPMScheduler(num_train_timesteps=1000).save_pretrained(folder / "scheduler")
    index = {"_class_name": "LDMPipeline", "unet": ["diffusers", "UNet2DModel"], "vae": ["diffusers", "AutoencoderKL"]}
    (folder / "model_index.json").write_text(json.dumps({**index, "scheduler": ["diffusers", "DDPMScheduler"]}))
    found = r"a latent pipeline \(model_index.json names a vae: its UNet denoises latents, not images\)"
    with pytest.raises(ValueError, match=re.escape(f"teacher {folder}: ") + found + NOT_SUPPORTED):
        load_teacher(folder)
    # Without its model_index.json, the folder's vae/ still tells.
    (folder / "model_index.json").unlink()
    (folder / "vae").mkdir()
    (folder / "vae" / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    with pytest.raises(ValueError, match=r"a latent pipeline \(the folder has a vae: .*" + NOT_SUPPORTED):
        load_teacher(folder)
    # Optional components a pipeline lacks ([null, null]) are no reason to refuse.
    shutil.rmtree(folder)
    index = json.loads((tiny_teacher_dir / "model_index.json").read_text())
    shutil.copytree(tiny_teacher_dir, folder)
    (folder / "model_index.json").write_text(json.dumps({**index, "safety_checker": [None, None]}))
    assert load_teacher(folder).image_shape == (1, 8, 8)


def test_a_variance_exploding_teacher_is_refused_by_its_scheduler(tmp_path, tiny_teacher_dir) -> None:
    """A score-SDE VE teacher (ScoreSdeVeScheduler, σ 0.01…1348) used to be read as a linear-β DDPM with T = 2000."""
    import shutil

    from diffusers import ScoreSdeVeScheduler

    folder = shutil.copytree(tiny_teacher_dir, tmp_path / "ve")
    shutil.rmtree(folder / "scheduler")
    ScoreSdeVeScheduler(num_train_timesteps=2000, sigma_min=0.01, sigma_max=1348.0).save_pretrained(
        folder / "scheduler"
    )
    found = "a sigma-based (variance-exploding / EDM) schedule (scheduler_config.json names ScoreSdeVeScheduler)"
    with pytest.raises(ValueError, match=re.escape(f"teacher {folder}: {found}") + NOT_SUPPORTED):
        load_teacher(folder)


def test_a_fourier_time_embedding_is_refused(tmp_path, tiny_teacher_dir) -> None:
    """A UNet2DModel with time_embedding_type "fourier" takes continuous noise levels, not integer DDPM timesteps."""
    import shutil

    folder = shutil.copytree(tiny_teacher_dir, tmp_path / "fourier")
    shutil.rmtree(folder / "unet")
    tiny_unet(time_embedding_type="fourier").save_pretrained(folder / "unet")
    found = "a UNet with a fourier time embedding (unet/config.json time_embedding_type 'fourier'"
    with pytest.raises(ValueError, match=re.escape(f"teacher {folder}: {found}") + ".*" + NOT_SUPPORTED):
        load_teacher(folder)


@pytest.mark.parametrize(
    "config,changes,found",
    [
        (
            "unet/config.json",
            {"_class_name": "UNet2DConditionModel", "cross_attention_dim": 8},
            "a UNet2DConditionModel conditioned on encoder states (unet/config.json), not a UNet2DModel",
        ),
        ("scheduler/scheduler_config.json", {"_class_name": "EDMEulerScheduler"}, "names EDMEulerScheduler"),
        ("scheduler/scheduler_config.json", {"_class_name": "FlowMatchEulerDiscreteScheduler"}, "not a DDPM-family"),
        (
            "scheduler/scheduler_config.json",
            {"_class_name": "EulerDiscreteScheduler", "timestep_type": "continuous"},
            "a UNet fed continuous σ timesteps",
        ),
    ],
    ids=["conditional_unet", "edm", "flow_matching", "continuous_timesteps"],
)
def test_other_unets_and_schedulers_are_refused_by_name(tmp_path, tiny_teacher_dir, config, changes, found) -> None:
    with pytest.raises(ValueError, match=re.escape(found) + ".*" + NOT_SUPPORTED):
        load_teacher(edited_teacher(tmp_path, tiny_teacher_dir, config, **changes))


@pytest.mark.parametrize("scheduler", ["DDIMScheduler", "DPMSolverMultistepScheduler", "EulerDiscreteScheduler"])
def test_ddpm_family_schedulers_are_accepted(tmp_path, tiny_teacher_dir, scheduler) -> None:
    """Any sampler of a DDPM-trained UNet: the same beta schedule, so the same ā_t."""
    config = "scheduler/scheduler_config.json"
    teacher = load_teacher(edited_teacher(tmp_path, tiny_teacher_dir, config, _class_name=scheduler))
    torch.testing.assert_close(teacher.schedule.alphas_cumprod, load_teacher(tiny_teacher_dir).schedule.alphas_cumprod)


def test_every_teacher_checkpoint_holds_an_ema_of_every_update_in_it(tmp_path) -> None:
    """A checkpoint written at a batch end (periodic, requeue) must not hold an EMA one update behind the weights."""
    import lightning as L

    from signs_lightning.data import EmbeddedMNISTDataModule
    from signs_lightning.modules.teacher import TeacherModule
    from signs_lightning.run.callbacks import ModelCheckpoint

    model = TeacherModule(image_size=8, block_out_channels=[8, 8, 8], ema_decay=0.9, output_dir=str(tmp_path / "t"))
    saves = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_top_k=-1)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=4,
        default_root_dir=tmp_path,
        logger=False,
        callbacks=[saves],
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, EmbeddedMNISTDataModule(image_size=8, batch_size=4))
    written = sorted((tmp_path / "ckpt").glob("*.ckpt"))
    assert len(written) == 2
    for path in written:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        assert int(checkpoint["state_dict"]["ema.num_updates"]) == checkpoint["global_step"], path.name
