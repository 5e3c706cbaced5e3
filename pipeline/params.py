"""The schema of params.yaml, validated once at the start of every stage.

Every key is declared here with its type and range; an unknown key (a typo) is an error, so a
misspelt setting can never be silently ignored.
"""

from __future__ import annotations

import codecs
import difflib
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.nodes import MappingNode, SequenceNode

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]
# bounds past which a value only burns hours or overflows: an epoch count of a million is a typo, not a plan
Epochs = Annotated[int, Field(gt=0, le=1000)]
LearningRate = Annotated[float, Field(gt=0, le=1)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]  # numpy's and torch's seed range
MaxLength = Annotated[int, Field(ge=8, le=100_000)]  # [CLS] a [SEP] b [SEP] and a few words; checked against the model
# task and teacher names become folder names and DVC stage names (`finetune@TASK-TEACHER`): plain identifiers only
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

ENCODER_ASSETS = ("mpnet", "minilm_l6", "minilm_l3")
CORPUS_ASSETS = ("rotten_tomatoes", "chatterbot", "tweets")


class InputError(Exception):
    """Bad input from the user: reported as one clear line, never as a traceback."""


class Strict(BaseModel):
    # strict: YAML's `true` is no integer and 3.0 no epoch count; no inf or nan, which only make NaN losses
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Assets(Strict):
    dir: Literal["assets"] = "assets"  # dvc.yaml declares the assets stage's outputs there
    encoders: list[Literal[ENCODER_ASSETS]] = list(ENCODER_ASSETS)
    corpora: list[Literal[CORPUS_ASSETS]] = list(CORPUS_ASSETS)


class Caps(Strict):
    max_train: PositiveInt | None = None
    max_dev: PositiveInt | None = None
    max_test: PositiveInt | None = None


class RottenTomatoes(Caps):
    source: Literal["rotten_tomatoes"]
    dev_fraction: Fraction = 0.1
    test_fraction: Fraction = 0.15


class Tweets(Caps):
    """CrowdFlower tweet sentiment (negative, neutral, positive). A large test set by default: its thousands
    of examples give the comparison of methods statistical power."""

    source: Literal["tweets"]
    dev_fraction: Fraction = 0.1
    test_fraction: Fraction = 0.5


class ChatterbotQA(Caps):
    source: Literal["chatterbot_qa"]
    dev_fraction: Fraction = 0.15
    test_fraction: Fraction = 0.2


class FileTask(Caps):
    """A user's own labelled file (CSV, JSON Lines or Parquet), split here."""

    source: Literal["file"]
    path: str
    text_a: str
    text_b: str | None = None
    label: str
    labels: list[str] = Field(min_length=2)
    group: str | None = None  # rows sharing a group never straddle two splits
    encoding: str = "utf-8"  # of a CSV or JSON Lines file, e.g. latin-1 or cp1252 (Parquet text is always UTF-8)
    dev_fraction: Fraction = 0.1
    test_fraction: Fraction = 0.1

    @field_validator("encoding")
    @classmethod
    def _encoding_is_known(cls, name: str) -> str:
        try:
            codecs.lookup(name)
        except LookupError:
            raise ValueError(
                f"unknown encoding {name!r}; expected a Python codec name such as 'utf-8', 'latin-1' or 'cp1252'"
            ) from None
        return name

    @model_validator(mode="after")
    def _checked(self):
        if len(set(self.labels)) < len(self.labels):
            raise ValueError(f"labels: {self.labels} names a label twice; each class once, in the order of its index")
        return self


class GlueTask(Caps):
    """Paper profile: a GLUE task via `datasets`; GLUE's validation set serves as our test set. `mnli` trains
    once and is tested on both MNLI validation sets (reported as mnli_m and mnli_mm)."""

    source: Literal["glue"]
    name: Literal["sst2", "mrpc", "qqp", "mnli", "mnli_matched", "mnli_mismatched", "qnli", "rte"]
    dev_fraction: Fraction = 0.1


