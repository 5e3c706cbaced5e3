"""The benchmarks run and report (their speed targets are measured by `python -m benchmarks`, not here)."""

import json

import pandas as pd
import pytest

from benchmarks import __main__ as bench
from benchmarks import bootstrap, kd_step, method_epoch
from tests.conftest import ROOT


@pytest.mark.slow
def test_step_and_epoch_benchmarks_measure_both_variants():
    step = kd_step.measure(steps=2, length=8)
    assert step["ce_step_ms"] > 0 and step["kd_step_ms"] > 0
    assert abs(step["ratio"] - step["kd_step_ms"] / step["ce_step_ms"]) < 0.01
    epoch = method_epoch.measure(examples=64, rounds=1, length=8)
    assert epoch["kd_epoch_s"] > 0 and sorted(epoch["methods"]) == sorted(method_epoch.ADAPTIVE)
    for m in epoch["methods"].values():
        assert m["epoch_s"] > 0 and m["met"] == (m["ratio"] <= 1.5)


def test_the_committed_results_render_as_the_benchmarks_page_table():
    results = json.loads((ROOT / "results/benchmarks.json").read_text())
    table = bench.table(results)
    assert table in (ROOT / "docs/benchmarks.md").read_text()  # the benchmarks page shows what the last run measured
    # header, rule, one row per measure: kd_step 1, method_epoch 4, pieces 1, online 1, caching 1, repro 3, memory 1,
    # startup 1, bootstrap 1, decision 1 (2 with the false-equivalence rate), placebo 1, workers 2, round 1, precision 1
    decision = 2 if "worst_false_equivalent" in results["decision"] else 1
    assert len(table.splitlines()) == 2 + 19 + (decision - 1) + 1


def test_bootstrap_benchmark_reports_a_bounded_peak():
    small = bootstrap.measure(examples=2000, resamples=2000)
    assert small["seconds"] > 0 and small["met"]
    # all at once, 0.12 GiB (rounded to 0.1); in chunks, one chunk of 16 MiB (0.016 GiB) and small arrays
    assert small["unchunked_gib"] == 0.1 and 0.01 < small["peak_gib"] < 0.025
    assert small["ci"][1] < small["ci"][0] < small["ci"][2]


def test_decision_benchmark_reports_every_cell():
    from benchmarks import decision

    small = decision.measure(experiments=20, boot_experiments=0)
    assert len(small["cells"]) == 2 * len(decision.SCALES) * len(decision.SEEDS)
    assert all(0 <= c["crossed"]["type_one"] <= 1 and "paired t" in c for c in small["cells"])
    assert all(0 <= c["false equivalent"]["type_one"] <= 1 for c in small["cells"])
    assert small["met"] == (small["worst_crossed"] <= 0.06 and small["worst_false_equivalent"] <= 0.05)


def test_placebo_splits_one_methods_runs_and_counts_false_rejections(tmp_path):
    """Runs whose predictions are the same in every seed: the two arms never differ, so no split rejects; a method
    with fewer than 2 S seeds is left out of that S."""
    from benchmarks import placebo

    test = pd.DataFrame({"id": [f"t{i:03d}" for i in range(40)], "label": [i % 2 for i in range(40)]})
    (tmp_path / "data" / "rt").mkdir(parents=True)
    test.assign(text_a="x", text_b=None, group=[f"m{i // 4}" for i in range(40)]).to_parquet(
        tmp_path / "data" / "rt" / "test.parquet"
    )
    for method, seeds in (("same", range(1, 17)), ("few", range(1, 7))):
        for seed in seeds:
            out = tmp_path / "runs" / "rt" / method / str(seed)
            out.mkdir(parents=True)
            test.assign(pred=0).to_parquet(out / "predictions.parquet")
    result = placebo.measure(draws=5, runs=tmp_path / "runs", data=tmp_path / "data")
    assert [c["seeds"] for c in result["cells"]] == [3, 5, 8]
    assert [c["methods"] for c in result["cells"]] == [["few", "same"], ["same"], ["same"]]
    assert [c["splits"] for c in result["cells"]] == [10, 5, 5] and result["worst"] == 0 and result["met"]


def test_kd_settings_ranks_the_params_point_by_its_mean_over_seeds():
    from benchmarks import kd_settings
    from pipeline.schema import load

    params = load(ROOT / "params.yaml")
    params = params.model_copy(update={"distill": params.distill.model_copy(update={"temperature": 5.0, "alpha": 0.5})})
    point = lambda t, a, acc: {"temperature": t, "alpha": a, "dev_accuracy": acc}  # noqa: E731
    records = [
        {"task": "rt", "method": "u_ensemble", "seed": 1, "grid": [point(5.0, 0.5, 0.80), point(10.0, 0.2, 0.84)]},
        {"task": "rt", "method": "u_ensemble", "seed": 2, "grid": [point(5.0, 0.5, 0.82), point(10.0, 0.2, 0.82)]},
    ]
    table, said = kd_settings.summary(records, params)
    # means by hand: (10, 0.2) 83.0, (5, 0.5) 81.0; stds sqrt(2 * 0.01^2 / 1) = 1.414 points each
    assert table[["temperature", "alpha"]].values.tolist() == [[10.0, 0.2], [5.0, 0.5]]
    assert "T = 10, alpha = 0.2 (83.00)" in said
    assert "scores 81.00, rank 2 of 2, 2.00 points below the best" in said
    assert "standard deviation of 1.41 points" in said
