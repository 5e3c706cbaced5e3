"""A method as a researcher would add one: this file's METHOD_FILE, copied to pipeline/methods/confident.py."""

METHOD_FILE = '''"""`confident`: each teacher weighed by w_k = softmax(-s CE_k), s its `sharpness` (a test's method)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..schema import Strict
from . import Method
from .weighting import PerBatch


class Settings(Strict):
    sharpness: Annotated[float, Field(gt=0, le=100)] = 1.0


def weighting(run):
    ce = run.cache["train"]["ce"]
    return PerBatch(lambda idx, _: (-run.settings.sharpness * ce[idx]).softmax(-1))


METHOD = Method(weighting, kind="adaptive", settings=Settings)
'''
