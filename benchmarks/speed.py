"""A SIGN training step against its own compute limit, with each speed option on and off (issue 20).

    python -m benchmarks.speed [--config configs/sign_mnist.yaml] [--batch-size N] [--options NAME ...] [--grid]

For one config, on the GPU when there is one (else the CPU), for each set of speed options (``option_sets``):

1. the training step through Lightning and through a bare loop over the same step function
   (``benchmarks.overhead.timed_loops``): seconds per batch, the median over generator cycles (one generator
   step and its ``gen_every − 1`` fake-score-only batches);
2. the compute limit: every network pass of one cycle (f's forward and backward on the batched term inputs, the
   f_sg forward and input backward of L_idem, the teacher's and the fake score's forwards, the fake score's update,
   f's target forwards), recorded with its shapes, grad mode and autocast (``record_cycle``), then each timed
   alone the same way (``replay``) and summed, per batch;
3. for the default options only: where the time goes (``torch.profiler`` self time per batch by phase of the step,
   by kind of op: convolution, normalization, elementwise, optimizer/EMA/gradient norm, ..., and the top ops), and
   sampling and evaluation throughput (images/s at 1, 2 and 4 NFE against a bare forward of the UNet, features/s of the
   config's feature extractor, teacher pairs/s).

The teacher's weights do not change what a step costs: without ``--teacher`` the config's teacher is used when it
is here, else a random-weight one of its architecture (``RANDOM_TEACHERS``). Compilation is reported as the warm-up
seconds of each set with ``compile`` (dynamo's caches are reset per set; inductor's on-disk cache is kept, set
``TORCHINDUCTOR_FORCE_DISABLE_CACHES=1`` for a cold compile) and amortised over the config's whole run. Writes
``<output>/<cpu|gpu>_<config>[_<card>].json`` (``cpu_demo.json`` for ``configs/sign_mnist.yaml``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import importlib
import inspect
import itertools
import re
import statistics
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from torch import Tensor, nn

from benchmarks.measure import device_name, median_seconds, synchronize, training_autocast
from benchmarks.overhead import bare_training, sample_vs_forward, timed_loops
from benchmarks.provenance import composed_config, write_results
from benchmarks.training import BENCH_OVERRIDES
from signs_lightning.core.distributed import LocalStrategy
from signs_lightning.diffusion.score_model import ScoreModel, teacher_available
from signs_lightning.diffusion.teacher_pairs import generate_pairs
from signs_lightning.evaluation import FeatureExtractor
from signs_lightning.losses.sign import with_detached_parameters
from signs_lightning.modules.common import GeneratorModule
from signs_lightning.modules.teacher import TeacherModule
from signs_lightning.run import runs
from signs_lightning.run.cli import cli_main
from signs_lightning.run.config_layers import config_files

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "configs" / "sign_mnist.yaml"

# The speed switches that are GeneratorModule init arguments: the default options are the module's defaults, so
# flipping one there flips it here.
MODULE_SWITCHES = ("compile", "channels_last", "foreach_ema", "one_pass_gradients", "teacher_inference_mode")
# AdamW's implementations, set on every AdamW the config spells out (off: torch's default, foreach on CUDA).
OPTIMIZER_SWITCHES = {"foreach_adamw": "foreach", "fused_adamw": "fused"}
OPTIONS = (*MODULE_SWITCHES, *OPTIMIZER_SWITCHES)
NFE = (1, 2, 4)

# google/ddpm-cifar10-32's unet/config.json (35.7M parameters).
CIFAR10_UNET = dict(
    sample_size=32,
    in_channels=3,
    out_channels=3,
    layers_per_block=2,
    block_out_channels=(128, 256, 256, 256),
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    downsample_padding=0,
    flip_sin_to_cos=False,
    freq_shift=1,
    norm_eps=1e-6,
    norm_num_groups=32,
    attention_head_dim=None,
)


def cifar10_unet() -> nn.Module:
    from diffusers import UNet2DModel

    return UNet2DModel(**CIFAR10_UNET)


def mnist_unet() -> nn.Module:
    """The demo teacher's UNet: ``TeacherModule``'s defaults, what ``configs/teacher_mnist.yaml`` trains."""
    return TeacherModule().model.unet


# The configs' teachers by source, as untrained networks of their architecture.
RANDOM_TEACHERS: dict[str, Callable[[], nn.Module]] = {
    "teachers/mnist16": mnist_unet,
    "google/ddpm-cifar10-32": cifar10_unet,
}

# What every timed fit sets: no in-loop evaluation or progress bar (``BENCH_OVERRIDES``), no checkpoints (a 35.7M
# model's would be written after each timed loop), and the generator stepping from the first batch, so that every
# cycle of ``gen_every`` batches is alike.
SPEED_OVERRIDES = [
    *BENCH_OVERRIDES,
    "trainer.callbacks=[]",
    "trainer.enable_checkpointing=false",
    "model.init_args.generator_warmup=0",
]

# Kinds of op, by fragments of their names (the first kind with a fragment in the name wins), for ops outside the
# bookkeeping phases (``BOOKKEEPING``), whose ops are all of the kind "optimizer, EMA, gradient norm".
OP_KINDS = (
    # Autograd's own nodes (``ConvolutionBackward0``): their self time is bookkeeping, their kernels are aten ops.
    ("autograd engine", ("autograd::", "backward0", "backward1")),
    ("compiled kernels", ("triton_", "cpp_fused", "compiled", "inductor")),
    ("convolution", ("conv",)),
    ("matmul and attention", ("addmm", "mm", "linear", "matmul", "attention", "softmax")),
    ("normalization", ("group_norm", "layer_norm", "batch_norm")),
    (
        "elementwise",
        (
            "add", "sub", "mul", "div", "silu", "sigmoid", "tanh", "pow", "exp", "sqrt", "neg", "abs", "clamp",
            "where", "copy", "fill", "zero", "cat", "mean", "sum", "rand", "normal", "clone", "sin", "cos",
            "upsample", "pad", "index", "gather", "arange", "lerp", "stack",
        ),
    ),
    (
        "views and allocation",
        (
            "empty", "view", "as_strided", "reshape", "transpose", "expand", "permute", "slice", "select", "squeeze",
            "split", "chunk", "detach", "alias", "resolve_conj", "contiguous", "flatten", "unbind",
        ),
    ),
)  # fmt: skip
BOOKKEEPING = ("optimizer step", "gradient check and clip", "EMA update")
BOOKKEEPING_KIND = "optimizer, EMA, gradient norm"


# -- the config ------------------------------------------------------------------------------------------------
def merged(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """``layer`` over ``base``, key by key in nested mappings, as the layered configs apply."""
    result = dict(base)
    for key, value in layer.items():
        both = isinstance(value, dict) and isinstance(result.get(key), dict)
        result[key] = merged(result[key], value) if both else value
    return result


def config_tree(configs: Sequence[Path]) -> dict[str, Any]:
    """The composed config of ``configs`` (each a layer, in order) as one nested mapping."""
    return functools.reduce(merged, (yaml.safe_load(Path(config).read_text()) or {} for config in configs), {})


def model_args(tree: dict[str, Any]) -> dict[str, Any]:
    return tree.get("model", {}).get("init_args") or {}


def adamw_keys(tree: dict[str, Any]) -> list[str]:
    """The config keys of the AdamW optimizers the config spells out (f's; the fake score's)."""
    init_args = model_args(tree)
    candidates = {
        "model.init_args.generator_optimizer": init_args.get("generator_optimizer"),
        "model.init_args.dmd.init_args.optimizer": ((init_args.get("dmd") or {}).get("init_args") or {}).get(
            "optimizer"
        ),
    }
    return [
        key
        for key, spec in candidates.items()
        if isinstance(spec, dict) and str(spec.get("class_path", "")).endswith("AdamW")
    ]


def write_random_teacher(path: Path, unet: Callable[[], nn.Module]) -> int:
    """A seeded random-weight ``unet()`` with DDPM's linear schedule, saved as a diffusers pipeline folder at
    ``path``; returns its parameter count."""
    from diffusers import DDPMPipeline, DDPMScheduler

    torch.manual_seed(0)
    network = unet()
    scheduler = DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="linear",
        prediction_type="epsilon",
        variance_type="fixed_large",
        clip_sample=False,
    )
    DDPMPipeline(unet=network, scheduler=scheduler).save_pretrained(path)
    return sum(p.numel() for p in network.parameters())


def resolve_teacher(teacher: str | None, tree: dict[str, Any], workdir: Path) -> tuple[str, str]:
    """The teacher to time with, and what it is: ``teacher``, else the config's when it is here, else a
    random-weight one of the config's teacher's architecture (written once under ``workdir``)."""
    if teacher is not None:
        return teacher, "given"
    source = str(model_args(tree).get("teacher"))
    if teacher_available(source):
        return source, "the config's"
    if source not in RANDOM_TEACHERS:
        raise SystemExit(f"benchmarks.speed: the config's teacher {source!r} is not here; pass --teacher FOLDER")
    folder = workdir / "teachers" / source.replace("/", "--")
    if not (folder / "model_index.json").is_file():
        write_random_teacher(folder, RANDOM_TEACHERS[source])
    return str(folder), f"random weights in {source}'s architecture"


def base_overrides(
    tree: dict[str, Any], teacher: str, batch_size: int | None, pairs: int, device: torch.device
) -> list[str]:
    """What every timed fit of the config sets besides the options: the teacher, the device, the batch size, a
    small L_reg pair cache (its size does not change a step), ``SPEED_OVERRIDES``."""
    init_args = model_args(tree)
    overrides = [
        f"model.init_args.teacher={teacher}",
        f"trainer.accelerator={'gpu' if device.type == 'cuda' else 'cpu'}",
        "trainer.devices=1",
        *SPEED_OVERRIDES,
    ]
    if batch_size is not None:
        overrides.append(f"data.init_args.batch_size={batch_size}")
    if isinstance(init_args.get("reg"), dict):
        overrides.append(f"model.init_args.reg.init_args.pairs={pairs}")
    if init_args.get("init_from") is not None:  # a second stage: its first stage's checkpoint changes no cost
        overrides.append("model.init_args.init_from=null")
    return overrides


# -- the options -------------------------------------------------------------------------------------------------
def default_options() -> dict[str, bool]:
    """The options as a fit gets them: the module's defaults, and AdamW as the config has it."""
    parameters = inspect.signature(GeneratorModule.__init__).parameters
    return {name: bool(parameters[name].default) if name in MODULE_SWITCHES else False for name in OPTIONS}


