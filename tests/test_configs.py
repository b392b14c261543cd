"""The shipped configs: each experiment in configs/, given alone to ``--config``, brings the layers its ``# bases:``
line names, parses and builds its model and data classes; and the composition rules the layering relies on. (That
each layered experiment composed to exactly the flat file it replaced was tested at the commit that introduced the
layers, 636faad.)"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from signs_lightning.run.cli import cli_main, main
from signs_lightning.run.config_layers import composed, config_files, layer_names, with_bases

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted((ROOT / "configs").glob("*.yaml"))
LAYERS = sorted((ROOT / "configs").glob("*/*.yaml"))


def config_args(config: Path) -> list[str]:
    """The experiment alone: its layers come with it."""
    return ["--config", str(config)]


def explicit_args(config: Path) -> list[str]:
    """Each file the experiment composes as its own --config, in order (the form before '# bases:' was read)."""
    return [item for path in config_files(config) for item in ("--config", str(path))]


def printed_config(args: list[str]) -> dict:
    """``signs fit ARGS --print_config``, read back: the config as composed, every default filled in."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *args, "--print_config"])
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(out.getvalue())


def test_configs_exist() -> None:
    assert {p.name for p in EXPERIMENTS} >= {
        "teacher_mnist.yaml",
        "sign_mnist.yaml",
        "ign_mnist.yaml",
        "sign_cifar10.yaml",
        "sign_cifar10_dmd.yaml",
        "sign_cifar10_all_terms.yaml",
        "teacher_celeba64.yaml",
        "sign_celeba64.yaml",
        "sign_celeba64_dmd.yaml",
        "sign_mnist_dmd.yaml",
    }
    # Every layer is used. An experiment may also build on another (a second training stage over its first),
    # given after that experiment's own layers.
    used = {path.resolve() for config in EXPERIMENTS for path in config_files(config)[:-1]}
    assert used >= {path.resolve() for path in LAYERS}
    assert used <= {path.resolve() for path in [*LAYERS, *EXPERIMENTS]}
    for config in EXPERIMENTS:
        files = [path.resolve() for path in config_files(config)]
        for index, path in enumerate(files[:-1]):
            if path.parent == (ROOT / "configs").resolve():  # an experiment as a base: its layers come before it
                assert files[:index] == [p.resolve() for p in config_files(path)[:-1]], config.name


@pytest.mark.parametrize("config", EXPERIMENTS, ids=lambda p: p.name)
def test_header_gives_the_one_command_and_names_the_layers_once(config: Path) -> None:
    """An experiment's header holds ``signs fit --config configs/X.yaml`` (its layers come with it): its layers are
    listed on the ``# bases:`` line only."""
    assert layer_names(config), f"{config.name} has no '# bases:' line"
    header = [line for line in config.read_text().splitlines() if line.startswith("#")]
    commands = re.findall(r"\bsigns (?:fit|validate|test|predict)\b[^\n]*", "\n".join(header))
    assert commands, f"{config.name}: no signs command in the header"
    for command in commands:
        assert re.findall(r"--config (\S+)", command) == [f"configs/{config.name}"], command
    given = re.findall(r"--config[ =](\S+)", config.read_text())
    assert given == [f"configs/{config.name}"] * len(commands), f"{config.name}: a layer given with --config"


@pytest.mark.parametrize("config", EXPERIMENTS, ids=lambda p: p.name)
def test_an_experiment_alone_composes_as_its_layers_given_explicitly(config: Path) -> None:
    assert len(config_files(config)) > 2  # a trainer and a data layer at least
    assert printed_config(config_args(config)) == printed_config(explicit_args(config))


def test_bases_come_first_recursively_each_once_and_given_layers_are_not_added_again(tmp_path) -> None:
    configs = ROOT / "configs"
    cpu, mnist, sign, dmd = (
        str(configs / name)
        for name in ("trainer/cpu.yaml", "data/mnist16.yaml", "sign_mnist.yaml", "sign_mnist_dmd.yaml")
    )
    # sign_mnist_dmd.yaml names sign_mnist.yaml, which names the trainer and data layers.
    assert [str(path) for path in config_files(dmd)] == [cpu, mnist, sign, dmd]
    assert with_bases(["fit", "-c", dmd, "--trainer.max_steps", "3"]) == [
        "fit", "-c", cpu, "-c", mnist, "-c", sign, "-c", dmd, "--trainer.max_steps", "3"
    ]  # fmt: skip
    # A layer given explicitly before its experiment is not given again (the four-flag form composes as before).
    explicit = ["fit", "--config", cpu, "--config=" + mnist, "--config", sign, "--config", dmd]
    assert with_bases(explicit) == ["fit", "--config", cpu, "--config", mnist, "--config", sign, "--config", dmd]
    assert composed([cpu, sign]) == [cpu, mnist, sign]
    # One given after its experiment is loaded there too: later files win, as do later flags.
    assert composed([sign, cpu]) == [cpu, mnist, sign, cpu]
    yaml_string = '{"trainer": {"max_steps": 1}}'  # --config also takes a YAML string
    full = write(tmp_path, "config.yaml", "trainer:\n  max_steps: 1\n")  # no '# bases:' (a run's config.yaml)
    assert composed([yaml_string, full]) == [yaml_string, full]