Task = Annotated[Union[RottenTomatoes, Tweets, ChatterbotQA, FileTask, GlueTask], Field(discriminator="source")]


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
        import itertools

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
    fixed_weights: dict[str, Annotated[float, Field(ge=0, le=1e6)]] | None = None  # w_ensemble; default: dev accuracy
    # ae_kd: the cap C on each teacher's weight, from 1 / K (equal weights) to 1 (plain min-norm); the authors' 0.6
    ae_kd_tolerance: Annotated[float, Field(gt=0, le=1)] = 0.6
    mtkd_rl_lr: Annotated[float, Field(gt=0, le=10)] = 0.1  # mtkd_rl: the agent's SGD learning rate, the authors' 0.1


SCALAR_REWARDS = ("held_out_accuracy", "neg_ce", "neg_ce_kd")  # the paper's: one value per batch
TEACHER_REWARDS = ("held_out_effect", "gradient_alignment")  # one value per instance and teacher


class RL(Strict):
    """RL-KD's agent (pipeline/agent.py); docs/rl-kd.md's fidelity table says what the paper says of each."""

    # the default goes beyond the paper: its own rewards are noisier (docs/rl-kd.md)
    reward: Literal[
        "held_out_effect", "gradient_alignment", "held_out_accuracy", "neg_ce", "neg_ce_kd", "instance_ce_delta"
    ] = "held_out_effect"
    state: list[Literal["pooled", "probs", "ce", "length", "teacher", "student_probs", "student_ce"]] = Field(
        default=["probs", "ce"], min_length=1
    )
    policy: Literal["shared", "per_teacher"] = "shared"
    # an instance with no teacher selected: equal weights ([reconstructed] paper: CE alone, `ce`; docs/rl-kd.md)
    no_teacher: Literal["equal", "ce"] = "equal"
    weights: Literal["hard", "soft"] = "hard"  # soft is refused below; kept so that its error explains why
    policy_lr: Annotated[float, Field(gt=0, le=10)] = 0.05
    policy_batches: Annotated[int, Field(ge=1, le=1000)] = 1  # student batches per policy update
    scalar_reward: Literal["after", "gain"] = "after"  # the paper's rewards: after the update, or after - before
    baseline_momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9  # scalar and per-instance rewards only
    entropy: Annotated[float, Field(ge=0, le=100)] = 0.0
    warmup_epochs: Annotated[int, Field(ge=0, le=1000)] = 1
    pretrain_epochs: Annotated[int, Field(ge=0, le=100)] = 3
    # every reward but instance_ce_delta: the part of train the student never trains on, for the reward's batches
    held_out_fraction: Annotated[float, Field(gt=0, le=0.5)] = 0.1  # the student keeps at least half of train

    @model_validator(mode="after")
    def _workable(self):
        if self.weights == "soft":
            raise ValueError(
                "weights: soft makes the student learn from the selection probabilities, so neither "
                "its update nor any reward depends on the sampled selections and the policy gradient "
                "is zero in expectation; use hard"
            )
        unused = {
            "baseline_momentum": self.reward in TEACHER_REWARDS,
            "scalar_reward": self.reward not in SCALAR_REWARDS,
            "held_out_fraction": self.reward == "instance_ce_delta",
        }
        for key in sorted(self.model_fields_set):
            if unused.get(key):
                raise ValueError(
                    f"{key} is not used by reward {self.reward} (docs/rl-kd.md says which reward uses it); remove it"
                )
        return self


class Analysis(Strict):
    """The analyze stage's statistics: RL-KD (`reference`) against every other method."""

    reference: str = "rl_kd"
    # the primary comparison, declared up front: reference against baseline (the paper's main baseline), per
    # task, at the full significance level; every other comparison is secondary (one Holm family per task)
    baseline: str = "u_ensemble"
    power: Annotated[float, Field(gt=0.5, lt=1)] = 0.8  # the power at which the smallest detectable difference is given
    gap: Annotated[float, Field(gt=0, le=100)] = 1.0  # points: the difference the report asks the power to see
    bootstrap: Annotated[int, Field(ge=100, le=1_000_000)] = 10_000
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    significance: Annotated[float, Field(gt=0, lt=0.5)] = 0.05  # after Holm correction
    wilcoxon_min_seeds: Annotated[int, Field(ge=2, le=1000)] = 6