def all_off() -> dict[str, bool]:
    return dict.fromkeys(OPTIONS, False)


def options_key(options: dict[str, bool]) -> tuple[str, ...]:
    """The options that are on, in ``OPTIONS`` order: a set's name."""
    return tuple(name for name in OPTIONS if options[name])


def option_sets(names: Sequence[str], grid: bool) -> list[dict[str, bool]]:
    """All off, the defaults, and each option in ``names`` switched on from all-off and, when on by default, off in
    the defaults; with ``grid``, instead of the last two, every combination of ``names`` over the defaults. AdamW
    takes foreach or fused, not both: such sets are left out."""
    off, defaults = all_off(), default_options()
    if grid:
        combos = itertools.product((False, True), repeat=len(names))
        varied = [{**defaults, **dict(zip(names, values))} for values in combos]
    else:
        # An option off by default, switched on in the defaults, is left out: "alone from all off" measures it.
        varied = [{**off, name: True} for name in names] + [{**defaults, name: False} for name in names]
    unique: dict[tuple[str, ...], dict[str, bool]] = {}
    for options in [off, defaults, *varied]:
        if not (options["foreach_adamw"] and options["fused_adamw"]):
            unique.setdefault(options_key(options), options)
    return list(unique.values())


def option_overrides(options: dict[str, bool], adamws: Sequence[str]) -> list[str]:
    """The config overrides of ``options``: every module switch set explicitly, AdamW's on its optimizers."""
    overrides = [f"model.init_args.{name}={str(options[name]).lower()}" for name in MODULE_SWITCHES]
    for name, argument in OPTIMIZER_SWITCHES.items():
        if options[name]:
            overrides += [f"{key}.init_args.{argument}=true" for key in adamws]
    return overrides


