"""The benchmark's models, declared as data: to benchmark another recipe, append a dict to ``VARIANTS``.

Every variant trains through ``signs fit`` (its config after the layers its ``# bases:`` line names, then its
overrides) on the same teacher for the same wall-clock budget (IGN: ``--ign-time-factor`` × that budget), then is
scored at each of its ``nfe`` settings.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from signs_lightning.run.runs import CONFIGS

SIGN_CONFIG = str(CONFIGS / "sign_mnist.yaml")
IGN_CONFIG = str(CONFIGS / "ign_mnist.yaml")

# The variant the targets are about, and the baseline it is compared with.
HEADLINE = "sign"
BASELINE = "ign"

TEACHER_NFE = [1, 2, 4, 10, 50]
# Inception FID costs ~144 ms per image on a 2-core CPU: only the teacher setting SIGN is compared with.
TEACHER_INCEPTION_NFE = [10]


class Variant(TypedDict):
    """One trained model of the benchmark.

    name: file stem of its results (``results/<name>.json``) and its row label.
    kind: ``sign`` or ``ign`` (IGN gets the longer budget).
    config: the LightningCLI config it trains with.
    overrides: ``KEY=VALUE`` config overrides (``signs demo --override`` syntax).
    nfe: multi-step sampler settings scored (f(f(z)) is always scored too).
    inception_nfe: the subset of ``nfe`` also scored with Inception features.
    description: what the variant tests, for the table.
    """

    name: str
    kind: Literal["sign", "ign"]
    config: str
    overrides: list[str]
    nfe: list[int]
    inception_nfe: list[int]
    description: str


def sign_terms(
    flow: float = 0.0, dmd: float = 0.0, reg: float = 1.0, gen_every: int = 1, trajectory: float = 0.0
) -> list[str]:
    """Overrides that set SIGN's loss terms explicitly, whatever the config's defaults (L_rec and L_idem keep the
    config's; L_reg keeps its pair settings): a weight of 0 switches a term off; ``trajectory`` is L_reg's
    ``trajectory_fraction``."""
    overrides = []
    for slot, term, weight in (("flow", "Flow", flow), ("dmd", "DistributionMatching", dmd)):
        overrides += (
            [
                f"model.init_args.{slot}=signs_lightning.losses.{term}",
                f"model.init_args.{slot}.init_args.weight={weight}",
            ]
            if weight > 0
            else [f"model.init_args.{slot}=null"]
        )
    if reg > 0:
        overrides += [
            f"model.init_args.reg.init_args.weight={reg}",
            f"model.init_args.reg.init_args.trajectory_fraction={trajectory}",
        ]
    else:
        overrides.append("model.init_args.reg=null")
    return overrides + [f"model.init_args.gen_every={gen_every}"]


def sign_variant(name: str, description: str, overrides: list[str]) -> Variant:
    """A SIGN recipe on ``configs/sign_mnist.yaml``, scored at 1, 2 and 4 NFE (Inception at 1)."""
    return Variant(
        name=name,
        kind="sign",
        config=SIGN_CONFIG,
        overrides=overrides,
        nfe=[1, 2, 4],
        inception_nfe=[1],
        description=description,
    )


VARIANTS: list[Variant] = [
    sign_variant(HEADLINE, "configs/sign_mnist.yaml as is", []),
    sign_variant("sign_reg", "rec+idem+reg", sign_terms()),
    sign_variant("sign_flow_noreg", "rec+idem+flow", sign_terms(flow=1.0, reg=0.0)),
    sign_variant("sign_flow_reg", "rec+idem+flow+reg", sign_terms(flow=1.0)),
    sign_variant("sign_dmd_noreg", "rec+idem+dmd, fake score 1:1", sign_terms(dmd=1.0, reg=0.0)),
    sign_variant("sign_dmd_noreg_5to1", "rec+idem+dmd, fake score 5:1", sign_terms(dmd=1.0, reg=0.0, gen_every=5)),
    sign_variant("sign_dmd_reg", "rec+idem+dmd+reg, fake score 1:1", sign_terms(dmd=1.0)),
    sign_variant("sign_dmd_reg_5to1", "rec+idem+dmd+reg, fake score 5:1", sign_terms(dmd=1.0, gen_every=5)),
    sign_variant("sign_all_noreg", "rec+idem+flow+dmd, fake score 1:1", sign_terms(flow=1.0, dmd=1.0, reg=0.0)),
    sign_variant(
        "sign_all_noreg_5to1", "rec+idem+flow+dmd, fake score 5:1", sign_terms(flow=1.0, dmd=1.0, reg=0.0, gen_every=5)
    ),
    sign_variant("sign_all_reg", "all terms, fake score 1:1", sign_terms(flow=1.0, dmd=1.0)),
    sign_variant("sign_all_reg_5to1", "all terms, fake score 5:1", sign_terms(flow=1.0, dmd=1.0, gen_every=5)),
    # The multi-step question: L_reg on the inputs multi-step sampling feeds f, states of the teacher's own ODE
    # paths, whose target (the path's end) is a sample. (L_rec on re-noised real images, whose target is only the
    # blurry posterior mean, made every NFE worse: benchmarks/README.md; the option was removed.)
    sign_variant(
        "sign_traj", "rec+idem+reg, L_reg on DDIM trajectory states (fraction 0.5)", sign_terms(trajectory=0.5)
    ),
    sign_variant(
        "sign_traj_flow", "rec+idem+flow+reg, L_reg on trajectory states (0.5)", sign_terms(flow=1.0, trajectory=0.5)
    ),
    sign_variant(
        "sign_traj_dmd_5to1",
        "rec+idem+dmd+reg, trajectory states (0.5), fake score 5:1",
        sign_terms(dmd=1.0, gen_every=5, trajectory=0.5),
    ),
    Variant(
        name=BASELINE,
        kind="ign",
        config=IGN_CONFIG,
        overrides=[],
        nfe=[1, 2],
        inception_nfe=[1],
        description="IGN baseline, published defaults (configs/ign_mnist.yaml)",
    ),
]

# --smoke: an 8x8 teacher of ~5k parameters and tiny batches, as in tests/test_demo.py.
SMOKE_OVERRIDES = ["data.init_args.image_size=8", "data.init_args.batch_size=16"]
SMOKE_TEACHER_OVERRIDES = [
    "model.init_args.image_size=8",
    "model.init_args.block_out_channels=[8, 8]",
    "model.init_args.sample_nfe=[2]",
]
SMOKE_TEACHER_STEPS = 4
SMOKE_KIND_OVERRIDES: dict[str, list[str]] = {"sign": ["model.init_args.reg.init_args.pairs=32"], "ign": []}


def select(names: list[str] | None) -> list[Variant]:
    """The variants named (all when ``names`` is None), in ``VARIANTS`` order."""
    if names is None:
        return list(VARIANTS)
    known = {variant["name"] for variant in VARIANTS}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"benchmarks.run: unknown variant(s) {unknown}; known: {sorted(known)}")
    return [variant for variant in VARIANTS if variant["name"] in names]


def by_name(name: str) -> Variant:
    return next(variant for variant in VARIANTS if variant["name"] == name)