def test_an_explicit_layer_is_not_doubled_and_later_flags_win() -> None:
    configs = ROOT / "configs"
    given = ["--config", str(configs / "trainer" / "cpu.yaml"), "--config", str(configs / "sign_mnist.yaml")]
    printed = printed_config([*given, "--trainer.val_check_interval", "7"])
    assert printed["trainer"]["val_check_interval"] == 7
    assert printed["trainer"]["limit_val_batches"] == 2  # the trainer layer's
    assert printed["data"]["class_path"] == "signs_lightning.data.EmbeddedMNISTDataModule"  # the data layer's
    assert printed == printed_config([*config_args(configs / "sign_mnist.yaml"), "--trainer.val_check_interval", "7"])


def test_command_line_overrides_win() -> None:
    printed = printed_config(
        [
            *config_args(ROOT / "configs" / "sign_mnist.yaml"),
            "--model.init_args.reg.init_args.pairs",
            "7",
            "--data.init_args.batch_size",
            "7",
        ]
    )
    assert printed["model"]["init_args"]["reg"]["init_args"]["pairs"] == 7
    # The config's other L_reg settings survive the override of one of them.
    assert printed["model"]["init_args"]["reg"]["init_args"]["trajectory_fraction"] == 0.5
    assert printed["data"]["init_args"]["batch_size"] == 7
    assert printed["data"]["init_args"]["image_size"] == 16  # from the data layer


# Each second stage (init_from) and the first stage it builds on: the experiment on its '# bases:' line.
SECOND_STAGES = {
    "sign_mnist_dmd.yaml": "sign_mnist.yaml",
    "sign_cifar10_dmd.yaml": "sign_cifar10.yaml",
    "sign_celeba64_dmd.yaml": "sign_celeba64.yaml",
}
# Short stages after the second, from its last checkpoint.
THIRD_STAGES = {"sign_mnist_data.yaml": "sign_mnist_dmd.yaml"}


def test_the_second_stages_are_the_experiments_that_start_from_a_checkpoint() -> None:
    for config in EXPERIMENTS:
        init_args = (yaml.safe_load(config.read_text()).get("model") or {}).get("init_args") or {}
        assert ("init_from" in init_args) == (config.name in SECOND_STAGES | THIRD_STAGES), config.name
    for second, first in SECOND_STAGES.items():
        assert first in layer_names(ROOT / "configs" / second), second


@pytest.mark.parametrize(("second", "first"), SECOND_STAGES.items(), ids=list(SECOND_STAGES))
def test_a_second_stage_starts_from_its_first_stage_default_checkpoint(second: str, first: str) -> None:
    """The chain cannot drift: stage 2's init_from is where stage 1, run as shipped, leaves its last checkpoint
    (ModelCheckpoint with no dirpath: ``<default_root_dir>/checkpoints/last.ckpt``), and stage 2 writes elsewhere
    (its ``--ckpt_path last`` must not resume stage 1)."""
    stage1 = printed_config(config_args(ROOT / "configs" / first))
    stage2 = printed_config(config_args(ROOT / "configs" / second))
    [checkpointing] = [c for c in stage1["trainer"]["callbacks"] if c["class_path"].endswith(".ModelCheckpoint")]
    assert checkpointing["init_args"]["save_last"] and checkpointing["init_args"].get("dirpath") is None
    root = stage1["trainer"]["default_root_dir"]
    assert stage2["model"]["init_args"]["init_from"] == f"{root}/checkpoints/last.ckpt"
    assert stage2["trainer"]["default_root_dir"] != root
    # Stage 2 is stage 1 plus L_dmd and its 5:1 schedule: the same teacher, data and stage-1 terms.
    assert stage2["model"]["init_args"]["teacher"] == stage1["model"]["init_args"]["teacher"]
    assert stage2["data"] == stage1["data"]
    assert stage1["model"]["init_args"]["dmd"] is None and stage2["model"]["init_args"]["dmd"] is not None
    assert stage2["model"]["init_args"]["dmd"]["init_args"]["t_max"] == 0.5
    assert stage2["model"]["init_args"]["gen_every"] == 5
    for term in ("rec", "idem", "flow", "reg"):
        assert stage2["model"]["init_args"][term] == stage1["model"]["init_args"][term], term


