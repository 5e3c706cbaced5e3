"""The analyze stage on a planted tree of run outputs: no training, known answers."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from analysis import analyze
from analysis.settings import Analysis
from pipeline import logits
from pipeline import schema as P
from tests.conftest import edit_params, write_params

TASK, TEACHERS, SEEDS, N = "toy", ["big", "small"], [1, 2, 3], 400
# planted test accuracy per method and seed: rl_kd is clearly ahead of ce, level with u_ensemble
ACCURACY = {
    "ce": [0.60, 0.62, 0.61],
    "single_big": [0.70, 0.69, 0.71],
    "single_small": [0.72, 0.73, 0.71],
    "u_ensemble": [0.80, 0.81, 0.79],
    "rl_kd": [0.80, 0.82, 0.79],
}


def write_run(root, method, seed, acc, rng):
    out = root / "runs" / TASK / method / str(seed)
    out.mkdir(parents=True)
    labels = np.arange(N) % 2
    right = np.zeros(N, bool)
    right[rng.choice(N, int(round(acc * N)), replace=False)] = True
    pd.DataFrame(
        {"id": [f"t{i:04d}" for i in range(N)], "label": labels, "pred": np.where(right, labels, 1 - labels)}
    ).to_parquet(out / "predictions.parquet")
    (out / "metrics.json").write_text(
        json.dumps(
            {
                "task": TASK,
                "method": method,
                "seed": seed,
                "dev_accuracy": acc,
                "test_accuracy": float(right.mean()),
                "best_epoch": 2,
                "train_seconds": 1.0,
                "policy_pretraining": [{"selection_rate": [0.5, 0.5]}] if method == "rl_kd" else [],
                "teacher_weights": {"big": 0.6, "small": 0.2 + 0.1 * seed},
            }
        )
    )
    history = [{"epoch": e, "dev_accuracy": acc - 0.1 / e} for e in (1, 2)]
    if method == "rl_kd":  # its policy: 40 steps a run, 10 skipped; in seed s, s/10 of instances equal, 0.05 none
        history[1].update(selection_rate=[0.6, 0.3], reward_mean=0.1, policy_steps=40, policy_steps_skipped=10)
        history[1].update(equal_weights_share=seed / 10, no_teacher_share=0.05)
        (out / "rewards.json").write_text(
            json.dumps([{"epoch": 2, "step": i, "reward": r} for i, r in enumerate([0.1, 0.2, 0.0])])
        )
    (out / "history.json").write_text(json.dumps(history))
    train_ids = [f"r{i:03d}" for i in range(100)]
    weights = {"id": train_ids, **{t: np.full(100, 0.5) for t in TEACHERS}}
    if method == "rl_kd":  # the agent picks `small` less where it is wrong (its first 20 instances)
        weights.update(select_big=np.full(100, 0.5), select_small=np.r_[np.full(20, 0.1), np.full(80, 0.7)])
    pd.DataFrame(weights).to_parquet(out / "weights.parquet")


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    for method, accs in ACCURACY.items():
        for seed, acc in zip(SEEDS, accs):
            write_run(tmp_path, method, seed, acc, rng)
    train = pd.DataFrame(
        {
            "id": [f"r{i:03d}" for i in range(100)],
            "text_a": "x",
            "text_b": None,
            "label": np.arange(100) % 2,
            "group": "g",
        }
    )
    (tmp_path / "data" / TASK).mkdir(parents=True)
    train.to_parquet(tmp_path / "data" / TASK / "train.parquet")
    test = pd.DataFrame(  # the test examples the runs predicted, in groups of four (as rt's snippets by movie)
        {"id": [f"t{i:04d}" for i in range(N)], "text_a": "x", "text_b": None, "label": np.arange(N) % 2}
    ).assign(group=lambda df: [f"m{i // 4}" for i in range(N)])
    test.to_parquet(tmp_path / "data" / TASK / "test.parquet")
    y = torch.tensor(train.label.to_numpy())
    for name, acc in (("big", 0.90), ("small", 0.75)):
        m = tmp_path / "models" / TASK / name
        m.mkdir(parents=True)
        m.joinpath("metrics.json").write_text(
            json.dumps(
                {"dev_accuracy": acc, "test_accuracy": acc, "parameters": 10_000_000 if name == "big" else 2_000_000}
            )
        )
        wrong = torch.arange(100) < (20 if name == "small" else 0)
        lg = torch.nn.functional.one_hot(torch.where(wrong, 1 - y, y), 2).float() * 3
        (tmp_path / "logits" / TASK / name).mkdir(parents=True)
        logits.save(
            tmp_path / "logits" / TASK / name / "train.safetensors",
            train,
            logits.tensors(lg, torch.zeros(100, 4), y),
            task=TASK,
            teacher=name,
        )
    (tmp_path / "results/latency").mkdir(parents=True)
    rows = [
        {"model": m, "parameters": p, "weight_bytes": 4 * p, "batch1_ms": ms, "batch32_ms": 10 * ms}
        for m, p, ms in (("big", 10_000_000, 40.0), ("small", 2_000_000, 10.0), ("student", 500_000, 2.0))
    ]
    (tmp_path / "results/latency" / f"{TASK}.json").write_text(json.dumps({"task": TASK, "models": rows}))
    write_params(
        tmp_path,
        {
            "seed": 0,
            "student": {"source": "random"},
            "distill": {},
            "methods": {},
            "run": {
                "tasks": [TASK],
                "teachers": TEACHERS,
                "seeds": SEEDS,
                "methods": ["ce", "single_big", "single_small", "u_ensemble"],
                "single": [],
                "drop": [],
                "agents": ["rl_kd"],
            },
            "tasks": {
                TASK: {
                    "source": "file",
                    "path": "user_data/toy.csv",
                    "text_a": "text",
                    "label": "label",
                    "labels": ["neg", "pos"],
                }
            },
            "teachers": {t: {"source": "random", "arch": "bert", "vocab_size": 50} for t in TEACHERS},
            "analysis": {"gap": 1.0},
            "compute": {"launch": "python -m"},
        },
    )
    return tmp_path


@pytest.mark.slow
def test_tables_figures_and_report_from_planted_runs(tree):
    analyze.main()
    main = pd.read_csv(tree / "results/tables/table2_main.csv", index_col=0)
    runs = {
        m: [json.loads((tree / f"runs/{TASK}/{m}/{s}/metrics.json").read_text())["test_accuracy"] for s in SEEDS]
        for m in ACCURACY
    }
    for method, accs in runs.items():
        assert main.loc[method, f"{TASK}_mean"] == pytest.approx(np.mean(accs), abs=1e-6)
        assert main.loc[method, f"{TASK}_std"] == pytest.approx(np.std(accs, ddof=1), abs=1e-6)
    assert list(main.index) == ["ce", "single_big", "single_small", "u_ensemble", "rl_kd"]  # the paper's order
    assert "**" in (tree / "results/tables/table2_main.md").read_text()
    assert r"\toprule" in (tree / "results/tables/table2_main.tex").read_text()

    sig = pd.read_csv(tree / "results/tables/table3_significance.csv").set_index(["a", "b"])
    # declared up front: the primary family (the strongest baseline on dev is u_ensemble, 0.80, so the family is
    # that one comparison), KD's premise (u_ensemble, the one fixed-weight KD method, - ce), Table 1's finding
    # (single_small's student is the better on dev, 0.72 v 0.70, big the stronger teacher on dev, 0.90 v 0.75),
    # then rl_kd against the rest
    assert list(sig.index) == [
        ("rl_kd", "u_ensemble"),
        ("u_ensemble", "ce"),
        ("single_small", "single_big"),
        ("rl_kd", "ce"),
        ("rl_kd", "single_big"),
        ("rl_kd", "single_small"),
    ]
    assert list(sig.role) == ["primary", "premise", "table1"] + ["secondary"] * 3
    primary = sig.loc[("rl_kd", "u_ensemble")]
    assert primary.ci_low < 0 < primary.ci_high and primary.p == primary.p_adjusted  # the full level, no Holm
    # rl_kd and u_ensemble planted 0.3 points apart on 1,200 predictions: far below what 3 seeds x 400 can see
    assert primary.mdd > 0.03 and primary.mdd_upper > primary.mdd and primary.power < 0.8
    assert primary.verdict == "inconclusive (CI wider than ±1 pp)"
    # the primary comparison gates the secondary family: planted 20 points apart, rl_kd - ce is reported, not tested
    assert sig.loc[("rl_kd", "ce"), "ci_low"] > 0.1 and sig.loc[("rl_kd", "ce"), "p"] < 0.01
    assert (sig[sig.role == "secondary"].verdict == "not tested (primary did not reject)").all()
    # KD's premise is a question of its own, tested at the full level whatever the primary one says: u_ensemble
    # sits 0.3 points below rl_kd, so about 20 above ce
    premise = sig.loc[("u_ensemble", "ce")]
    assert premise.p < 0.01 and premise.p == premise.p_adjusted and premise.verdict == "better"
    assert (sig.p_adjusted >= sig.p - 1e-12).all()
    assert (sig.units == N // 4).all()  # the test examples' groups of four are what test sampling draws
    power = pd.read_csv(tree / "results/tables/table3_power.csv")
    measured = power[power.measured].iloc[0]
    assert measured.seeds == 3 and measured.examples == N and measured.mdd == pytest.approx(primary.mdd)
    assert (power.groupby("examples").mdd.diff().dropna() < 0).all()  # more seeds, smaller detectable difference

    t1 = pd.read_csv(tree / "results/tables/table1_teachers.csv").set_index("teacher")
    assert t1.loc["big", "teacher_test"] == 0.9 and t1.loc["small", "student_test"] > t1.loc["big", "student_test"]
    report = (tree / "results/report.md").read_text()
    assert "a stronger teacher did not give a stronger student" in report
    # selection where right v wrong, from the planted weights (the same in each seed: an interval of one point)
    assert "`toy`/`small` 0.70 right v 0.10 wrong (wrong - right -0.600 [-0.600, -0.600])" in report
    assert "`toy`/`big` 0.50 right v - wrong (never wrong)" in report and "for 1 of 1 (task, teacher) pairs" in report
    # the verdict comes first: the primary comparison's answer with its power, then KD's premise
    verdict = report.split("## Verdict\n", 1)[1].split("\n## ", 1)[0]
    assert report.index("## Verdict") < report.index("## Table 1")
    # the paper's RL-KD against the strongest baseline on dev, which is u_ensemble, the declared one too
    assert (
        "the paper's RL-KD: `rl_kd` - `u_ensemble` (the strongest baseline on dev, and the declared baseline): "
        in verdict
        and "**inconclusive (CI wider than ±1 pp)**. So `rl_kd` is not shown to beat every baseline" in verdict
    )
    assert "KD's premise, `u_ensemble` (the best fixed-weight KD on dev) - `ce`: +" in verdict
    assert "Table 1's finding: the single-teacher student best on dev, `single_small`" in verdict
    assert verdict.count("it could detect") == 3 and "**better**" in verdict
    comp = pd.read_csv(tree / "results/tables/table4_compression.csv").set_index("model")
    assert comp.loc["small", "speedup_batch1"] == pytest.approx(5.0)
    for stem in (
        "main_results",
        "rl_selection",
        "selection_vs_correctness",
        "teacher_vs_student",
        "learning_curves",
        "power",
    ):
        for ext in ("png", "pdf"):
            assert (tree / "results/figures" / f"{stem}.{ext}").stat().st_size > 1000
    # Table 5: the agent's means over seeds 1-3, worked out from the planted records above
    t5 = pd.read_csv(tree / "results/tables/table5_agents.csv").set_index("method").loc["rl_kd"]
    assert (t5.policy_steps, t5.policy_steps_skipped, t5.seeds) == (40, 10, 3)
    assert t5.equal_weights_share == pytest.approx(0.2) and t5.no_teacher_share == pytest.approx(0.05)
    assert t5.weight_small == pytest.approx(0.4) and t5.select_big == pytest.approx(0.6)
    assert t5.guard_kept_equal == -1  # no guard
    assert t5["diff"] == pytest.approx(sig.loc[("rl_kd", "u_ensemble"), "diff"])  # the same test as Table 3's
    assert "its policy stepped 40 times a run and skipped 10" in report and "20% of the instances got exactly" in report
    metrics = json.loads((tree / "results/metrics.json").read_text())
    assert metrics["rl_kd_significant_wins"] == 0 and len(metrics["comparisons"]) == 6
    assert metrics["comparisons"][0]["role"] == "primary" and metrics["comparisons"][0]["mdd"] > 0


@pytest.mark.slow
def test_a_seed_count_off_the_power_grid_is_measured_too(tree):
    """The power table projects 3, 5, 10, 20 and 30 seeds; at 2 (a study's second round) it adds the 2 measured."""
    params = (tree / "params.yaml").read_text().replace("seeds:\n  - 1\n  - 2\n  - 3\n", "seeds:\n  - 1\n  - 2\n")
    (tree / "params.yaml").write_text(params)
    analyze.main()
    power = pd.read_csv(tree / "results/tables/table3_power.csv")
    assert sorted(power.seeds.unique()) == [2, 3, 5, 10, 20, 30]
    assert power[power.measured].seeds.tolist() == [2]
    assert "with 2 seeds and" in (tree / "results/report.md").read_text()


@pytest.mark.slow
def test_one_seed_shows_means_alone_and_says_so(tree):
    params = (tree / "params.yaml").read_text().replace("seeds:\n  - 1\n  - 2\n  - 3\n", "seeds:\n  - 1\n")
    (tree / "params.yaml").write_text(params)
    analyze.main()
    report = (tree / "results/report.md").read_text()
    # seed 1 plants 80.0 for rl_kd and u_ensemble, 60.0 for ce, 70.0 and 72.0 for the single-teacher students
    assert "(80.0), +0.0 points against `u_ensemble` and +20.0 points against `ce`." in report
    assert "The single-teacher students span 2.0 points." in report
    assert "With one seed the seed-to-seed variance is unknown" in report and "1 seeds" not in report
    assert "one seed: not tested (training randomness unmeasured)" in report
    main = (tree / "results/tables/table2_main.md").read_text()
    assert main.startswith("Table 2: test accuracy (%) of every method, one seed;")
    assert "| rl_kd        | **80.0** | **80.0**  |       1 |" in main
    sig = pd.read_csv(tree / "results/tables/table3_significance.csv")
    assert sig.p_t.isna().all() and sig.d_z.isna().all()
    for text in [report, *(p.read_text() for p in (tree / "results/tables").glob("*.*"))]:
        assert "nan" not in text.lower() and "±" not in text.replace("mean ± std", "")


@pytest.mark.slow
def test_runs_outside_params_stay_out_of_the_tables(tree):
    rng = np.random.default_rng(1)
    write_run(tree, "w_ensemble", 1, 0.99, rng)  # left over from an earlier run.methods
    write_run(tree, "ce", 9, 0.99, rng)  # a seed that run.seeds does not list
    analyze.main()
    main = pd.read_csv(tree / "results/tables/table2_main.csv", index_col=0)
    assert "w_ensemble" not in main.index and main.loc["ce", "seeds"] == 3


def test_a_missing_run_stops_before_anything_is_written(tree):
    (tree / f"runs/{TASK}/u_ensemble/2/metrics.json").unlink()
    with pytest.raises(P.InputError, match=f"runs/{TASK}/u_ensemble/2/metrics.json"):
        analyze.main()
    assert not (tree / "results/tables").exists() and not (tree / "results/report.md").exists()


def test_an_unknown_reference_method_is_refused(tree):
    params = (tree / "params.yaml").read_text().replace("gap: 1.0", "gap: 1.0\n  references: [rl_kdd]")
    (tree / "params.yaml").write_text(params)
    with pytest.raises(P.InputError, match="analysis.references: 'rl_kdd'"):
        analyze.main()


def test_the_references_default_to_the_agents_and_are_needed():
    """analysis.references left out: the rows of run.agents; no agent and none named: refused by the stage."""
    from analysis.settings import settings

    params = P.Params.model_validate(
        {"run": {"tasks": ["t"], "teachers": ["a"], "agents": ["rl_kd", "effect_agent"]}, "analysis": {}}
        | {"tasks": {"t": {"source": "rotten_tomatoes"}}, "teachers": {"a": {"source": "random"}}}
    )
    assert settings(params).references == ["rl_kd", "effect_agent"]
    assert settings(params.model_copy(update={"analysis": {"references": ["x"]}})).references == ["x"]
    none = params.model_copy(update={"run": params.run.model_copy(update={"agents": []})})
    assert settings(none).references == []


def test_no_reference_is_refused(tree):
    edit_params(tree, lambda p: (p["run"].update(agents=[]), p["analysis"].pop("references", None)))
    with pytest.raises(P.InputError, match=r"analysis.references: no agent to test \(run.agents is empty\)"):
        analyze.main()


def test_an_unknown_baseline_method_is_refused(tree):
    params = (tree / "params.yaml").read_text().replace("gap: 1.0", "gap: 1.0\n  baseline: u_ensembel")
    (tree / "params.yaml").write_text(params)
    with pytest.raises(P.InputError, match="analysis.baseline: 'u_ensembel' is not a method; expected one of"):
        analyze.main()


@pytest.mark.slow
def test_a_baseline_that_did_not_run_leaves_the_strongest_alone_in_the_family(tree):
    params = (tree / "params.yaml").read_text().replace("gap: 1.0", "gap: 1.0\n  baseline: w_ensemble")
    (tree / "params.yaml").write_text(params)
    analyze.main()
    sig = pd.read_csv(tree / "results/tables/table3_significance.csv")
    # u_ensemble is the strongest baseline on dev (0.80): the family's one comparison; w_ensemble did not run
    assert sig[sig.role == "primary"][["a", "b"]].values.tolist() == [["rl_kd", "u_ensemble"]]
    assert "w_ensemble" not in set(sig.b)


def test_the_comparisons_are_declared_from_the_names_alone():
    from analysis import decision

    order = ["ce", "single_a", "u_ensemble", "best_single", "ae_kd", "rl_kd"]
    # the premise (KD helps at all): each fixed-weight KD method against ce; ae_kd and single_a are not among them
    assert decision.comparisons(order, ["rl_kd"], "u_ensemble") == [
        ("rl_kd", "u_ensemble", "primary", "rl_kd"),
        ("rl_kd", "ce", "secondary", "secondary"),
        ("rl_kd", "single_a", "secondary", "secondary"),
        ("rl_kd", "best_single", "secondary", "secondary"),
        ("rl_kd", "ae_kd", "secondary", "secondary"),
        ("u_ensemble", "ce", "secondary", "secondary"),
        ("best_single", "ce", "secondary", "secondary"),
    ]
    assert decision.comparisons(["ce", "rl_kd"], ["rl_kd"], "u_ensemble") == [("rl_kd", "ce", "secondary", "secondary")]
    # two agents, each with its family (v the strongest baseline, then v U-Ensemble); KD's premise; Table 1's finding
    order = ["ce", "single_a", "single_b", "u_ensemble", "best_single", "rl_kd", "agent"]
    assert decision.comparisons(
        order, ["rl_kd", "agent"], "u_ensemble", "single_b", "best_single", ("single_b", "single_a")
    ) == [
        ("rl_kd", "single_b", "primary", "rl_kd"),
        ("rl_kd", "u_ensemble", "primary", "rl_kd"),
        ("agent", "single_b", "primary", "agent"),
        ("agent", "u_ensemble", "primary", "agent"),
        ("best_single", "ce", "premise", "premise"),
        ("single_b", "single_a", "table1", "table1"),
        *[("rl_kd", m, "secondary", "secondary") for m in ("ce", "single_a", "best_single", "agent")],
        *[("agent", m, "secondary", "secondary") for m in ("ce", "single_a", "best_single", "rl_kd")],
        ("u_ensemble", "ce", "secondary", "secondary"),
    ]
    # the strongest baseline is U-Ensemble itself: the family is that one comparison
    assert decision.comparisons(order, ["rl_kd"], "u_ensemble", "u_ensemble")[:2] == [
        ("rl_kd", "u_ensemble", "primary", "rl_kd"),
        ("rl_kd", "ce", "secondary", "secondary"),
    ]


def test_the_strongest_baseline_and_table1s_pair_are_chosen_on_dev_not_on_test():
    from analysis import decision

    runs = pd.DataFrame(
        [  # method, dev, test: by dev, single_b (0.84) leads the non-agents; the agent's 0.90 on dev does not count
            ("u_ensemble", 0.80, 0.95),
            ("single_a", 0.81, 0.60),
            ("single_b", 0.84, 0.61),
            ("w_ensemble_dev", 0.84, 0.99),  # ties with single_b: the first in the order wins
            ("rl_kd", 0.90, 0.50),
        ],
        columns=["method", "dev_accuracy", "test_accuracy"],
    )
    order = ["single_a", "single_b", "u_ensemble", "w_ensemble_dev", "rl_kd"]
    assert decision.strongest(runs, order, ["rl_kd"]) == "single_b"
    assert decision.strongest(runs, order[::-1], ["rl_kd"]) == "w_ensemble_dev"
    teachers = pd.DataFrame(
        [("t", "a", 0.95, 0.99), ("t", "b", 0.90, 0.80)], columns=["task", "teacher", "dev_accuracy", "test_accuracy"]
    )
    # teacher a is the stronger on dev; b's student is the better on dev: Table 1's finding, b's v a's
    assert decision.table1_pair(runs, teachers, "t") == ("single_b", "single_a")


def test_kds_premise_takes_the_fixed_weight_kd_method_best_on_dev_not_on_test():
    from analysis import decision

    runs = pd.DataFrame(
        [  # method, dev, test: best_single leads on dev (mean 0.81), u_ensemble on test; ae_kd is not fixed-weight
            ("u_ensemble", 0.80, 0.90),
            ("u_ensemble", 0.78, 0.91),
            ("best_single", 0.82, 0.70),
            ("best_single", 0.80, 0.70),
            ("ae_kd", 0.95, 0.95),
            ("ce", 0.99, 0.60),
        ],
        columns=["method", "dev_accuracy", "test_accuracy"],
    )
    assert decision.best_on_dev(runs) == "best_single"
    assert decision.best_on_dev(runs[runs.method.isin(["ce", "ae_kd"])]) is None


VERDICTS = {  # role, gate, p (Holm-adjusted), CI (points): the verdict; analysis.gap 1 point
    "significant, ahead": ("primary", "open", 0.01, (0.5, 3.5), "better"),
    "significant, behind": ("primary", "open", 0.01, (-3.5, -0.5), "worse"),
    "CI inside +-1": ("primary", "open", 0.40, (-0.9, 0.8), "equivalent (within ±1 pp)"),
    "CI reaches past +1": ("primary", "open", 0.40, (-0.9, 1.1), "inconclusive (CI wider than ±1 pp)"),
    "CI touches -1": ("primary", "open", 0.40, (-1.0, 0.5), "inconclusive (CI wider than ±1 pp)"),
    # a point estimate of 0 with a wide CI is no evidence of no difference (the old power rule said so)
    "zero, wide CI": ("primary", "open", 1.00, (-2.0, 2.0), "inconclusive (CI wider than ±1 pp)"),
    "secondary, gate closed": ("secondary", "closed", 0.001, (1.0, 3.0), "not tested (primary did not reject)"),
    "secondary, gate open": ("secondary", "open", 0.001, (1.0, 3.0), "better"),
    "premise, whatever the gate": ("premise", "closed", 0.01, (0.5, 3.5), "better"),
    "one seed": ("primary", "open", float("nan"), (float("nan"), float("nan")), "not tested (one seed)"),
    # every run the same (a student that predicts one class, whatever the method): an interval of [0, 0] is no
    # evidence of equivalence
    "no variance": ("primary", "open", 1.0, (0.0, 0.0), "degenerate (no variance: the two arms' correctness"),
    "teachers at the majority class": ("primary", "open", 0.40, (-0.9, 0.8), "degenerate (teachers no better"),
}


@pytest.mark.parametrize("role, gate, p, ci, expected", VERDICTS.values(), ids=VERDICTS.keys())
def test_no_difference_only_by_equivalence_and_the_primary_gates_the_rest(role, gate, p, ci, expected):
    from analysis import decision

    lo, hi = ci[0] / 100, ci[1] / 100
    row = {"role": role, "gate": gate, "p": p, "p_adjusted": p, "diff": (lo + hi) / 2, "ci_low": lo, "ci_high": hi}
    row["var"] = 0.0 if expected.startswith("degenerate (no variance") else 1e-5
    if expected.startswith("degenerate (teachers"):
        row["degenerate"] = "teachers no better than the majority class (61.8%): `a` 61.8%"
    assert decision.verdict(pd.Series(row), Analysis()).startswith(expected)


def test_table1_puts_the_papers_numbers_beside_ours_where_task_and_teacher_match():
    from analysis import tables

    teachers = pd.DataFrame(
        {
            "task": ["mrpc", "mrpc"],
            "teacher": ["bert_base", "mine"],
            "dev_accuracy": [0.8, 0.7],
            "test_accuracy": [0.85, 0.75],
            "test_examples": [1000, None],
            "parameters": [110e6, 20e6],
        }
    )
    runs = pd.DataFrame(
        {
            "task": "mrpc",
            "method": ["single_bert_base"] * 2 + ["single_mine"] * 2,
            "seed": [1, 2] * 2,
            "test_accuracy": [0.70, 0.72, 0.60, 0.62],
        }
    )
    numbers, shown, _ = tables.teacher_table(teachers, runs, pd.read_csv(analyze.PAPER))
    row = numbers.set_index("teacher").loc["bert_base"]
    assert row.paper_teacher == 83.3 and row.paper_student == 74.0  # the paper's Table 1, MRPC
    assert row.teacher_minus_paper == pytest.approx(85.0 - 83.3)
    assert row.student_minus_paper == pytest.approx(71.0 - 74.0)
    assert shown.loc[("mrpc", "bert_base"), "ours - paper (teacher / student)"] == "+1.7 / -3.0"
    assert shown.loc[("mrpc", "mine"), "paper teacher"] == ""
    # a teacher scored on a sample of the test set says how many examples; a record without the count, nothing
    assert shown["teacher test examples"].tolist() == ["1,000", ""]


def test_rl_kd_alone_has_no_comparison_and_says_so(tree):
    """run.methods: [] runs RL-KD only: the tables and report are written, with no significance to test."""
    params = (tree / "params.yaml").read_text()
    (tree / "params.yaml").write_text(
        params.replace("methods:\n  - ce\n  - single_big\n  - single_small\n  - u_ensemble\n", "methods: []\n")
    )
    analyze.main()
    report = (tree / "results/report.md").read_text()
    assert "No other method ran, so there is nothing to compare `rl_kd` with." in report
    main = pd.read_csv(tree / "results/tables/table2_main.csv", index_col=0)
    assert list(main.index) == ["rl_kd"]
    assert json.loads((tree / "results/metrics.json").read_text())["comparisons"] == []


def test_less_where_wrong_only_when_the_interval_over_seeds_says_so():
    """0.35 v 0.35 on average, +-0.02 by seed: no claim. By hand: wrong - right = [0, -0.02, +0.02], mean 0, sd 0.02,
    half-width t(2, 0.975) 4.303 * 0.02 / sqrt(3) = 0.0497."""
    from analysis import report

    sel = pd.DataFrame(
        {"task": "t", "teacher": "k", "seed": [1, 2, 3], "right": [0.35, 0.36, 0.34], "wrong": [0.35, 0.34, 0.36]}
    )
    text = report.read_selection(sel)
    assert "`t`/`k` 0.35 right v 0.35 wrong (wrong - right +0.000 [-0.050, +0.050])" in text
    assert "for 0 of 1 (task, teacher) pairs" in text


def test_the_reward_panel_draws_any_number_of_seeds_with_their_mean():
    from analysis import figures

    # 16 seeds (the study's), more than a colour each; seed s gets reward s at each of its 4 steps, so every
    # rolling mean is s and the mean over seeds is (1 + ... + 16) / 16 = 8.5 at every step
    seeds = range(1, 17)
    rewards = pd.DataFrame(
        [{"task": TASK, "seed": s, "epoch": 1, "step": k, "reward": float(s)} for s in seeds for k in range(4)]
    )
    policy = pd.DataFrame(
        [{"task": TASK, "seed": s, "label": "1", "selection_rate": np.array([0.5, 0.5])} for s in seeds]
    )
    fig = figures.rl_selection(policy, rewards, TEACHERS, [TASK])
    lines = fig.axes[1].get_lines()
    assert len(lines) == 16 + 1
    assert np.allclose(lines[-1].get_ydata(), 8.5) and lines[-1].get_label() == "mean of 16 seeds"
    figures.close([fig])


@pytest.mark.slow
def test_a_degenerate_experiment_is_reported_as_degenerate_not_equivalent(tree, recwarn):
    """A user's task on which every teacher and every student predicts the majority class (issue 39: a
    sentence-pair task of their own): every comparison is `degenerate`, none `equivalent`, and no division by a
    zero variance warns."""
    for path in (tree / "runs" / TASK).glob("*/*/predictions.parquet"):
        df = pd.read_parquet(path).assign(pred=0)  # labels alternate 0/1: the majority class scores 50%
        df.to_parquet(path)
        metrics = json.loads((path.parent / "metrics.json").read_text())
        metrics.update(test_accuracy=0.5, dev_accuracy=0.5)
        (path.parent / "metrics.json").write_text(json.dumps(metrics))
    for name in TEACHERS:
        path = tree / "models" / TASK / name / "metrics.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "test_accuracy": 0.5}))
    analyze.main()
    sig = pd.read_csv(tree / "results/tables/table3_significance.csv")
    assert sig.verdict.str.startswith("degenerate").all(), sig.verdict.tolist()
    report = (tree / "results/report.md").read_text()
    assert "equivalent (within" not in report and "teachers no better than the majority class (50.0%)" in report
    assert not [w for w in recwarn if "invalid value" in str(w.message) or "divide" in str(w.message)]


def test_the_chosen_rows_take_each_seeds_best_run_on_dev_and_read_its_files(tmp_path):
    """single_dev and w_ensemble_dev: per seed, the candidate with the best dev accuracy (ties: the first of
    u_ensemble, then the teachers in order), read through that run's own files."""
    from analysis import run_files, selection

    dev = {  # method -> dev accuracy in seeds 1 and 2, worked out below
        "u_ensemble": (0.80, 0.79),
        "single_big": (0.81, 0.75),
        "single_small": (0.78, 0.82),
        "drop_big": (0.79, 0.82),  # ties with single_small in seed 2: single_small comes first
        "drop_small": (0.70, 0.70),
    }
    rng = np.random.default_rng(0)
    for method, accs in dev.items():
        for seed, acc in zip((1, 2), accs):
            write_run(tmp_path, method, seed, 0.7, rng)
            path = tmp_path / "runs" / TASK / method / str(seed) / "metrics.json"
            path.write_text(json.dumps({**json.loads(path.read_text()), "dev_accuracy": acc}))
    run = P.Run(tasks=[TASK], teachers=TEACHERS, methods=["u_ensemble"], single=TEACHERS, drop=TEACHERS, seeds=[1, 2])
    keys = [(TASK, m, s) for m in dev for s in (1, 2)]
    tree = selection.choose(run_files.Runs.of(tmp_path / "runs", keys), run)
    chosen = dict(tree.chosen)
    assert chosen[(TASK, "single_dev", 1)] == "single_big" and chosen[(TASK, "single_dev", 2)] == "single_small"
    assert chosen[(TASK, "w_ensemble_dev", 1)] == "single_big" and chosen[(TASK, "w_ensemble_dev", 2)] == "single_small"
    record = run_files.record(tree, (TASK, "w_ensemble_dev", 2))
    assert (
        record["method"] == "w_ensemble_dev" and record["source"] == "single_small" and record["dev_accuracy"] == 0.82
    )
    assert (
        tree.path((TASK, "single_dev", 1), "predictions.parquet")
        == tmp_path / f"runs/{TASK}/single_big/1/predictions.parquet"
    )
    # without drop_<teacher> for every teacher there is no grid to choose W-Ensemble's weights from
    partial = run.model_copy(update={"drop": ["big"]})
    assert list(selection.candidates(partial)) == ["single_dev"]


def test_two_tasks_verdicts_are_read_side_by_side_and_a_split_decision_is_named():
    from analysis.verdict import agreement

    row = lambda task, role, family, a, b, diff, verdict: dict(  # noqa: E731
        task=task, role=role, family=family, a=a, b=b, diff=diff, verdict=verdict
    )
    sig = pd.DataFrame(
        [
            row("rt", "primary", "rl_kd", "rl_kd", "u_ensemble", -0.002, "inconclusive"),
            row("rt", "premise", None, "u_ensemble", "ce", 0.011, "better"),
            row("rt", "table1", None, "single_minilm_l3", "single_mpnet", 0.004, "better"),
            row("tw", "primary", "rl_kd", "rl_kd", "w_ensemble", 0.012, "better"),
            row("tw", "primary", "rl_kd", "rl_kd", "u_ensemble", 0.015, "better"),
            row("tw", "premise", None, "u_ensemble", "ce", -0.02, "worse"),
            row("tw", "table1", None, "single_minilm_l6", "single_minilm_l6", 0.0, "degenerate"),
            row("tw", "secondary", None, "rl_kd", "ce", 0.03, "better"),  # not a declared question: left out
        ]
    )
    assert agreement(sig[sig.task == "rt"], "u_ensemble") == []  # one task: nothing to compare
    # on rt the strongest baseline on dev is U-Ensemble: its one comparison answers both questions there
    assert agreement(sig, "u_ensemble") == [
        "Across tasks, `rl_kd` v the strongest baseline on dev: `inconclusive` on `rt` (-0.2), `better` on `tw` "
        "(+1.2); the tasks differ.",
        "Across tasks, `rl_kd` v `u_ensemble`: `inconclusive` on `rt` (-0.2), `better` on `tw` (+1.5); the tasks "
        "differ.",
        "Across tasks, KD's premise (the best fixed-weight KD on dev v `ce`): `better` on `rt` (+1.1), `worse` on "
        "`tw` (-2.0); the tasks disagree: it wins on rt and loses on tw.",
        "Across tasks, Table 1's finding (the best single-teacher student on dev v the strongest teacher's): `better` "
        "on `rt` (+0.4), `degenerate` on `tw` (+0.0); the tasks differ.",
    ]
    # a task that asks only one of the two questions is still said to
    other = sig[sig.task == "tw"].assign(task="qa")
    other = other[~((other.role == "primary") & (other.b == "u_ensemble"))]
    assert "Across tasks, `rl_kd` v `u_ensemble`: `better` on `tw` (+1.5); not asked on every task." in agreement(
        pd.concat([sig[sig.task == "tw"], other]), "u_ensemble"
    )
    # at one seed every task says "not tested": that is not agreement
    untested = sig.assign(verdict="not tested (one seed)")
    assert agreement(untested, "u_ensemble")[2] == (
        "Across tasks, KD's premise (the best fixed-weight KD on dev v `ce`): `not tested (one seed)` on `rt` (+1.1), "
        "`not tested (one seed)` on `tw` (-2.0); no task has tested it yet."
    )


def test_the_verdict_quotes_where_the_decision_was_declared_and_only_when_told():
    from analysis.settings import Analysis
    from analysis.verdict import read_verdict

    sig = pd.DataFrame(
        [dict(task="rt", role="premise", family=None, a="u_ensemble", b="ce", diff=0.011, ci_low=0.003,
              ci_high=0.019, p=0.02, p_adjusted=0.02, seeds=8, mdd=0.012, mdd_upper=0.022, verdict="better")]
    )  # fmt: skip
    said = "The 8 seeds were chosen after numbers had been seen."
    quoted = read_verdict(sig, Analysis(references=["rl_kd"], declared=said))
    assert quoted.startswith("On `rt`, KD's premise, `u_ensemble` (the best fixed-weight KD on dev) - `ce`: +1.1")
    assert f"**better**. {said} Each comparison is a t test" in quoted
    assert "chosen after" not in read_verdict(sig, Analysis(references=["rl_kd"]))
    with pytest.raises(ValueError, match="declared"):
        Analysis(references=["rl_kd"], declared="x" * 601)


def test_the_papers_table1_is_called_the_same_finding_only_where_ours_is_better():
    from analysis.settings import Analysis
    from analysis.verdict import verdict_sentences

    def said(verdict: str, diff: float) -> str:
        t = pd.DataFrame(
            [dict(task="qa", role="table1", family=None, a="single_minilm_l3", b="single_minilm_l6", diff=diff,
                  ci_low=diff - 0.02, ci_high=diff + 0.02, p=0.03, p_adjusted=0.03, seeds=16, mdd=0.03,
                  mdd_upper=0.05, verdict=verdict)]
        )  # fmt: skip
        (sentence,) = verdict_sentences("qa", t, Analysis(references=["rl_kd"]))
        return sentence

    assert "**better**. The paper's Table 1 found the same kind of thing: BERT_3 learns better" in said("better", 0.025)
    # qa's 13-seed interim: the student chosen on dev worse on test than the strongest teacher's
    worse = said("worse", -0.028)
    assert "same kind of thing" not in worse
    assert "a weaker teacher can give the stronger student: BERT_3" in worse
    assert worse.endswith("(88.5 / 86.8, student 73.0 / 71.9); not shown here.")
    assert "same kind of thing" not in said("equivalent (within ±1 pp)", 0.004)