def option_effects(results: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, dict[str, float | None]]:
    """Per option, step-time ratios (> 1: the option makes the step faster): all off over only it on, and the
    defaults with it off over the defaults with it on (None: a set that was not measured)."""
    seconds = {options_key(result["options"]): result["step_seconds"] for result in results}
    off, defaults = all_off(), default_options()

    def ratio(without: dict[str, bool], with_it: dict[str, bool]) -> float | None:
        slow, fast = seconds.get(options_key(without)), seconds.get(options_key(with_it))
        return slow / fast if slow is not None and fast is not None else None

    return {
        name: {
            "speedup_over_all_off": ratio(off, {**off, name: True}),
            "speedup_within_defaults": ratio({**defaults, name: False}, {**defaults, name: True}),
        }
        for name in names
    }


# -- timing of whole steps -----------------------------------------------------------------------------------------
def cycle_seconds(rounds: Sequence[Sequence[float]], gen_every: int, warmup: int) -> float:
    """Seconds per batch: the median over whole generator cycles (``gen_every`` batches, one generator step), each
    round's first ``warmup`` cycles left out, divided by ``gen_every``."""
    cycles = []
    for seconds in rounds:
        steady = seconds[warmup * gen_every :]
        cycles += [sum(steady[i : i + gen_every]) for i in range(0, len(steady) - gen_every + 1, gen_every)]
    return statistics.median(cycles) / gen_every


def warmup_seconds(rounds: Sequence[Sequence[float]], gen_every: int, warmup: int, batch_seconds: float) -> float:
    """What the slowest loop's warm-up batches cost beyond steady batches: allocation and lazy set-up, and
    compilation when ``compile`` is on (the first loop of a set compiles, later ones reuse its graphs)."""
    batches = warmup * gen_every
    return max(sum(seconds[:batches]) - batches * batch_seconds for seconds in rounds)


def random_batch(cli: Any) -> Tensor:
    """A seeded batch of uniform images in [-1, 1] of the model's shape and the datamodule's batch size: what a step
    costs does not depend on the pixels, and the config's data need not be here."""
    shape = (int(cli.datamodule.batch_size), *cli.model.image_shape)
    return torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 2 - 1