@pytest.mark.parametrize(("third", "second"), THIRD_STAGES.items(), ids=list(THIRD_STAGES))
def test_a_third_stage_starts_from_its_second_stage_default_checkpoint(third: str, second: str) -> None:
    stage2 = printed_config(config_args(ROOT / "configs" / second))
    stage3 = printed_config(config_args(ROOT / "configs" / third))
    root = stage2["trainer"]["default_root_dir"]
    assert stage3["model"]["init_args"]["init_from"] == f"{root}/checkpoints/last.ckpt"
    assert stage3["trainer"]["default_root_dir"] != root and stage3["data"] == stage2["data"]
    assert [term["class_path"] for term in stage3["model"]["init_args"]["extra_losses"]] == [
        "signs_lightning.losses.DataRegression"
    ]
    for term in ("rec", "idem", "flow", "reg", "dmd"):
        assert stage3["model"]["init_args"][term] == stage2["model"]["init_args"][term], term


def chain_commands(text: str) -> list[str]:
    """The commands that submit stage 1 and, after it, stage 2 (``--dependency=afterok``), each on one line: a
    comment's leading '#' dropped, backslash-continued lines joined."""
    lines = re.sub(r"\s*\\\n\s*", " ", re.sub(r"(?m)^#\s*", "", text)).splitlines()
    return [line.strip() for line in lines if "--dependency=afterok" in line]


CHAIN = re.compile(
    r"jid=\$\(sbatch --parsable scripts/slurm/(\S+\.sbatch) configs/(\S+)\.yaml\) && "
    r"sbatch --dependency=afterok:\$jid scripts/slurm/(\S+\.sbatch) configs/(\S+)\.yaml "
    r"--model\.init_args\.init_from runs/(\S+)-\$jid/checkpoints/last\.ckpt"
)


def test_the_documented_slurm_chain_points_stage_2_at_stage_1s_job_folder() -> None:
    """The sbatch templates name a job's folder runs/<last config's name>-<job id>: the chain command in the docs
    and the templates' headers gives stage 2 that folder's last.ckpt, for a shipped stage 1 / stage 2 pair."""
    templates = sorted((ROOT / "scripts" / "slurm").glob("*.sbatch"))
    for template in templates:
        assert 'RUN_DIR=${RUN_DIR:-runs/$(basename "$CONFIG" .yaml)-$SLURM_JOB_ID}' in template.read_text()
    for document in [ROOT / "docs" / "cluster.md", ROOT / "README.md", *templates]:
        commands = chain_commands(document.read_text())
        assert commands, f"{document.name}: no chain command"
        for command in commands:
            match = CHAIN.fullmatch(command)
            assert match, f"{document.name}: {command}"
            template, first, template_again, second, folder = match.groups()
            assert SECOND_STAGES.get(f"{second}.yaml") == f"{first}.yaml" and folder == first, command
            assert template == template_again and (ROOT / "scripts" / "slurm" / template).is_file(), command
            if document.suffix == ".sbatch":
                assert template == document.name, command


