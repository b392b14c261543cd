"""The teacher's ODE solvers (``diffusion/ode_solvers.py``) and L_reg's pairs made with them: the same ODE as our
DDIM, deterministic, per-pair seeded, the same for any number of ranks, and a cache key of their own."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch
import yaml
from helpers import SCHEDULE_GRID, built_sign_cli, fit, write_config
from torch import Tensor, nn

from signs_lightning.diffusion import NoiseSchedule, ScoreModel, load_teacher, ode_solvers, teacher_pairs
from signs_lightning.diffusion.ode_solvers import SOLVERS, solve, trajectory
from signs_lightning.losses import Regression
from signs_lightning.modules import SIGNModule
from signs_lightning.run.cli import main

MULTISTEP = ("dpmsolver++", "unipc")


class GaussianData(nn.Module):
    """The exact network output (of the schedule's prediction type) for data x0 ~ N(mean, std²) per pixel.

    Its probability-flow ODE has a closed form: (x_t − √ā_t·mean) / √(ā_t·std² + 1 − ā_t) is constant along a path.
    """

    def __init__(self, mean: Tensor, std: Tensor, schedule: NoiseSchedule) -> None:
        super().__init__()
        self.mean, self.std, self.schedule = mean, std, schedule

    def forward(self, x_t: Tensor, t: Tensor) -> SimpleNamespace:
        alpha, sigma = self.schedule.alpha_sigma(t, x_t)
        scaled = (x_t - alpha * self.mean) / (alpha**2 * self.std**2 + sigma**2)
        x0, eps = self.mean + alpha * self.std**2 * scaled, sigma * scaled
        return SimpleNamespace(sample=self.schedule.training_target(x0, eps, t))

    def ode_end(self, z: Tensor) -> Tensor:
        """The exact end (ā = 1) of the ODE path that starts at z at t = T − 1."""
        abar = self.schedule.alphas_cumprod[-1]
        return self.mean + self.std * (z - abar.sqrt() * self.mean) / (abar * self.std**2 + 1 - abar).sqrt()


@pytest.mark.parametrize("prediction_type,beta_schedule", [*SCHEDULE_GRID, ("epsilon", "sigmoid")])
def test_every_solver_converges_to_the_exact_ode_solution(prediction_type: str, beta_schedule: str) -> None:
    schedule = NoiseSchedule.from_scheduler_config(
        {"num_train_timesteps": 1000, "beta_schedule": beta_schedule, "prediction_type": prediction_type}
    )
    generator = torch.Generator().manual_seed(0)
    mean = torch.rand((1, 1, 8, 8), generator=generator, dtype=torch.float64) * 1.6 - 0.8
    std = torch.rand((1, 1, 8, 8), generator=generator, dtype=torch.float64) * 0.3 + 0.05
    network = GaussianData(mean, std, schedule)
    teacher = ScoreModel(network, schedule)
    z = torch.randn((4, 1, 8, 8), generator=generator)
    exact = network.ode_end(z.double()).float()
    errors = {
        solver: {steps: (solve(teacher, z, solver, steps) - exact).abs().max().item() for steps in (5, 20, 200)}
        for solver in SOLVERS
    }
    for solver, by_steps in errors.items():
        assert by_steps[200] < by_steps[20] < by_steps[5], (solver, by_steps)
        assert by_steps[200] < 0.05 * by_steps[5], (solver, by_steps)
    # The multistep solvers are the more accurate ones at equal NFE. Measured on linear/epsilon (max abs error at
    # 5 / 20 / 200 steps): DDIM 0.73 / 0.25 / 0.029, DPM-Solver++ 0.72 / 0.21 / 0.011, UniPC 0.72 / 0.20 / 0.011;
    # at many steps all are limited by the last step's jump from t = T/S − 1 to x̂₀, which is first order.
    for solver in MULTISTEP:
        assert all(errors[solver][steps] < 0.9 * errors["ddim"][steps] for steps in (20, 200)), errors


def test_the_solvers_solve_the_teachers_ode_the_way_ddim_does(tiny_teacher_dir) -> None:
    """Many steps of DPM-Solver++ or UniPC land where many steps of DDIM land: the same ODE, the same start."""
    teacher = load_teacher(tiny_teacher_dir)
    z = teacher_pairs.pair_noise(0, range(2), teacher.image_shape)
    reference = solve(teacher, z, "ddim", 1000)
    scale = reference.abs().max().item()  # an untrained UNet's ODE ends far outside [-1, 1]
    for solver in MULTISTEP:
        error = {
            steps: (solve(teacher, z, solver, steps) - reference).abs().max().item() / scale for steps in (5, 20, 100)
        }
        # Measured: dpmsolver++ 0.11 / 0.013 / 9e-4, unipc 0.11 / 0.011 / 1.2e-3 (DDIM-100 itself: 7e-3).
        assert error[100] < 3e-3 and error[100] < error[20] < error[5], (solver, error)


@pytest.mark.parametrize("solver", SOLVERS)
def test_trajectory_visits_the_ddim_levels_and_is_deterministic(tiny_teacher_dir, solver) -> None:
    teacher = load_teacher(tiny_teacher_dir)
    z = teacher_pairs.pair_noise(3, range(3), teacher.image_shape)
    states = list(trajectory(teacher, z, solver, 4))
    assert len(states) == 4 and all(state.shape == z.shape for state in states)
    assert torch.equal(states[-1], solve(teacher, z, solver, 4))
    # One sample alone gives what it gives in a batch (up to the UNet's batched rounding).
    torch.testing.assert_close(solve(teacher, z[1:2], solver, 4), states[-1][1:2], atol=1e-4, rtol=1e-4)
    scheduler = ode_solvers.diffusers_scheduler(teacher.schedule, "unipc")
    scheduler.set_timesteps(7)
    assert scheduler.timesteps.tolist() == teacher.schedule.ddim_timesteps(7)


def test_with_one_or_two_steps_every_solver_is_ddim(tiny_teacher_dir) -> None:
    """The multistep solvers start at first order and end at first order (the last step lands on x̂₀): DDIM."""
    teacher = load_teacher(tiny_teacher_dir)
    z = teacher_pairs.pair_noise(1, range(3), teacher.image_shape)
    for steps in (1, 2):
        ddim = solve(teacher, z, "ddim", steps)
        for solver in MULTISTEP:
            torch.testing.assert_close(solve(teacher, z, solver, steps), ddim, atol=1e-4, rtol=1e-5)


def test_ddim_is_the_existing_sampler_bit_for_bit(tiny_teacher_dir) -> None:
    teacher = load_teacher(tiny_teacher_dir)
    z = teacher_pairs.pair_noise(0, range(3), teacher.image_shape)
    assert torch.equal(solve(teacher, z, "ddim", 3), teacher.ddim_sample(z, 3))
    pairs = teacher_pairs.generate_pairs(teacher, count=3, steps=3, seed=0, trajectory=True)
    expected = list(teacher.ddim_trajectory(z, 3))
    assert torch.equal(pairs.y, expected[-1]) and torch.equal(pairs.trajectory, torch.stack(expected[:-1], dim=1))


def test_a_bad_solver_name_is_one_line_naming_the_accepted_values(tiny_teacher_dir) -> None:
    teacher = load_teacher(tiny_teacher_dir)
    z = torch.zeros(1, *teacher.image_shape)
    for call in (
        lambda: solve(teacher, z, "euler", 4),
        lambda: teacher_pairs.generate_pairs(teacher, 2, 2, 0, solver="euler"),
        lambda: teacher_pairs.pairs_path(teacher, 2, 2, 0, None, solver="euler"),
        lambda: Regression(solver="euler"),
    ):
        with pytest.raises(ValueError) as error:
            call()
        message = str(error.value)
        assert "\n" not in message and "'euler'" in message and "ddim, dpmsolver++, unipc" in message, message


def test_a_bad_solver_name_in_a_config_is_one_line(tiny_teacher_dir, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["signs"])
    config = write_config(tmp_path / "fit.yaml", tiny_teacher_dir)
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", str(config), "--model.init_args.reg.init_args.solver", "euler"])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 1 and "Traceback" not in err
    assert "Regression: solver must be one of ddim, dpmsolver++, unipc, got 'euler'" in err.splitlines()[-1]


def test_the_solver_is_in_the_cache_key(tiny_teacher_dir, tmp_path, monkeypatch) -> None:
    teacher = load_teacher(tiny_teacher_dir)
    paths = {solver: teacher_pairs.pairs_path(teacher, 6, 3, 1, tmp_path, solver=solver) for solver in SOLVERS}
    assert len(set(paths.values())) == len(SOLVERS)
    # DDIM pairs are what they were before solvers were selectable: their cache files keep their names.
    assert paths["ddim"].name == f"{teacher.fingerprint()}-ddim3-n6-seed1-{teacher_pairs.FORMAT}.pt"
    assert paths["dpmsolver++"].name.startswith(f"{teacher.fingerprint()}-dpmsolverpp3-")
    made = teacher_pairs.load_or_generate_pairs(teacher, 6, 3, 1, tmp_path, trajectory=True, solver="unipc")
    assert teacher_pairs.pairs_path(teacher, 6, 3, 1, tmp_path, trajectory=True, solver="unipc").is_file()
    torch.testing.assert_close(made.y, solve(teacher, made.z, "unipc", 3))
    monkeypatch.setattr(teacher_pairs, "generate_pairs", lambda *a, **k: pytest.fail("pairs regenerated"))
    again = teacher_pairs.load_or_generate_pairs(teacher, 6, 3, 1, tmp_path, trajectory=True, solver="unipc")
    assert torch.equal(made.y, again.y) and torch.equal(made.trajectory, again.trajectory)


class SimulatedRanks:
    """``all_gather`` of a 2-rank run, for ``gather_interleaved``: every rank's share of one field, padded."""

    world_size = 2
    root_device = torch.device("cpu")

    def __init__(self, shares: list[Tensor]) -> None:
        self.shares = shares

    def all_gather(self, tensor: Tensor) -> Tensor:
        longest = tensor.shape[0]
        padded = [torch.cat([s, s.new_zeros(longest - s.shape[0], *s.shape[1:])]) for s in self.shares]
        return torch.stack(padded)


@pytest.mark.parametrize("solver", MULTISTEP)
def test_pairs_of_two_ranks_gathered_equal_pairs_of_one_process(tiny_teacher_dir, solver) -> None:
    teacher = load_teacher(tiny_teacher_dir)
    count = 7
    single = teacher_pairs.generate_pairs(teacher, count, 3, seed=2, trajectory=True, solver=solver)
    # Rank r makes pairs r, r + 2, ... (in batches of 2: batching must not matter either).
    shares = [
        teacher_pairs.generate_pairs(teacher, count, 3, 2, True, 2, indices=range(r, count, 2), solver=solver)
        for r in range(2)
    ]
    for field in ("z", "y", "trajectory"):
        parts = [getattr(share, field) for share in shares]
        gathered = teacher_pairs.gather_interleaved(parts[0], count, SimulatedRanks(parts))
        if field == "z":
            assert torch.equal(gathered, single.z)
        else:
            # Batch composition changes only the UNet kernels' float32 rounding (the untrained teacher's ODE ends at
            # |x| ~ 500: differences of ~1e-4, as for DDIM).
            torch.testing.assert_close(gathered, getattr(single, field), atol=1e-3, rtol=1e-4)


def test_the_solver_round_trips_through_checkpoints_and_yaml(tiny_teacher_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["signs"])
    model = SIGNModule(
        teacher=str(tiny_teacher_dir), reg=Regression(pairs=8, sampler_steps=2, solver="dpmsolver++"), sample_nfe=[1]
    )
    assert model.hparams.reg["init_args"]["solver"] == "dpmsolver++"
    fit(model, tmp_path, steps=1)
    (checkpoint,) = tmp_path.rglob("*.ckpt")
    restored = SIGNModule.load_from_checkpoint(checkpoint)
    assert restored.losses["reg"].solver == "dpmsolver++" and restored.losses["reg"].sampler_steps == 2

    config = tmp_path / "reg.yaml"
    config.write_text(
        yaml.safe_dump({"model": {"init_args": {"reg": {"init_args": {"solver": "unipc", "sampler_steps": 20}}}}})
    )
    cli = built_sign_cli(tiny_teacher_dir, "--config", str(config), "--trainer.default_root_dir", str(tmp_path / "cli"))
    reg = cli.model.losses["reg"]
    assert (reg.solver, reg.sampler_steps) == ("unipc", 20)
    assert cli.model.hparams.reg["init_args"]["solver"] == "unipc"