class Compute(Strict):
    """How the stages run, not what they compute (pipeline/compute.py); dvc.yaml's finetune command
    starts with `launch`: `accelerate launch -m` runs fine-tuning data parallel on the GPUs that
    `accelerate config` set up."""

    launch: Literal["python -m", "accelerate launch -m"] = "python -m"
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: a GPU if torch sees one, else the CPU
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on a GPU that has it, else fp32
    loader_workers: Annotated[int, Field(ge=0, le=256)] = 0  # processes that pad and collate batches


class ClusterJob(Strict):
    """One stage kind's resources on the cluster: submitit's shared parameters (SLURM's --gpus-per-node,
    --cpus-per-task, --mem, --time)."""

    gpus: Annotated[int, Field(ge=0, le=64)] = 0
    cpus: Annotated[int, Field(ge=1, le=1024)] = 4
    mem_gb: Annotated[float, Field(gt=0, le=100_000)] = 16
    timeout_min: Annotated[int, Field(ge=1, le=60 * 24 * 30)] = 60


CLUSTER_KINDS = ("prepare", "finetune", "cache", "latency", "distill", "rl_kd", "analyze")


class Cluster(Strict):
    """How `python -m pipeline.cluster` submits the stages (docs/cluster.md); no stage reads it, so
    dvc.yaml does not track it."""

    folder: str = ".dvc/tmp/cluster"  # the snapshot, the jobs' workspaces and logs: on a filesystem every node sees
    partition: str | None = None  # SLURM's --partition; None: the cluster's default
    account: str | None = None  # SLURM's --account
    setup: list[str] = []  # shell lines each SLURM job runs first, e.g. `module load cuda`, `source .venv/bin/activate`
    array_parallelism: Annotated[int, Field(ge=1, le=100_000)] = 64  # jobs of one array running at once
    retries: Annotated[int, Field(ge=0, le=10)] = 2  # resubmissions of a wave's failed jobs
    local_workers: Annotated[int, Field(ge=1, le=256)] = 2  # `--executor local`: jobs at once on this machine
    jobs: dict[Literal[CLUSTER_KINDS], ClusterJob] = Field(
        {}, validate_default=True
    )  # per stage kind; a kind left out gets ClusterJob()

    @field_validator("jobs")
    @classmethod
    def _every_kind(cls, jobs: dict) -> dict:
        return {k: jobs.get(k, ClusterJob()) for k in CLUSTER_KINDS}


METHODS = (
    "ce",
    "u_ensemble",
    "w_ensemble",
    "rand_single",
    "lr_ensemble",
    "best_single",
    "ca_mkd",
    "ae_kd",
    "mtkd_rl",
    "rl_kd",
)
MANY_TEACHERS = ("ca_mkd", "mtkd_rl")  # their weights divide by K - 1


def allowed_methods(teachers: list[str]) -> list[str]:
    return list(METHODS) + [f"single_{t}" for t in teachers]


class Run(Strict):
    tasks: list[str] = Field(min_length=1)
    teachers: list[str] = Field(min_length=1)
    methods: list[str] = []  # see METHODS, plus single_<teacher> for each teacher
    seeds: list[Seed] = Field(default=[0], min_length=1)


