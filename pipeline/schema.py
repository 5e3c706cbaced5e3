"""The schema of the sections that the training stages read: run, assets, tasks (pipeline/task_schema.py),
teachers, student, distill and compute (a method's own section: pipeline/methods/; analysis:
analysis/settings.py; cluster: orchestration/cluster.py). Every key is declared with its type and range; an
unknown key (a typo) is an error, so a misspelt setting can never be silently ignored.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from .params_file import (
    NAME,
    Epochs,
    InputError,
    LearningRate,
    MaxLength,
    PositiveInt,
    Seed,
    Strict,
    read,
    validate,
)
from .task_schema import TASK_SOURCES, FileTask, Task

ENCODER_ASSETS = ("mpnet", "minilm_l6", "minilm_l3")
CORPUS_ASSETS = ("rotten_tomatoes", "chatterbot", "tweets")


class Assets(Strict):
    dir: Literal["assets"] = "assets"  # dvc.yaml declares the assets stage's outputs there
    encoders: list[Literal[ENCODER_ASSETS]] = list(ENCODER_ASSETS)
    corpora: list[Literal[CORPUS_ASSETS]] = list(CORPUS_ASSETS)


class Encoder(Strict):
    """Where a classifier's encoder comes from."""

    source: Literal["asset", "path", "hub", "random"]
    name: str | None = None  # asset name, folder, or hub id; unused for `random`
    arch: str = "bert"  # `random` only: a transformers model type
    config: dict = {}  # `random` only: config overrides, e.g. hidden_size
    vocab_size: Annotated[int, Field(gt=0, le=1_000_000)] = 4000  # `random` only: WordPiece vocabulary of the task
    pooling: Literal["mean", "cls"] = "mean"
    max_length: MaxLength = 64
    # keep the pretrained word embeddings as they are: AdamW over a 30k x 384 table is most of a small
    # encoder's step on a CPU (a 1-layer MiniLM student: 0.97 s a batch of 32 trained, 0.23 s frozen)
    freeze_embeddings: bool = False

    @model_validator(mode="after")
    def _name_matches_source(self):
        if self.source != "random" and not self.name:
            raise ValueError(f"`name` is required when source is {self.source!r}")
        if self.source == "asset" and self.name not in ENCODER_ASSETS:
            raise ValueError(f"unknown asset {self.name!r}; expected one of {list(ENCODER_ASSETS)}")
        if self.freeze_embeddings and self.source == "random":
            raise ValueError(
                "freeze_embeddings: a random encoder's embeddings must train; set it only for a "
                "pretrained source (asset, path, hub)"
            )
        if self.source == "random":  # checked at the first stage, not when distill builds the student an hour later
            check_random_encoder(self.arch, self.config, self.max_length)
        return self


# models whose position ids start after the padding index, so that max_position_embeddings - (pad + 1) are usable
PADDED_POSITIONS = ("roberta", "xlm-roberta", "camembert", "mpnet")


def usable_positions(config) -> int | None:
    """How many tokens an encoder of this transformers config can take; None for relative positions (XLNet)."""
    positions = getattr(config, "max_position_embeddings", None)
    if positions is None or positions < 0:
        return None
    if config.model_type in PADDED_POSITIONS:
        positions -= (config.pad_token_id or 0) + 1
    return positions