SBATCH_TEMPLATES = sorted((ROOT / "scripts" / "slurm").glob("*.sbatch"))
CACHE_EXPORT = re.compile(r"^export SIGNS_CACHE=\$\{SIGNS_CACHE:-.+\}$", re.MULTILINE)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_every_sbatch_template_sets_signs_cache() -> None:
    """Each template exports SIGNS_CACHE before srun: on $SCRATCH when there is one (shared by every rank and node,
    off $HOME's quota), a caller's SIGNS_CACHE kept."""
    assert SBATCH_TEMPLATES
    for template in SBATCH_TEMPLATES:
        text = template.read_text()
        exports = CACHE_EXPORT.findall(text)
        assert len(exports) == 1 and text.index(exports[0]) < text.index("srun signs fit"), template.name
        cases = [
            ({"HOME": "/home/u", "SCRATCH": "/scratch/u"}, "/scratch/u/.cache/signs_lightning"),
            ({"HOME": "/home/u"}, "/home/u/.cache/signs_lightning"),
            ({"HOME": "/home/u", "SCRATCH": "/scratch/u", "SIGNS_CACHE": "/mine"}, "/mine"),
        ]
        for env, expected in cases:
            done = subprocess.run(
                ["bash", "-c", f'set -euo pipefail; {exports[0]}; printf %s "$SIGNS_CACHE"'],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert (done.returncode, done.stdout) == (0, expected), (template.name, env, done.stderr)


def test_sbatch_commands_in_the_docs_requeue_and_share_the_cache_like_the_templates() -> None:
    """A raw ``sbatch --wrap`` in the docs asks for what the templates ask for: SIGUSR1 before the limit, requeue,
    an appended log, ``--ckpt_path last``, and SIGNS_CACHE on shared scratch."""
    wanted = ["--signal=SIGUSR1@90", "--requeue", "--open-mode=append", "--ckpt_path last", "SIGNS_CACHE="]
    for template in SBATCH_TEMPLATES:
        text = template.read_text()
        assert all(flag in text for flag in wanted[:3]), template.name
    commands = [
        (document.name, line)
        for document in sorted((ROOT / "docs").glob("*.md"))
        for line in document.read_text().replace("\\\n", " ").splitlines()
        if "sbatch " in line and "--wrap" in line
    ]
    assert commands
    for name, command in commands:
        assert all(flag in command for flag in wanted), (name, command)


@pytest.mark.parametrize("name", ["sign_mnist.yaml", "ign_mnist.yaml"])
def test_mnist_configs_build_with_a_local_teacher(name, tiny_teacher_dir, tmp_path) -> None:
    """Instantiate (not run) model and data from the config, the teacher replaced by a tiny local folder."""
    cli = cli_main(
        [
            *config_args(ROOT / "configs" / name),
            "--model.init_args.teacher",
            str(tiny_teacher_dir),
            "--data.init_args.image_size",
            "8",
            "--trainer.default_root_dir",
            str(tmp_path),
        ],
        run=False,
    )
    assert cli.model.image_shape == (1, 8, 8)
    assert cli.datamodule.image_size == 8


# ------------------------------------------------------------------------------------------ composition rules


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


BASE = """
trainer:
  max_steps: 10
  precision: 32-true
  callbacks:
    - class_path: signs_lightning.run.callbacks.ModelCheckpoint
      init_args: {save_last: true, every_n_train_steps: 500}
    - class_path: lightning.pytorch.callbacks.LearningRateMonitor
      init_args: {logging_interval: step}
model:
  class_path: signs_lightning.modules.SIGNModule
  init_args:
    teacher: base_teacher
    gen_every: 5
    generator_optimizer:
      class_path: torch.optim.AdamW
      init_args: {lr: 5.0e-05, weight_decay: 0.0}
data:
  class_path: signs_lightning.data.EmbeddedMNISTDataModule
  init_args: {image_size: 8, batch_size: 4}
"""


def test_a_later_config_overrides_an_earlier_one_key_by_key(tmp_path) -> None:
    """What the layers rely on: a later --config file changes only the keys it gives. Subclass blocks (class_path /
    init_args) merge their init_args when the later file repeats the class_path or gives none, nested blocks too."""
    base = write(tmp_path, "base.yaml", BASE)
    over = write(
        tmp_path,
        "over.yaml",
        """
trainer:
  max_steps: 20
model:
  class_path: signs_lightning.modules.SIGNModule
  init_args:
    teacher: other_teacher
    generator_optimizer:
      init_args: {lr: 2.0e-05}
data:
  init_args: {batch_size: 64}
""",
    )
    printed = printed_config(["--config", base, "--config", over])
    assert printed["trainer"]["max_steps"] == 20 and printed["trainer"]["precision"] == "32-true"
    model = printed["model"]["init_args"]
    assert (model["teacher"], model["gen_every"]) == ("other_teacher", 5)
    assert model["generator_optimizer"]["class_path"] == "torch.optim.AdamW"
    assert model["generator_optimizer"]["init_args"]["lr"] == 2e-5
    assert model["generator_optimizer"]["init_args"]["weight_decay"] == 0.0
    assert printed["data"]["class_path"] == "signs_lightning.data.EmbeddedMNISTDataModule"
    assert printed["data"]["init_args"] == {**printed["data"]["init_args"], "image_size": 8, "batch_size": 64}


def test_how_a_later_config_changes_a_list_of_callbacks(tmp_path) -> None:
    """A list of the same length merges item by item (an item's unnamed init_args are kept); a list of another
    length replaces the earlier one; null removes it. To change a layer's callbacks, give the whole list."""
    base = write(tmp_path, "base.yaml", BASE)
    same_length = write(
        tmp_path,
        "same.yaml",
        """
trainer:
  callbacks:
    - class_path: signs_lightning.run.callbacks.ModelCheckpoint
      init_args: {every_n_train_steps: 20000}
    - class_path: lightning.pytorch.callbacks.LearningRateMonitor
""",
    )
    shorter = write(
        tmp_path,
        "shorter.yaml",
        """
trainer:
  callbacks:
    - class_path: signs_lightning.run.callbacks.ModelCheckpoint
      init_args: {every_n_train_steps: 20000}
""",
    )
    none = write(tmp_path, "none.yaml", "trainer:\n  callbacks: null\n")

    def callbacks(*files: str) -> list[tuple[str, dict]]:
        printed = printed_config([item for path in files for item in ("--config", path)])["trainer"]["callbacks"]
        return [(c["class_path"].rsplit(".", 1)[1], c["init_args"]) for c in printed or []]

    (checkpoint, saves), (monitor, logs) = callbacks(base, same_length)
    assert (checkpoint, saves["save_last"], saves["every_n_train_steps"]) == ("ModelCheckpoint", True, 20000)
    assert (monitor, logs["logging_interval"]) == ("LearningRateMonitor", "step")
    [(checkpoint, saves)] = callbacks(base, shorter)
    assert (saves["save_last"], saves["every_n_train_steps"]) == (None, 20000)
    assert callbacks(base, none) == []


def test_another_class_path_drops_the_init_args_it_does_not_take(tmp_path) -> None:
    base = write(tmp_path, "base.yaml", BASE)
    teacher = write(
        tmp_path, "teacher.yaml", "model:\n  class_path: signs_lightning.modules.TeacherModule\n  init_args: {}\n"
    )
    printed = printed_config(["--config", base, "--config", teacher])
    assert printed["model"]["class_path"] == "signs_lightning.modules.TeacherModule"
    assert "teacher" not in printed["model"]["init_args"] and "gen_every" not in printed["model"]["init_args"]


# ------------------------------------------------------------------------------- a missing layer


def test_a_missing_base_is_a_one_line_error_naming_the_file_and_line(tmp_path, capsys) -> None:
    config = write(
        tmp_path, "experiment.yaml", "# An experiment.\n# bases: trainer/gone.yaml\ntrainer:\n  max_steps: 1\n"
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", config, "--print_config"])
    assert exit_info.value.code == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert f"{config}, line 2: its '# bases:' line names trainer/gone.yaml, but {tmp_path}/trainer/gone.yaml" in line
    assert "correct the name" in line


# ------------------------------------------------------------------------------- the docs name the configs as they are
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A config file named in prose: configs/X.yaml, model/X.yaml or a bare X.yaml (not LightningCLI's config.yaml, not a
# glob such as sign_mnist*.yaml or *_dmd.yaml, not a path inside a run folder).
CONFIG_NAME = re.compile(r"(?<![\w/.*<>-])((?:configs/)?(?:[a-z0-9_]+/)?[a-z0-9_]+\.yaml)(?![\w*])")


def table_rows(text: str, first_cell: str) -> list[list[str]]:
    """The cells of the Markdown table rows whose first cell starts with ``first_cell``."""
    rows = [line.strip().strip("|").split("|") for line in text.splitlines() if line.startswith(f"| {first_cell}")]
    return [[cell.strip() for cell in row] for row in rows]


def test_the_readme_lists_every_experiment_with_its_bases() -> None:
    """README's experiment table: one row per configs/*.yaml, its layers column as the '# bases:' line names them
    (without .yaml; a note in parentheses after them)."""
    rows = {
        row[0].strip("`"): row[1]
        for row in table_rows((ROOT / "README.md").read_text(), "`configs/")
        if row[0].count("/") == 1
    }
    assert sorted(rows) == [f"configs/{config.name}" for config in EXPERIMENTS]
    for config in EXPERIMENTS:
        written = re.sub(r"\(.*\)", "", rows[f"configs/{config.name}"]).strip()
        assert written.split(", ") == [name.removesuffix(".yaml") for name in layer_names(config)], config.name


def test_the_readme_lists_every_layer() -> None:
    """README's layer table: every configs/<kind>/*.yaml (a row may list several of one kind, the later ones by
    name only)."""
    listed = set()
    for row in table_rows((ROOT / "README.md").read_text(), "`configs/"):
        names = re.findall(r"`([^`]+\.yaml)`", row[0])
        if names[0].count("/") != 2:
            continue  # an experiment
        kind = names[0].rsplit("/", 1)[0]
        listed |= {name if name.startswith("configs/") else f"{kind}/{name}" for name in names}
    assert listed == {str(layer.relative_to(ROOT)) for layer in LAYERS}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_config_the_docs_name_exists(doc: Path) -> None:
    for name in set(CONFIG_NAME.findall(doc.read_text())) - {"config.yaml"}:
        if name.startswith("configs/"):
            assert (ROOT / name).is_file(), f"{doc.name} names {name}"
        else:
            found = [ROOT / "configs" / name, *(ROOT / "configs").glob(f"*/{name}")]
            assert any(path.is_file() for path in found), f"{doc.name} names {name}, which configs/ does not hold"


def test_the_demo_help_states_the_default_configs_step_counts() -> None:
    """``signs demo --help`` says '(teacher_mnist.yaml: 2500)' and the like: the numbers are the configs'."""
    from signs_lightning.commands.demo import build_parser

    keys = {
        "teacher_steps": ("trainer", "max_steps"),
        "student_steps": ("model", "init_args", "max_generator_steps"),
        "dmd_steps": ("model", "init_args", "max_generator_steps"),
    }
    for action in build_parser()._actions:
        if action.dest not in keys:
            continue
        name, value = re.search(r"\(([a-z0-9_]+\.yaml): (\d+)\)", action.help).groups()
        printed = printed_config(config_args(ROOT / "configs" / name))
        for key in keys[action.dest]:
            printed = printed[key]
        assert printed == int(value), f"--{action.dest}: {action.help}"


def test_the_documented_multistep_levels_are_the_configs() -> None:
    """The levels and re-noising rules the README's Python example and docs/using.md's printed line state for the
    MNIST configs' models and for SIGNModule's defaults."""
    import inspect
    from types import SimpleNamespace

    from signs_lightning.commands.sample import describe
    from signs_lightning.diffusion.schedule import NoiseSchedule
    from signs_lightning.inference import sampling
    from signs_lightning.modules.common import GeneratorModule

    schedule = NoiseSchedule.from_scheduler_config({"num_train_timesteps": 1000})  # every MNIST teacher's T

    def sampler(settings: dict) -> SimpleNamespace:
        levels = lambda nfe: sampling.renoise_timesteps(  # noqa: E731
            schedule, nfe, settings["renoise_max_level"], settings["renoise_spacing"]
        )
        return SimpleNamespace(
            renoise_noise=settings["renoise_noise"], renoise_eta=settings["renoise_eta"], renoise_timesteps=levels
        )

    defaults = {
        key: parameter.default
        for key, parameter in inspect.signature(GeneratorModule.__init__).parameters.items()
        if key.startswith("renoise_")
    }
    models = {"SIGNModule's defaults": sampler(defaults)}
    for name in ("sign_mnist.yaml", "sign_mnist_dmd.yaml"):
        models[f"{name}'s"] = sampler(printed_config(config_args(ROOT / "configs" / name))["model"]["init_args"])
    readme = (ROOT / "README.md").read_text()
    stated = re.findall(r"([\w.']+(?: defaults)?)(?: model)?: (\[[\d, ]+\]) (fresh|initial|path) ([\d.]+)", readme)
    assert {label for label, *_ in stated} == set(models)
    for label, levels, noise, eta in stated:
        model = models[label]
        assert (str(model.renoise_timesteps(4)), model.renoise_noise, float(model.renoise_eta)) == (
            levels,
            noise,
            float(eta),
        ), label
    using = (ROOT / "docs" / "using.md").read_text()
    stage_1, stage_2, module = (
        models[label] for label in ("sign_mnist.yaml's", "sign_mnist_dmd.yaml's", "SIGNModule's defaults")
    )
    assert f"signs sample: 16 images, {describe(stage_1, 4, False)}, seed 0" in using
    for model in (module, stage_2):
        assert f"`{describe(model, 4, False).removeprefix('4 NFE (').removesuffix(')')}`" in using