class Params(Strict):
    seed: Seed = 0
    run: Run
    assets: Assets = Assets()
    tasks: dict[str, Task]
    teachers: dict[str, Teacher]
    student: Student = Student(source="random")
    distill: Distill = Distill()
    rl: RL = RL()
    analysis: Analysis = Analysis()
    compute: Compute = Compute()
    cluster: Cluster = Cluster()

    @model_validator(mode="after")
    def _names_exist(self):
        for kind in ("tasks", "teachers", "methods", "seeds"):
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
        encoders = [(f"teachers.{n}", self.teachers[n]) for n in self.run.teachers] + [("student", self.student)]
        for key, spec in encoders:
            if spec.source == "asset" and spec.name not in self.assets.encoders:
                raise ValueError(f"{key}: asset {spec.name!r} is not in assets.encoders {self.assets.encoders}")
        corpus_of = {"rotten_tomatoes": "rotten_tomatoes", "chatterbot_qa": "chatterbot", "tweets": "tweets"}
        for name in self.run.tasks:
            corpus = corpus_of.get(self.tasks[name].source)
            if corpus is not None and corpus not in self.assets.corpora:
                raise ValueError(
                    f"tasks.{name}: its corpus {corpus!r} is not in assets.corpora {self.assets.corpora}; "
                    "add it there, so that the assets stage fetches it"
                )
        allowed = allowed_methods(self.run.teachers)
        if "rl_kd" in self.run.methods:  # else two stages would write the same runs/
            raise ValueError(
                "run.methods: rl_kd runs in its own stage, `rl_kd`, over run.tasks x run.seeds; "
                "remove it from run.methods"
            )
        for method in self.run.methods:
            if method not in allowed:
                raise ValueError(f"run.methods: unknown method {method!r}; expected one of {allowed}")
        k = len(self.run.teachers)
        for method in MANY_TEACHERS:
            if method in self.run.methods and k < 2:
                raise ValueError(
                    f"run.methods: {method} weighs teachers against each other and needs at least two "
                    f"in run.teachers (got {self.run.teachers})"
                )
        if "ae_kd" in self.run.methods:
            low = min(p.ae_kd_tolerance for p in self.distill.points())
            if low * k < 1 - 1e-3:  # 0.333 stands for 1/3
                raise ValueError(
                    f"distill.ae_kd_tolerance: {low} caps each of the {k} teachers' weights below 1/{k}, "
                    f"so they cannot sum to one; at least 1/{k} ({1 / k:.3f}: equal weights)"
                )
        if "mtkd_rl" in self.run.methods and min(p.epochs for p in self.distill.points()) < 2:
            raise ValueError(
                "distill.epochs: mtkd_rl trains the student with equal weights in its first epoch, while "
                "its agent gathers rewards; give it at least 2 epochs"
            )
        if self.rl.warmup_epochs >= self.distill.epochs:
            raise ValueError(
                f"rl.warmup_epochs: {self.rl.warmup_epochs} leaves no joint training within "
                f"distill.epochs ({self.distill.epochs}); it must be smaller"
            )
        fixed = self.distill.fixed_weights
        if fixed is not None:
            if sorted(fixed) != sorted(self.run.teachers):
                raise ValueError(
                    f"distill.fixed_weights: give one weight per teacher of run.teachers "
                    f"{self.run.teachers}, got {sorted(fixed)}"
                )
            if sum(fixed.values()) <= 0:
                raise ValueError("distill.fixed_weights: the weights sum to zero; at least one must be positive")
        return self


def _known_keys() -> set[str]:
    models = [m for m in globals().values() if isinstance(m, type) and issubclass(m, BaseModel) and m is not BaseModel]
    return {name for m in models for name in m.model_fields}


