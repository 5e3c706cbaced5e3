"""Baselines at their strongest: rows chosen per seed on dev from runs that already exist, trained by nothing new.

- `single_dev`: per seed, the single-teacher student (single_<teacher> of run.single) with the best dev accuracy.
- `w_ensemble_dev`: W-Ensemble with its fixed weights chosen on dev: per seed, the best on dev of a grid over the
  simplex of teacher weights that holds each vertex (all weight on one teacher: single_<teacher>), the centre of
  each face left by one teacher (drop_<teacher>) and the centre (u_ensemble); for three teachers, the grid at step
  1/2. Made only where every teacher is in run.single and run.drop and u_ensemble ran.

Ties go to the first candidate in the order above (u_ensemble, then the teachers in run.teachers' order). The
rule is fixed before any run (docs/statistics.md); test accuracy never enters. A chosen row reads its source run's
files (run_files.Runs.chosen), so every table, test and figure treats it as a run of its own.
"""

from __future__ import annotations

from pipeline.params_file import InputError

from . import run_files

DERIVED = ("single_dev", "w_ensemble_dev")


def candidates(run) -> dict[str, list[str]]:
    """Each chosen row that `run` (params.run) allows, with the runs it chooses from, in the order of ties."""
    out = {}
    singles = [f"single_{t}" for t in run.teachers if t in run.single]
    if len(singles) >= 2:
        out["single_dev"] = singles
    full = set(run.single) == set(run.drop) == set(run.teachers)
    if full and "u_ensemble" in run.methods and len(run.teachers) >= 2:
        out["w_ensemble_dev"] = ["u_ensemble", *singles, *(f"drop_{t}" for t in run.teachers)]
    return out


def choose(tree: run_files.Runs, run) -> run_files.Runs:
    """`tree` with the chosen rows of `run` added: per task and seed, each one's candidate with the best dev
    accuracy (read through run_files.record's checks)."""
    chosen = []
    for name, among in candidates(run).items():
        for task in run.tasks:
            for seed in run.seeds:
                dev = {m: run_files.record(tree, (task, m, seed))["dev_accuracy"] for m in among}
                best = max(among, key=lambda m: (dev[m], -among.index(m)))  # ties: the first
                chosen.append(((task, name, seed), best))
    if not chosen:
        return tree
    for (task, name, seed), _ in chosen:
        if (task, name, seed) in tree.keys:
            raise InputError(f"runs/{task}/{name}/{seed}: a run named like a chosen row ({name}); rename its method")
    return tree.with_chosen(chosen)