def check_random_encoder(arch: str, config: dict, max_length: int) -> None:
    """What a model built from a config needs, without building it: a known type, finite sizes in range,
    heads that divide the hidden size, and room for max_length positions."""
    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if arch not in CONFIG_MAPPING:
        raise ValueError(
            f"arch: unknown model type {arch!r}; expected a transformers model type such as 'bert', "
            "'roberta', 'albert' or 'xlnet'"
        )
    for key, value in config.items():
        if isinstance(value, bool) or value is None or isinstance(value, str):
            continue
        if not isinstance(value, (int, float)) or value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"config: {key} must be a finite number, a string or a boolean (got {value!r})")
        if isinstance(value, int) and value > (1000 if "layer" in key else 1_000_000):  # size keys: a typo's hours
            raise ValueError(f"config: {key} = {value} is beyond any model this suite can train")
    try:
        built = AutoConfig.for_model(arch, pad_token_id=0, **config)  # [PAD] is 0 in the WordPiece of models.py
    except (ValueError, TypeError) as err:
        raise ValueError(f"config: not a valid {arch!r} config ({err})") from None
    for hidden, heads in (("hidden_size", "num_attention_heads"), ("d_model", "n_head")):
        h, n = getattr(built, hidden, None), getattr(built, heads, None)
        if isinstance(h, int) and isinstance(n, int) and n > 0 and h % n:
            raise ValueError(f"config: {hidden} {h} is not a multiple of {heads} {n}")
    positions = usable_positions(built)
    if positions is not None and max_length > positions:
        raise ValueError(
            f"max_length: {max_length} is more than the {positions} positions of the {arch} model "
            f"(config.max_position_embeddings); at most {positions}"
        )


class Training(Strict):
    max_train: PositiveInt | None = None
    epochs: Epochs = 2
    batch_size: Annotated[int, Field(gt=0, le=100_000)] = 32
    group_by_length: bool = True  # batches of similar lengths, shuffled (training.training_batches)
    # a batch's forward pass in this many length-sorted pieces, each padded to its own longest: the same
    # batch and gradient up to rounding, fewer padding tokens (training.forward); for CPUs, 1 on a GPU
    forward_pieces: Annotated[int, Field(ge=1, le=1024)] = 1
    eval_batch_size: Annotated[int, Field(gt=0, le=100_000)] = 64
    lr: LearningRate = 5e-5
    weight_decay: Annotated[float, Field(ge=0, le=10)] = 0.01
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.1
    # a hyper-parameter grid, e.g. {lr: [1e-5, 2e-5, 5e-5]}: the stage trains every point and keeps the
    # best on dev (the paper's model selection); the values above stand for the keys not in the grid
    grid: dict[str, Annotated[list, Field(min_length=1)]] = {}

    @model_validator(mode="after")
    def _grid_points_are_valid(self):
        for key in self.grid:
            # max_train: the stages sample the training rows once, before the grid
            if key not in type(self).model_fields or key in ("grid", "source", "name", "arch", "config", "max_train"):
                raise ValueError(f"grid: {key!r} is not a hyper-parameter of this section")
        self.points()  # each point must be a valid setting in its own right
        return self

    def points(self) -> list["Training"]:
        """Every setting of the grid (one, the section itself, without a grid), in a fixed order."""
        if not self.grid:
            return [self]
        keys = list(self.grid)
        base = self.model_dump(exclude={"grid"})
        out = []
        for values in itertools.product(*(self.grid[k] for k in keys)):
            point = dict(zip(keys, values))
            try:
                out.append(type(self).model_validate({**base, **point}))
            except ValidationError as err:
                raise ValueError(f"grid: the point {point} is invalid: {err.errors()[0]['msg']}") from None
        return out

    def point_label(self, full: "Training") -> dict:
        """The grid keys' values of this point (empty without a grid)."""
        return {k: getattr(self, k) for k in full.grid}


class Teacher(Encoder, Training):
    # the teacher's test accuracy (Table 1) on a seeded sample of this many test examples; null: all of them.
    # Nothing downstream reads a teacher's test predictions, and a big teacher reads a large test set slowly
    max_test: PositiveInt | None = None


class Student(Encoder):
    layers: PositiveInt | None = None  # keep the encoder's first k layers (the paper's BERT_3: 3 of BERT-Base)


class Distill(Training):
    # off unless asked for: the student's batches are part of the method under study. Batches of one length
    # weaken RL-KD's agent where length marks the kind of input (the planted `specialists` design: selection
    # gaps 0.19-0.25 against >= 0.3 with shuffled batches; docs/design.md)
    group_by_length: bool = False
    alpha: Annotated[float, Field(ge=0, le=1)] = 0.5
    temperature: Annotated[float, Field(ge=0.1, le=100)] = 5.0  # softmax(z / T) under or overflows beyond
    t2_scaling: bool = True  # multiply KD by T^2 (Hinton et al.); the paper does not say [reconstructed]
    # a seeded slice of train that no student trains on: RL-KD measures its rewards there, and every method's student
    # trains on the same rest, so that a comparison of methods is like for like (at most half of train)
    held_out_fraction: Annotated[float, Field(ge=0, le=0.5)] = 0.1


