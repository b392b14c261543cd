"""Test-only constants shared by several test files."""

from signs_lightning.diffusion.schedule import PREDICTION_TYPES

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
# Every prediction type with the default schedule, and every schedule with epsilon: the grid diffusers tests use.
SCHEDULE_GRID = (
    [(p, "linear") for p in PREDICTION_TYPES]
    + [("epsilon", b) for b in BETA_SCHEDULES[1:]]
    + [("v_prediction", "squaredcos_cap_v2")]
)