# -- the compute limit ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NetworkCall:
    """One network pass of a training step: the inputs it got (copies) and how it ran.

    grad / inference: the grad mode. autocast: the autocast dtype, None without. detached: its parameters did not
    require grad (f_sg's functional call, a frozen network). backward: its output required grad, so the step
    back-propagated through it (to its parameters unless detached, and to the inputs that required grad).
    """

    network: str
    args: tuple[Any, ...]
    input_grads: tuple[bool, ...]
    grad: bool
    inference: bool
    autocast: torch.dtype | None
    detached: bool
    backward: bool

    def key(self) -> tuple[Any, ...]:
        """What makes two passes cost the same: the network, input shapes and types, and modes."""
        shapes = tuple((tuple(a.shape), a.dtype) if isinstance(a, Tensor) else a for a in self.args)
        modes = (self.grad, self.inference, self.autocast, self.detached, self.backward)
        return (self.network, shapes, self.input_grads, *modes)

    def describe(self) -> str:
        if self.backward:
            return "forward + input backward" if self.detached else "forward + backward"
        return "forward (inference mode)" if self.inference else "forward (no grad)"


def named_networks(model: GeneratorModule) -> dict[str, nn.Module]:
    """The networks a step runs, by name: f, its EMA, the teacher, and the terms' own (``dmd.fake_score``)."""
    networks: dict[str, nn.Module] = {"f": model.student}
    if model.ema is not None:
        networks["ema"] = model.ema.module
    if model.teacher is not None:
        networks["teacher"] = model.teacher
    networks.update({name: m for name, m in model.losses.named_modules() if isinstance(m, ScoreModel)})
    return networks


def recorder(name: str, calls: list[NetworkCall], device_type: str) -> Callable[..., None]:
    """A forward hook that appends each pass of network ``name`` to ``calls``."""

    def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        autocast = torch.is_autocast_enabled(device_type)
        calls.append(
            NetworkCall(
                network=name,
                args=tuple(a.detach().clone() if isinstance(a, Tensor) else a for a in args),
                input_grads=tuple(isinstance(a, Tensor) and a.requires_grad for a in args),
                grad=torch.is_grad_enabled(),
                inference=torch.is_inference_mode_enabled(),
                autocast=torch.get_autocast_dtype(device_type) if autocast else None,
                # Inside f_sg's functional call the parameters are detached copies.
                detached=not any(p.requires_grad for p in module.parameters()),
                backward=isinstance(output, Tensor) and output.requires_grad,
            )
        )

    return hook


def record_cycle(model: GeneratorModule, x: Tensor, precision: str, device: torch.device) -> list[NetworkCall]:
    """Every network pass of one generator cycle (``gen_every`` batches) of ``model``'s bare training on ``x``."""
    optimizers = bare_training(model, device)
    calls: list[NetworkCall] = []
    handles = [
        network.register_forward_hook(recorder(name, calls, device.type))
        for name, network in named_networks(model).items()
    ]
    try:
        with training_autocast(precision, device):
            for _ in range(model.gen_every):
                model.seeded_train_batch(x.to(device), optimizers)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def call_mode(call: NetworkCall, device_type: str) -> contextlib.ExitStack:
    """The grad mode and autocast ``call`` ran under (the step's autocast, without a weight-cast cache as
    Lightning's and ``training_autocast``)."""
    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode() if call.inference else torch.set_grad_enabled(call.grad))
    if call.autocast is not None:
        stack.enter_context(torch.autocast(device_type, dtype=call.autocast, cache_enabled=False))
    return stack


def replay(call: NetworkCall, network: nn.Module, device_type: str) -> Callable[[], None]:
    """``call`` again, alone, on ``network``: the same inputs, grad mode and autocast, and the same backward
    (``autograd.grad`` to what the step's backward reached, without touching ``.grad``)."""
    trainable = [p for p in network.parameters() if p.requires_grad]
    forward = with_detached_parameters(network) if call.detached and trainable else network
    inputs = [a.clone().requires_grad_() if grad else a for a, grad in zip(call.args, call.input_grads)]
    wrt = ([] if call.detached else trainable) + [a for a, grad in zip(inputs, call.input_grads) if grad]

    def run() -> None:
        with call_mode(call, device_type):
            output = forward(*inputs)
            if call.backward:
                torch.autograd.grad(output.sum(), wrt, allow_unused=True)

    return run


def compute_limit(
    calls: Sequence[NetworkCall], networks: dict[str, nn.Module], gen_every: int, repeats: int, device: torch.device
) -> tuple[float, list[dict[str, Any]]]:
    """Seconds per batch of the cycle's network passes timed alone, and each kind of pass with its share."""
    alike: dict[tuple[Any, ...], list[NetworkCall]] = {}
    for call in calls:
        alike.setdefault(call.key(), []).append(call)
    passes = []
    for group in alike.values():
        call = group[0]
        seconds = median_seconds(replay(call, networks[call.network], device.type), repeats, device, warmup=2)
        batch = call.args[0].shape[0]
        per_batch = len(group) / gen_every
        passes.append(
            {
                "network": call.network,
                "pass": call.describe(),
                "batch": batch,
                "per_batch": per_batch,
                "seconds": seconds,
            }
        )
    limit = sum(entry["seconds"] * entry["per_batch"] for entry in passes)
    for entry in passes:
        entry["share_of_limit"] = entry["seconds"] * entry["per_batch"] / limit
    return limit, sorted(passes, key=lambda entry: -entry["share_of_limit"])


