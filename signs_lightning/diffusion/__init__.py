"""The diffusion side: noise schedules, score models (teacher and fake score) and their samplers."""

from signs_lightning.diffusion.schedule import NoiseSchedule
from signs_lightning.diffusion.score_model import ScoreModel, load_teacher

__all__ = ["NoiseSchedule", "ScoreModel", "load_teacher"]