def _describe(err: ValidationError) -> str:
    lines = []
    tags = {"rotten_tomatoes", "tweets", "chatterbot_qa", "file", "glue"}  # the task union's tags: not keys of the file
    for e in err.errors():
        parts = [
            str(p)
            for i, p in enumerate(e["loc"])
            if p not in tags or (i == len(e["loc"]) - 1 and e["type"] != "value_error")
        ]
        got = "" if e["type"] in ("missing", "value_error", "extra_forbidden") else f" (got {e['input']!r})"
        msg = e["msg"]
        if e["type"] == "value_error":  # our validators' messages start with the key they are about
            msg = msg.removeprefix("Value error, ")
            head, sep, rest = msg.partition(": ")
            if sep and "." not in head and " " not in head and parts:  # `labels: ...` of tasks.x -> tasks.x.labels
                parts, msg = parts + [head], rest
            elif sep and not parts and " " not in head:  # `run.methods: ...` of the whole file
                parts, msg = [head], rest
        loc = ".".join(parts)
        if e["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(e["loc"][-1]), sorted(_known_keys()), n=1, cutoff=0.75)
            msg = "unknown key" + (f"; did you mean {close[0]!r}?" if close else " (Extra inputs are not permitted)")
        lines.append(f"  {loc or '<top level>'}: {msg}{got}")
    return "\n".join(lines)


DVC_SECTIONS = ("seed", "run", "tasks", "teachers", "student", "distill", "rl", "analysis", "compute")


MAX_VALUES = 100_000  # a params file has hundreds; a grid of thousands of points is still far below


def expanded_size(node, sizes: dict | None = None) -> int:
    """How many values a composed YAML node stands for once its aliases are expanded, counted without
    expanding them: an alias is the same node object again, so each node's size is computed once. A node
    that contains itself (`x: &a [*a]`) counts as too many."""
    sizes = {} if sizes is None else sizes
    if node is None:
        return 0
    if id(node) not in sizes:
        sizes[id(node)] = MAX_VALUES + 1  # until its children are counted: a cycle back to it is unbounded
        children = (
            [c for pair in node.value for c in pair]
            if isinstance(node, MappingNode)
            else node.value
            if isinstance(node, SequenceNode)
            else []
        )
        sizes[id(node)] = 1 + sum(expanded_size(c, sizes) for c in children)
    return sizes[id(node)]


def load(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: parameter file not found")
    # YAML 1.2, as DVC reads and writes it: `dvc exp run -S` rewrites the file, and leaves a label such as
    # `no` unquoted, which an older (1.1) reader would take for false
    try:
        text = path.read_text()
        yaml = YAML(typ="safe", pure=True)
        sizes: dict = {}
        size = expanded_size(yaml.compose(text), sizes)
        if size > MAX_VALUES and len(sizes) > MAX_VALUES:
            raise InputError(f"{path}: holds {len(sizes):,} values (at most {MAX_VALUES:,}); not a parameter file")
        if size > MAX_VALUES:  # aliases of aliases: a few lines that expand to a billion values, or to themselves
            raise InputError(
                f"{path}: its YAML aliases expand to {size:,} values or more (at most {MAX_VALUES:,}); "
                "write the values out instead of repeating them with aliases"
            )
        raw = yaml.load(text) or {}
    except RecursionError:  # lists within lists a few thousand deep
        raise InputError(f"{path}: nested too deeply to be a parameter file") from None
    except YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError(f"{path}: not valid YAML{where}: {getattr(err, 'problem', None) or err}") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: expected a mapping of sections (seed, run, tasks, ...), got a {type(raw).__name__}")
    # dvc.yaml tracks these sections; DVC stops at the first stage that names a missing one, which may
    # be after an hour of teachers, so a missing one is refused here, at the start of every stage
    missing = [k for k in DVC_SECTIONS if k not in raw]
    if isinstance(raw.get("compute"), dict) and "launch" not in raw["compute"]:
        missing.append("compute.launch")  # dvc.yaml's finetune command starts with it
    if missing:
        raise InputError(
            f"{path}: missing section(s) {missing}; dvc.yaml tracks them (write e.g. `rl: {{}}` "
            f"for a section's defaults, and `compute: {{launch: python -m}}`)"
        )
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise InputError(f"{path} is invalid:\n{_describe(err)}") from None


def named(params: Params, kind: str, name: str):
    """`params.tasks[name]` or `params.teachers[name]` (kind "tasks" or "teachers"); an unknown name is refused
    with the names that are defined, before anything is loaded."""
    defined = getattr(params, kind)
    if name not in defined:
        raise InputError(f"unknown {kind[:-1]} {name!r}; {kind} defined in params.yaml: {sorted(defined)}")
    return defined[name]


@contextmanager
def reported_errors():
    """Turn InputError into a one-line message and exit code 2 (for a stage's __main__)."""
    try:
        yield
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
