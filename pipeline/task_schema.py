"""The schema of params.yaml's `tasks:` section: one model per source of labelled text (pipeline/data.py and
pipeline/glue.py load them)."""

from __future__ import annotations

import codecs
from typing import Annotated, Literal, Union

from pydantic import Field, field_validator, model_serializer, model_validator

from .params_file import Fraction, PositiveInt, Strict


class Overrides(Strict):
    """A task's own values of keys of other sections, for its stages alone (`Params.for_task`): a task whose
    teachers or student need other sizes than the default's (docs/design.md: the line-up of each task)."""

    teachers: dict[str, dict] = {}  # teacher name -> keys of teachers.NAME
    student: dict = {}  # keys of student
    distill: dict = {}  # keys of distill


class Caps(Strict):
    max_train: PositiveInt | None = None
    max_dev: PositiveInt | None = None
    max_test: PositiveInt | None = None
    # recorded in the task card with the keys above, which every later stage of the task checks against
    # params.yaml: a change reruns this task's stages, and no other task's
    overrides: Overrides | None = None

    @model_serializer(mode="wrap")
    def _no_empty_overrides(self, handler):
        out = handler(self)
        if out.get("overrides") is None:  # a task without them: its card as before they existed
            out.pop("overrides", None)
        return out


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

TASK_SOURCES = {"rotten_tomatoes", "tweets", "chatterbot_qa", "file", "glue"}  # the union's tags: not keys of the file