# -- one set of options ----------------------------------------------------------------------------------------------
@dataclass
class Setup:
    """One config's measurement: its layers, the overrides every fit gets, where, and how long."""

    configs: list[Path]
    overrides: list[str]
    adamws: list[str]
    run_batches: int  # the config's whole run, to amortise the compilation over
    device: torch.device
    workdir: Path
    steps: int
    warmup: int
    rounds: int
    repeats: int


def built_model(setup: Setup, overrides: Sequence[str], folder: Path) -> Any:
    """The config's CLI with ``overrides``, built but not run."""
    return cli_main(runs.cli_args(setup.configs, [*setup.overrides, *overrides], folder), run=False)


@dataclass
class Trained:
    """What a set's measurement leaves: the model its last bare loop trained (its networks as they ran, compiled
    when ``compile`` is on), the trainer's precision, and the batch."""

    model: GeneratorModule
    precision: str
    x: Tensor


@dataclass
class Round:
    """One round of one option set: each loop's step times, the compute limit and its passes."""

    seconds: dict[str, list[list[float]]]
    gen_every: int
    limit: float
    passes: list[dict[str, Any]]


def measure_round(setup: Setup, options: dict[str, bool], round_index: int) -> tuple[Round, Trained]:
    """One round of ``options``: the step through Lightning and bare, then the compute limit, back to back (a slow
    drift of the machine hits the step and its limit alike)."""
    name = "+".join(options_key(options)) or "all_off"
    overrides = option_overrides(options, setup.adamws)
    if options["compile"] and round_index == 0:
        torch._dynamo.reset()  # the set's first round compiles afresh: its warm-up shows the compilation
    folder = setup.workdir / name / f"round{round_index}"
    timed = timed_loops(
        setup.configs, [*setup.overrides, *overrides], folder, setup.warmup + setup.steps, 1, setup.device,
        batch=random_batch, first="bare" if round_index % 2 else "lightning",
    )  # fmt: skip
    # Recorded on an eager copy (hooks and compiled calls do not mix), replayed on the networks that ran.
    cli = built_model(setup, [*overrides, "model.init_args.compile=false"], folder / "record")
    precision, x = str(cli.trainer.precision), random_batch(cli).to(setup.device)
    calls = record_cycle(cli.model, x, precision, setup.device)
    limit, passes = compute_limit(calls, named_networks(timed.bare_model), timed.gen_every, setup.repeats, setup.device)
    return Round(timed.seconds, timed.gen_every, limit, passes), Trained(timed.bare_model, precision, x)


def summarize(setup: Setup, options: dict[str, bool], rounds: Sequence[Round]) -> dict[str, Any]:
    """A set's results over its rounds: median step times over every round's generator cycles, the median limit."""
    name = "+".join(options_key(options)) or "all_off"
    gen_every = rounds[0].gen_every
    lightning = [seconds for r in rounds for seconds in r.seconds["lightning"]]
    bare_rounds = [seconds for r in rounds for seconds in r.seconds["bare"]]
    step = cycle_seconds(lightning, gen_every, setup.warmup)
    bare = cycle_seconds(bare_rounds, gen_every, setup.warmup)
    limit = statistics.median(r.limit for r in rounds)
    warmup = warmup_seconds([*lightning, *bare_rounds], gen_every, setup.warmup, step)
    result = {
        "options": options,
        "step_seconds": step,
        "bare_step_seconds": bare,
        "limit_seconds": limit,
        "step_over_limit": step / limit,
        "bare_over_limit": bare / limit,
        # Lightning's throughput relative to the bare loop's: 1 is no overhead.
        "bare_over_lightning": bare / step,
        "generator_steps_per_second": 1 / (step * gen_every),
        "warmup_seconds": warmup,
        "compile_seconds": warmup if options["compile"] else None,
        "amortised_step_seconds": step + warmup / setup.run_batches,
        "rounds": [
            {
                "step_seconds": cycle_seconds(r.seconds["lightning"], gen_every, setup.warmup),
                "bare_step_seconds": cycle_seconds(r.seconds["bare"], gen_every, setup.warmup),
                "limit_seconds": r.limit,
            }
            for r in rounds
        ],
        "limit_passes": rounds[-1].passes,
    }
    print(
        f"[speed] {name}: {step * 1e3:.1f} ms/batch (bare {bare * 1e3:.1f}), limit {limit * 1e3:.1f} ms, "
        f"step/limit {step / limit:.2f}, warm-up {warmup:.1f} s"
    )
    return result


