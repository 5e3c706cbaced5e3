"""The schema of params.yaml's `analysis:` section, read by the analyze stage alone (docs/statistics.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from pipeline.params_file import validate
from pipeline.schema import Params, Strict


class Analysis(Strict):
    """The analyze stage's statistics: the agents of `references` against the baselines (docs/statistics.md)."""

    # the agents whose questions are declared: each against the strongest baseline (the non-agent row with the
    # highest mean dev accuracy) and against `baseline` (the paper's main baseline), one primary family each, Holm
    # at the full level; every other comparison is secondary (one Holm family per task, gated by the primaries).
    # Empty: every row of run.agents
    references: list[str] = []
    baseline: str = "u_ensemble"
    power: Annotated[float, Field(gt=0.5, lt=1)] = 0.8  # the power at which the smallest detectable difference is given
    gap: Annotated[float, Field(gt=0, le=100)] = 1.0  # points: the difference the report asks the power to see
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    significance: Annotated[float, Field(gt=0, lt=0.5)] = 0.05  # after Holm correction
    wilcoxon_min_seeds: Annotated[int, Field(ge=2, le=1000)] = 6
    # where the decision was declared and what of it was chosen after numbers had been seen: the Verdict quotes
    # it, so that the reader of the verdict learns it there (docs/statistics.md); empty: no declaration is cited
    declared: Annotated[str, Field(max_length=600)] = ""

    @property
    def reference(self) -> str:
        """The first agent of `references`: the one the report's figures follow."""
        return self.references[0]


def settings(params: Params, path: str | Path = "params.yaml") -> Analysis:
    """The `analysis:` section of `params`, validated (its defaults where it is empty; references: run.agents)."""
    cfg = validate(Analysis, params.analysis, path, prefix="analysis")
    if not cfg.references and params.run.agents:
        cfg = cfg.model_copy(update={"references": list(params.run.agents)})
    return cfg