class Compute(Strict):
    """How the stages run, not what they compute (pipeline/compute.py); dvc.yaml's finetune command
    starts with `launch`: `accelerate launch -m` runs fine-tuning data parallel on the GPUs that
    `accelerate config` set up."""

    launch: Literal["python -m", "accelerate launch -m"] = "python -m"
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: a GPU if torch sees one, else the CPU
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on a GPU that has it, else fp32
    loader_workers: Annotated[int, Field(ge=0, le=256)] = 0  # processes that pad and collate batches
    # torch's CPU threads in each stage: a float sum's order, and so its last bits, depend on them; one thread gives
    # the same numbers on any machine, and `make repro` runs cluster.local_workers stages at once. null: torch's own
    threads: Annotated[int, Field(ge=1, le=1024)] | None = 1


class Run(Strict):
    # besides the keys below, run.<stage>: the rows of a stage of its own that a method declares (pipeline/methods/:
    # `Method.stage`, `run_key`), checked against the registry by methods.check_listed
    model_config = ConfigDict(**{**Strict.model_config, "extra": "allow"})

    tasks: list[str] = Field(min_length=1)
    teachers: list[str] = Field(min_length=1)
    # the stage `distill` over run.tasks x run.methods x run.seeds: a file of pipeline/methods/ each (docs/methods.md)
    methods: list[str] = []
    # the stage `single`: a student from each of these teachers alone (the methods single_<teacher>)
    single: list[str] = []
    # the stage `drop`: U-Ensemble without each of these teachers (the methods drop_<teacher>)
    drop: list[str] = []
    # the stage `agent`: the learning agents, method files or named settings of one (pipeline/methods/__init__.py)
    agents: list[str] = []
    seeds: list[Seed] = Field(default=[0], min_length=1)

    @model_validator(mode="after")
    def _stage_lists(self):
        for key, value in (self.model_extra or {}).items():
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise ValueError(f"{key}: expected a list of method names, the rows of a stage of its own")
        return self