# -- where the time goes, and throughput (the default options) ------------------------------------------------------
def annotated(function: Callable[..., Any], label: str) -> Callable[..., Any]:
    """``function`` inside a profiler range named ``label``."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with torch.profiler.record_function(label):
            return function(*args, **kwargs)

    return wrapper


def phase_methods(model: GeneratorModule) -> list[tuple[Any, str, str]]:
    """(object, method, phase) of the step's phases: the methods that run them."""
    methods = [
        (model, "generator_losses", "generator losses (f and target forwards)"),
        (model, "_finite_and_clipped", "gradient check and clip"),
        (model.losses, "auxiliary_updates", "terms' own updates (fake-score forwards)"),
    ]
    return methods + ([(model.ema, "update", "EMA update")] if model.ema is not None else [])


@contextlib.contextmanager
def annotated_phases(model: GeneratorModule) -> Iterator[None]:
    """The step's phases as profiler ranges, by wrapping the module's methods on this instance only."""
    targets = phase_methods(model)
    for owner, attribute, label in targets:
        setattr(owner, attribute, annotated(getattr(owner, attribute), label))
    try:
        yield
    finally:
        for owner, attribute, _ in targets:
            delattr(owner, attribute)  # the class's method again


def phase_of(event: Any, labels: set[str]) -> str:
    """The innermost phase around a profiled event: an annotated one, the optimizer's own ranges, or the autograd
    engine's (the backward runs on its own thread on a GPU)."""
    while event is not None:
        if event.name in labels:
            return event.name
        if event.name.startswith("Optimizer."):
            return "optimizer step"
        if event.name.startswith("autograd::engine"):
            return "backward"
        event = event.cpu_parent
    return "other (loop, noise, logging)"


def op_kind(name: str, phase: str) -> str:
    if phase in BOOKKEEPING:
        return BOOKKEEPING_KIND
    lowered = name.lower()
    return next((kind for kind, parts in OP_KINDS if any(part in lowered for part in parts)), "other")


def per_batch_totals(rows: dict[str, list[float]], batches: int) -> dict[str, dict[str, float]]:
    """{name: [self CPU µs, self device µs, calls]} as seconds (and calls) per batch, largest CPU time first."""
    ordered = sorted(rows.items(), key=lambda item: -item[1][0])
    return {
        name: {
            "self_cpu_seconds": cpu / 1e6 / batches,
            "self_device_seconds": device / 1e6 / batches,
            "calls": calls / batches,
        }
        for name, (cpu, device, calls) in ordered
    }


