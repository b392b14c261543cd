"""The diffusion side: noise schedules, score models (teacher and fake score) and their ODE solvers."""

from signs_lightning.diffusion.ode_solvers import SOLVERS, solve
from signs_lightning.diffusion.schedule import NoiseSchedule
from signs_lightning.diffusion.score_model import ScoreModel, load_teacher

__all__ = ["SOLVERS", "NoiseSchedule", "ScoreModel", "load_teacher", "solve"]
