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

# a learned method of two files, as a package with a DVC stage of its own (`hedge`, its rows in run.hedge)
PACKAGE_FILES = {
    "__init__.py": '''"""`hedge`: each teacher weighed by Hedge (Freund and Schapire 1997), w_k = softmax(-eta L_k),
L_k the sum over the batches so far of teacher k's mean CE against the gold label (a test's method)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ...schema import Strict
from .. import Method
from ..weighting import Weighting
from .weights import Hedge


class Settings(Strict):
    eta: Annotated[float, Field(gt=0, le=100)] = 0.1


class HedgeWeighting(Weighting):
    def __init__(self, run):
        self.ce, self.hedge = run.cache["train"]["ce"], Hedge(len(run.teachers), run.settings.eta)

    def weigh(self, idx, student_logits):
        return self.hedge.weights().expand(len(idx), -1)

    def after_update(self, idx, logits, pooled):
        self.hedge.update(self.ce[idx].mean(0))


METHOD = Method(HedgeWeighting, kind="learned", settings=Settings, stage="hedge")
''',
    "weights.py": '''"""Hedge's exponential weights over K experts, from their summed losses."""

import torch


class Hedge:
    def __init__(self, k: int, eta: float):
        self.loss, self.eta = torch.zeros(k), eta

    def weights(self) -> torch.Tensor:
        return torch.softmax(-self.eta * self.loss, 0)

    def update(self, losses: torch.Tensor) -> None:
        self.loss += losses
''',
}


def stage_block(dvc_yaml: dict, name: str, package: str) -> dict:
    """dvc.yaml's block for a stage of its own: the agents' stage's, over run.<name>, listing `package` for the
    agents' code, without the agents' rewards."""
    block = dict(dvc_yaml["stages"]["agent"])
    block["matrix"] = {**block["matrix"], "method": "${run." + name + "}"}
    agents_code = ("pipeline/methods/rl_kd", "pipeline/methods/effect_agent.py")
    block["deps"] = [d for d in block["deps"] if d not in agents_code] + [package]
    block["plots"] = [p for p in block["plots"] if "rewards.json" not in str(p)]
    return block