def profile_step(model: GeneratorModule, x: Tensor, cycles: int, precision: str, device: torch.device) -> dict:
    """``torch.profiler`` over ``cycles`` generator cycles of bare training (after one unprofiled cycle): self time
    per batch by phase, by kind of op (``OP_KINDS``) and by op (the top 15)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    optimizers = bare_training(model, device)
    batches = cycles * model.gen_every
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with training_autocast(precision, device), annotated_phases(model):
        for _ in range(model.gen_every):
            model.seeded_train_batch(x, optimizers)
        synchronize(device)
        with profile(activities=activities) as profiler:
            for _ in range(batches):
                model.seeded_train_batch(x, optimizers)
            synchronize(device)
    labels = {label for _, _, label in phase_methods(model)}
    tables: dict[str, dict[str, list[float]]] = {"phase": {}, "kind": {}, "op": {}}
    # The ops (CPU events) only: their device time is that of the kernels they launched, which also come as events
    # of their own.
    for event in (event for event in profiler.events() if event.device_type == DeviceType.CPU):
        phase = phase_of(event, labels)
        for table, key in (("phase", phase), ("kind", op_kind(event.name, phase)), ("op", event.name)):
            row = tables[table].setdefault(key, [0.0, 0.0, 0])
            row[0] += event.self_cpu_time_total
            row[1] += event.self_device_time_total
            row[2] += 1
    ops = per_batch_totals(tables["op"], batches)
    order = "self_device_seconds" if device.type == "cuda" else "self_cpu_seconds"
    top = sorted(ops, key=lambda name: -ops[name][order])[:15]
    return {
        "batches": batches,
        "per_batch_by_phase": per_batch_totals(tables["phase"], batches),
        "per_batch_by_kind": per_batch_totals(tables["kind"], batches),
        "top_ops_per_batch": {name: ops[name] for name in top},
    }


def extractor_spec(tree: dict[str, Any], class_path: str | None) -> dict[str, Any] | None:
    """The feature extractor to time: ``class_path``, else the config's evaluator's (None: ``none`` or neither)."""
    if class_path is not None:
        return None if class_path == "none" else {"class_path": class_path}
    evaluator = model_args(tree).get("evaluator") or {}
    return (evaluator.get("init_args") or {}).get("extractor")


def features_per_second(spec: dict[str, Any], images: Tensor, repeats: int, device: torch.device) -> float:
    module_name, _, class_name = spec["class_path"].rpartition(".")
    extractor: FeatureExtractor = getattr(importlib.import_module(module_name), class_name)(**spec.get("init_args", {}))
    extractor.prepare(LocalStrategy(device))
    extractor.to(device).eval()
    with torch.no_grad():
        return len(images) / median_seconds(lambda: extractor(images), repeats, device)


def pairs_per_second(model: GeneratorModule, count: int, device: torch.device) -> dict[str, Any] | None:
    """L_reg's teacher pairs/s (its solver and steps, one batch of ``count``) with the model's teacher as it trained
    (compiled with ``compile``: the second call is timed); None without L_reg."""
    if "reg" not in model.losses:
        return None
    term = model.losses["reg"]
    seconds = median_seconds(
        lambda: generate_pairs(model.teacher, count, term.sampler_steps, 0, batch_size=count, solver=term.solver),
        repeats=1,
        device=device,
    )
    return {
        "solver": term.solver,
        "sampler_steps": term.sampler_steps,
        "count": count,
        "pairs_per_second": count / seconds,
    }


def throughput(
    model: GeneratorModule, spec: dict[str, Any] | None, batch: int, pair_count: int, repeats: int, precision: str
) -> dict[str, Any]:
    """Images/s of ``model.sample`` at 1, 2 and 4 NFE and of the bare UNet forward (under the training autocast),
    features/s of the extractor ``spec``, teacher pairs/s."""
    device = model.device
    model.eval()
    shape = model.image_shape
    z = torch.randn((batch, *shape), generator=torch.Generator().manual_seed(0)).to(device)
    result: dict[str, Any] = {"batch": batch}
    with training_autocast(precision, device):
        overhead = sample_vs_forward(model, shape, batch, repeats, device)
        for nfe in NFE:
            seconds = median_seconds(lambda: model.sample(z, nfe), repeats, device)
            result[f"nfe{nfe}_images_per_second"] = batch / seconds
    if overhead is not None:
        result["bare_forward_images_per_second"] = batch / overhead["forward_seconds"]
    images = torch.rand((batch, *shape), device=device) * 2 - 1
    result["extractor"] = spec["class_path"] if spec is not None else None
    result["features_per_second"] = features_per_second(spec, images, repeats, device) if spec is not None else None
    result["teacher_pairs"] = pairs_per_second(model, pair_count, device)
    return result


# -- the run -----------------------------------------------------------------------------------------------------------
def card_slug(device: torch.device) -> str:
    """``cpu``, or ``gpu_<model>`` from the GPU's name (``NVIDIA H100 80GB HBM3``: ``gpu_h100``)."""
    if device.type != "cuda":
        return "cpu"
    found = re.search(r"\b([A-Z]+\d+[A-Za-z]*)\b", torch.cuda.get_device_name(device))
    return f"gpu_{found.group(1).lower()}" if found else "gpu"


def results_name(config: Path, device: torch.device) -> str:
    """``cpu_demo.json`` for the demo config, else ``<cpu|gpu>_<config without sign_>[_<card>].json``."""
    stem = "demo" if config.resolve() == DEMO_CONFIG else config.stem.removeprefix("sign_")
    kind, _, card = card_slug(device).partition("_")
    return f"{kind}_{stem}{'_' + card if card else ''}.json"


# Defaults of the sizes left unset, for a measurement and for --smoke (a test of the code, numbers meaningless).
SIZES: dict[str, dict[str, int | None]] = {
    "full": {
        "steps": 20,
        "warmup": 3,
        "rounds": 3,
        "repeats": 5,
        "profile_cycles": 2,
        "pairs": 256,
        "batch_size": None,
    },
    "smoke": {"steps": 2, "warmup": 1, "rounds": 1, "repeats": 1, "profile_cycles": 1, "pairs": 8, "batch_size": 4},
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.speed", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )

    def sized(flag: str, text: str) -> None:
        """An integer option whose default depends on --smoke (filled in after parsing)."""
        key = flag.removeprefix("--").replace("-", "_")
        full, smoke = SIZES["full"][key], SIZES["smoke"][key]
        parser.add_argument(flag, type=int, help=f"{text} (default: {full or 'the config'}, with --smoke: {smoke})")

    parser.add_argument("--config", type=Path, default=DEMO_CONFIG, help="SIGN config (default: the demo's)")
    parser.add_argument("--teacher", help="diffusers teacher folder (default: the config's, else random weights)")
    sized("--batch-size", "data batch size")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE", help="more config overrides")
    parser.add_argument("--options", nargs="*", choices=OPTIONS, help="options to vary (default: all)")
    parser.add_argument("--grid", action="store_true", help="every combination of --options over the defaults")
    sized("--steps", "timed generator steps per loop and round")
    sized("--warmup", "untimed first generator steps of each loop")
    sized("--rounds", "rounds; each measures every option set once, in turn")
    sized("--repeats", "timed calls per pass of the limit and per throughput, median taken")
    sized("--profile-cycles", "profiled generator cycles, 0: none")
    sized("--pairs", "L_reg's cached pairs in the timed fits (their number does not change a step)")
    parser.add_argument("--sample-batch", type=int, help="sampling and feature batch (default: the batch size)")
    parser.add_argument("--pair-count", type=int, help="teacher pairs timed (default: the batch size)")
    parser.add_argument("--extractor", help="feature extractor class path, or none (default: the config's)")
    parser.add_argument("--workdir", type=Path, default=REPO / "runs" / "speed", help="logs and teachers")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "speed", help="JSON folder")
    parser.add_argument("--smoke", action="store_true", help="tiny everything (a test of the code, not a timing)")
    args = parser.parse_args(argv)
    for key, value in SIZES["smoke" if args.smoke else "full"].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.options = list(OPTIONS) if args.options is None else args.options
    args.argv = sys.argv[1:] if argv is None else list(argv)
    return args