class Params(Strict):
    """The file as the training stages read it. `methods`, `analysis` and `cluster` are checked by the code
    that reads them (pipeline/methods/, analysis/settings.py, orchestration/cluster.py), so that a change to
    their schema reruns only what reads them."""

    seed: Seed = 0
    run: Run
    assets: Assets = Assets()
    tasks: dict[str, Task]
    teachers: dict[str, Teacher]
    student: Student = Student(source="random")
    distill: Distill = Distill()
    methods: dict[str, dict | None] = {}
    analysis: dict | None = None
    compute: Compute = Compute()
    cluster: dict | None = None

    @model_validator(mode="after")
    def _names_exist(self):
        for kind in (
            "tasks",
            "teachers",
            "methods",
            "single",
            "drop",
            "agents",
            "seeds",
            *(self.run.model_extra or {}),
        ):
            values = getattr(self.run, kind)
            twice = sorted({str(v) for v in values if values.count(v) > 1})
            if twice:  # a teacher listed twice would count twice in every ensemble
                raise ValueError(f"run.{kind}: {', '.join(twice)} listed more than once")
        for kind in ("tasks", "teachers"):
            for name in getattr(self, kind):
                if not NAME.fullmatch(name):
                    raise ValueError(
                        f"{kind}: {name!r} is not a plain name (a letter, then letters, digits or _): "
                        "names become folder and DVC stage names"
                    )
        for name, task in self.tasks.items():
            if not isinstance(task, FileTask):
                continue
            path = Path(task.path)
            # dvc.yaml tracks user_data/ as prepare's dependency: a file elsewhere could change unnoticed,
            # or be anywhere
            if path.is_absolute() or ".." in path.parts or path.parts[:1] != ("user_data",) or len(path.parts) < 2:
                raise ValueError(
                    f"tasks.{name}.path: {str(path)!r} is not a file inside user_data/; put the file there "
                    "(dvc.yaml tracks that folder, so an edit to it reruns prepare)"
                )
        for kind in ("tasks", "teachers"):
            known = getattr(self, kind)
            for name in getattr(self.run, kind):
                if name not in known:
                    raise ValueError(f"run.{kind}: unknown name {name!r}; defined in {kind}: {sorted(known)}")
        for kind in ("single", "drop"):
            for name in getattr(self.run, kind):
                if name not in self.run.teachers:
                    raise ValueError(f"run.{kind}: {name!r} is not in run.teachers {self.run.teachers}")
        encoders = [(f"teachers.{n}", self.teachers[n]) for n in self.run.teachers] + [("student", self.student)]
        for key, spec in encoders:
            if spec.source == "asset" and spec.name not in self.assets.encoders:
                raise ValueError(f"{key}: asset {spec.name!r} is not in assets.encoders {self.assets.encoders}")
        for name in self.run.tasks:
            self.for_task(name)  # a task's overrides name keys of their sections, with valid values
        corpus_of = {"rotten_tomatoes": "rotten_tomatoes", "chatterbot_qa": "chatterbot", "tweets": "tweets"}
        for name in self.run.tasks:
            corpus = corpus_of.get(self.tasks[name].source)
            if corpus is not None and corpus not in self.assets.corpora:
                raise ValueError(
                    f"tasks.{name}: its corpus {corpus!r} is not in assets.corpora {self.assets.corpora}; "
                    "add it there, so that the assets stage fetches it"
                )
        return self

    def for_task(self, task: str) -> Params:
        """These params as task `task`'s stages read them: its `overrides` (tasks.TASK.overrides) put over the keys
        of teachers.NAME, student and distill that they name."""
        over = self.tasks[task].overrides if task in self.tasks else None  # an unknown task: the stage names it
        if over is None:
            return self

        def put(where: str, section: Strict, keys: dict) -> Strict:
            unknown = sorted(set(keys) - set(type(section).model_fields))
            if unknown:
                raise ValueError(f"tasks.{task}.overrides.{where}: {unknown} not keys of {where}")
            try:
                return type(section).model_validate({**section.model_dump(), **keys})
            except ValidationError as err:
                e = err.errors()[0]
                key = ".".join(map(str, e["loc"]))
                raise ValueError(f"tasks.{task}.overrides.{where}.{key}: {e['msg']} (got {e.get('input')!r})") from None

        for name in over.teachers:
            if name not in self.teachers:
                raise ValueError(f"tasks.{task}.overrides.teachers: unknown teacher {name!r}")
        teachers = {n: put(f"teachers.{n}", t, over.teachers.get(n, {})) for n, t in self.teachers.items()}
        student, distill = put("student", self.student, over.student), put("distill", self.distill, over.distill)
        return self.model_copy(update={"teachers": teachers, "student": student, "distill": distill})


# dvc.yaml tracks these sections; DVC stops at the first stage that names a missing one, which may be after an
# hour of teachers, so a missing one is refused at the start of every stage. Each method of run.methods and
# run.agents has a section under `methods` too (pipeline/methods/: `methods.check`).
DVC_SECTIONS = ("seed", "run", "tasks", "teachers", "student", "distill", "methods", "analysis", "compute")


def load(path: str | Path = "params.yaml") -> Params:
    """The sections the training stages read, validated; the others are checked where they are read."""
    raw = read(path)
    missing = [k for k in DVC_SECTIONS if k not in raw]
    if isinstance(raw.get("compute"), dict) and "launch" not in raw["compute"]:
        missing.append("compute.launch")  # dvc.yaml's finetune command starts with it
    for key in ("single", "drop", "agents"):  # dvc.yaml's stages iterate over them (`single: []` for none)
        if isinstance(raw.get("run"), dict) and key not in raw["run"]:
            missing.append(f"run.{key}")
    if missing:
        raise InputError(
            f"{path}: missing section(s) {missing}; dvc.yaml tracks them (write e.g. `analysis: {{}}` "
            f"for a section's defaults, and `compute: {{launch: python -m}}`)"
        )
    return validate(Params, raw, path, tags=TASK_SOURCES)
