"""LightningModules: SIGN distillation, the teacher trainer and the IGN baseline."""

from signs_lightning.modules.ign import IGNModule
from signs_lightning.modules.sign import SIGNModule
from signs_lightning.modules.teacher import TeacherModule

__all__ = ["IGNModule", "SIGNModule", "TeacherModule"]