def build_setup(args: argparse.Namespace, device: torch.device) -> tuple[Setup, dict[str, Any]]:
    """The measurement of ``args.config`` (its teacher resolved), and the settings the results record."""
    configs = config_files(args.config)
    tree = config_tree(configs)
    teacher, teacher_kind = resolve_teacher(args.teacher, tree, args.workdir)
    overrides = [*base_overrides(tree, teacher, args.batch_size, args.pairs, device), *args.override]
    init_args = model_args(tree)
    run_batches = (init_args.get("max_generator_steps") or 1) * int(init_args.get("gen_every", 1))
    setup = Setup(
        configs, overrides, adamw_keys(tree), run_batches, device, args.workdir / args.config.stem, args.steps,
        args.warmup, args.rounds, args.repeats,
    )  # fmt: skip
    settings = {
        "config": str(args.config),
        "overrides": overrides,
        "teacher": teacher,
        "teacher_kind": teacher_kind,
        "device": device_name(device),
        "amortised_over_batches": run_batches,
        "adamw_optimizers": setup.adamws,
        **{key: getattr(args, key) for key in ("steps", "warmup", "rounds", "repeats", "argv")},
        "torch": torch.__version__,
        "lightning": L.__version__,
    }
    return setup, settings


def measure_sets(setup: Setup, names: Sequence[str], grid: bool) -> tuple[dict[str, Any], Trained]:
    """Every option set (``option_sets``), in interleaved rounds (round r measures every set once, in turn, from a
    rotating start, so that a drift of the machine spreads over all sets): the default options' results as the
    headline, with every set's and each option's effect; and what the defaults' last round left."""
    sets = option_sets(names, grid)
    rounds: list[list[Round]] = [[] for _ in sets]
    defaults: Trained | None = None
    for round_index in range(setup.rounds):
        # Each round starts at another set: a set's place in the round (later ones ran slower on a 2-core CPU, the
        # process having grown) must not bias its times.
        start = round_index * len(sets) // setup.rounds
        for index in [*range(start, len(sets)), *range(start)]:
            options = sets[index]
            measured, trained = measure_round(setup, options, round_index)
            rounds[index].append(measured)
            if options == default_options():
                defaults = trained
            # Lightning's reference cycles would keep this set's models (and their GPU memory) alive into the next.
            del trained
            gc.collect()
    results = [summarize(setup, options, measured) for options, measured in zip(sets, rounds)]
    headline = next(result for result in results if result["options"] == default_options())
    all_off = next(result for result in results if not options_key(result["options"]))
    assert defaults is not None
    return {
        **headline,
        "options_on": list(options_key(headline["options"])),
        "speedup_defaults_over_all_off": all_off["step_seconds"] / headline["step_seconds"],
        "option_effects": option_effects(results, names),
        "option_runs": results,
    }, defaults


def measure(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """Every option set, then the profile and throughput of the default options; the results and the composed
    config text they came from."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    setup, settings = build_setup(args, device)
    data, defaults = measure_sets(setup, args.options, args.grid)
    batch, precision = defaults.x.shape[0], defaults.precision
    if args.profile_cycles > 0:
        data["profile"] = profile_step(defaults.model, defaults.x, args.profile_cycles, precision, device)
    spec = extractor_spec(config_tree(setup.configs), args.extractor)
    data["throughput"] = throughput(
        defaults.model, spec, args.sample_batch or batch, args.pair_count or batch, args.repeats, precision
    )
    data["settings"] = {**settings, "precision": precision, "batch_size": batch, "gen_every": defaults.model.gen_every}
    return data, composed_config(setup.configs, setup.overrides)


def main(argv: list[str] | None = None) -> Path:
    """Measure and write the JSON; returns its path."""
    args = parse_args(argv)
    data, config_text = measure(args)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    path = args.output / results_name(args.config, device)
    write_results(path, data, config_text)
    print(
        f"[speed] wrote {path}: {data['step_seconds'] * 1e3:.1f} ms per batch, step/limit "
        f"{data['step_over_limit']:.2f}, bare/Lightning {data['bare_over_lightning']:.3f}, "
        f"{data['generator_steps_per_second']:.2f} generator steps/s"
    )
    return path


if __name__ == "__main__":
    main()
