"""`python -m orchestration.study`: its parameters and how a rerun picks up the committed seeds.

The study itself (hours) is not run here; docs/study.md has its measured time. Its resume on a fresh clone: the
committed runs go into an empty DVC cache and a job restores them (a tiny DVC project, seconds).
"""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from orchestration import dvc_api, study, study_report, study_runs
from pipeline import methods
from pipeline.params_file import InputError
from tests.conftest import ROOT


def test_study_keys_go_over_the_defaults_section_by_section():
    base = {"seed": 0, "run": {"methods": ["ce"], "seeds": [1, 2], "tasks": ["rt"]}, "distill": {"alpha": 0.5}}
    over = {"run": {"methods": ["ce", "u_ensemble"], "seeds": [1, 2, 3]}}
    assert study.merged(base, over) == {
        "seed": 0,
        "run": {"methods": ["ce", "u_ensemble"], "seeds": [1, 2, 3], "tasks": ["rt"]},
        "distill": {"alpha": 0.5},
    }
    assert base["run"]["seeds"] == [1, 2]  # the defaults are not changed


def test_the_study_runs_every_method_of_the_suite_over_at_least_the_defaults_seeds():
    params = study.study_params(ROOT / "params.yaml", ROOT / "params-study.yaml")
    default = yaml.safe_load((ROOT / "params.yaml").read_text())
    # every section of params.yaml's methods: is a row: the files of the stage distill, the agents of the stage agent
    agents = {m for m in default["methods"] if methods.load(m, default["methods"]).stage == "agent"}
    assert set(params["run"]["methods"]) == set(default["methods"]) - agents
    assert set(params["run"]["agents"]) == agents
    assert set(params["run"]["single"]) == set(params["run"]["drop"]) == set(default["run"]["teachers"])
    assert params["run"]["seeds"][: len(default["run"]["seeds"])] == default["run"]["seeds"]
    assert params["distill"] == default["distill"]  # the default's runs are the study's first seeds


def test_a_study_without_seeds_is_refused(tmp_path):
    (tmp_path / "params-study.yaml").write_text("run:\n  seeds: []\n")
    with pytest.raises(InputError, match="params-study.yaml: run.seeds is empty"):
        study.study_params(ROOT / "params.yaml", tmp_path / "params-study.yaml")


def test_a_rerun_puts_the_committed_seeds_back(tmp_path):
    out, work = tmp_path / "results" / "study", tmp_path / "work"
    work.mkdir()
    assert study.restore(out, work) == 0  # nothing committed yet: start from the first seed
    (out / "runs" / "rt-ce-1").mkdir(parents=True)
    (out / "runs" / "rt-ce-1" / "metrics.json").write_text("{}")
    (out / "dvc.lock").write_text("schema: '2.0'\n")
    (out / "progress.json").write_text(json.dumps({"seeds_done": [1, 2], "seconds": {"1": 60, "2": 61}}))
    assert study.restore(out, work) == 2
    assert (work / "runs" / "rt-ce-1" / "metrics.json").read_text() == "{}"
    assert (work / "dvc.lock").read_text() == "schema: '2.0'\n"


def test_an_export_killed_between_its_two_renames_is_put_back(tmp_path):
    """Killed after the last export moved out of the way (`.study.old-PID`) and before the new one (a complete or
    half-written `.study.partial-PID`) moved in: the next study starts from the last complete export."""
    out = tmp_path / "results" / "study"
    old = out.with_name(".study.old-4194305")  # above Linux's largest process id: a process that has ended
    (old / "runs").mkdir(parents=True)
    (old / "dvc.lock").write_text("schema: '2.0'\n")
    (old / "progress.json").write_text(json.dumps({"seeds_done": [1], "seconds": {"1": 60}}))
    out.with_name(".study.partial-4194305").mkdir()
    assert study.restore(out, tmp_path / "work") == 1
    assert (out / "progress.json").exists() and not old.exists()


STAGES = """stages:
  distill:
    foreach: [1, 2]
    do:
      cmd: >-
        python -c "import pathlib; pathlib.Path('out/${item}').write_text('run ${item}');
        pathlib.Path('out/${item}.json').write_text('{}')"
      deps:
        - code.py
      outs:
        - out/${item}
      metrics:  # as a run's metrics.json: kept out of DVC's cache (git has it)
        - out/${item}.json:
            cache: false
  analyze:
    cmd: python -c "import pathlib; pathlib.Path('report').write_text('both')"
    deps:
      - out
    outs:
      - report
"""


def test_committed_runs_go_into_an_empty_cache_and_jobs_restore_them(tmp_path):
    # a finished workspace: its outputs and dvc.lock, as git (results/study/) carries them to a fresh clone
    done = tmp_path / "done"
    (done / "out").mkdir(parents=True)
    dvc_api.dvc("init", "--no-scm", cwd=done)
    (done / "dvc.yaml").write_text(STAGES)
    (done / "code.py").write_text("# the runs' code")
    dvc_api.dvc("repro", cwd=done)
    clone = tmp_path / "clone"  # the outputs and dvc.lock without DVC's cache
    shutil.copytree(done, clone, ignore=shutil.ignore_patterns("cache", "tmp"))
    (clone / "code.py").write_text("# the runs' code, edited since")  # the runs stay stale: DVC runs them again
    dvc_api.commit_current(clone, ("distill",))
    assert dvc_api.stale(clone) == {"distill@1", "distill@2", "analyze"}
    (clone / "code.py").write_text("# the runs' code")  # back to the committed code: both current
    dvc_api.commit_current(clone, ("distill",))
    assert dvc_api.stale(clone) == {"analyze"}  # the kinds asked for only: analyze's report is not in the cache
    job = tmp_path / "job"  # a job's copy: no outputs, the stages forgotten from its lock
    shutil.copytree(clone, job, ignore=shutil.ignore_patterns("out", "cache", "tmp"))
    (job / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {clone / '.dvc' / 'cache'}\n")
    (job / "out").mkdir()
    dvc_api.forget(job / "dvc.lock", ["distill@1", "distill@2"])
    out = dvc_api.dvc("repro", "distill@1", "distill@2", cwd=job)
    assert sorted(dvc_api.RESTORED.findall(out)) == ["distill@1", "distill@2"] and not dvc_api.RAN.findall(out), out
    assert (job / "out" / "2").read_text() == "run 2" and (job / "out" / "2.json").read_text() == "{}"


CARRIED = """stages:
  distill:
    foreach: [1, 2]
    do:
      cmd: >-
        python -c "import pathlib; pathlib.Path('out/${item}').write_text(pathlib.Path('code.py').read_text()[:6])"
      deps:
        - code.py
        - helper.py
      outs:
        - out/${item}
"""


def test_a_code_edit_that_changes_no_output_carries_the_committed_runs(tmp_path):
    """`--carry`: committed runs whose only change is a carried file's hash stay current once a rerun of each
    shows the same bytes; an edit that changes an output is refused, naming it, and carries nothing."""
    done = tmp_path / "done"
    (done / "out").mkdir(parents=True)
    dvc_api.dvc("init", "--no-scm", cwd=done)
    (done / "dvc.yaml").write_text(CARRIED)
    (done / "code.py").write_text("run = 1  # the runs' code")
    (done / "helper.py").write_text("# a module the runs import")
    dvc_api.dvc("repro", cwd=done)
    (done / "code.py").write_text("run = 1  # the runs' code, its comment edited")  # the outputs: 'run = '
    (done / "helper.py").write_text("# a module the runs import, edited")
    assert dvc_api.stale(done) == {"distill@1", "distill@2"}
    study_runs.carry(done, ("distill",), ["helper.py"])  # code.py changed too and is not carried: nothing is
    assert dvc_api.stale(done) == {"distill@1", "distill@2"}
    study_runs.carry(done, ("distill",), ["code.py", "helper.py"])
    assert dvc_api.stale(done) == set() and (done / "out" / "2").read_text() == "run = "
    (done / "code.py").write_text("runs = 2")  # the outputs change: 'runs ='
    with pytest.raises(InputError, match=r"changes \['out/1', 'out/2'\].*not carried"):
        study_runs.carry(done, ("distill",), ["code.py"])
    # the committed files are put back, and the runs left for DVC to run again
    assert (done / "out" / "1").read_text() == "run = " and dvc_api.stale(done) == {"distill@1", "distill@2"}


def test_each_round_adds_step_seeds_from_the_first_not_committed():
    assert study.steps(5, 1, 0) == [1, 2, 3, 4, 5]
    assert study.steps(5, 1, 3) == [4, 5]
    assert study.steps(16, 4, 5) == [9, 13, 16]  # a rerun after 5 committed: 4 more at a time, the rest last
    assert study.steps(5, 2, 5) == [5]  # all done: the last round again, for the analysis of the latest code


def test_the_curve_puts_each_rounds_power_beside_its_hours(tmp_path):
    progress = {"seconds": {"1": 600, "2": 660, "3,4": 1200}, "curve": [{"seeds": 2, "hours": 9.0, "comparisons": []}]}
    comparison = {"task": "rt", "diff": -0.0017, "ci_low": -0.0206, "ci_high": 0.0171, "mdd": 0.0253, "p": 0.8}
    metrics = {
        "comparisons": [
            {**comparison, "a": "rl_kd", "b": "u_ensemble", "role": "primary", "mdd_upper": 0.0599},
            {**comparison, "a": "u_ensemble", "b": "ce", "role": "premise", "mdd_upper": 0.049},
            {**comparison, "a": "rl_kd", "b": "ce", "role": "secondary", "mdd_upper": 0.05},
        ]
    }
    points = study_report.curve(progress, [1, 2, 3, 4, 5], 2, metrics)
    assert [p["seeds"] for p in points] == [2]  # the round's point replaces the old one of 2 seeds
    assert points[0]["hours"] == 0.35  # (600 + 660) s of seeds 1 and 2; seeds 3 and 4 came in a later round
    assert [c["role"] for c in points[0]["comparisons"]] == ["primary", "premise"]
    progress["curve"] = points
    points = study_report.curve(progress, [1, 2, 3, 4, 5], 4, metrics)
    assert [(p["seeds"], p["hours"]) for p in points] == [(2, 0.35), (4, 0.683)]  # 2,460 s
    study_report.write_curve(points, tmp_path)
    table = (tmp_path / "curve.md").read_text()
    assert "| 4 | 0.68 | rt | primary: rl_kd - u_ensemble | -0.17 [-2.06, +1.71] | 2.53 | 5.99 |" in table
    assert "| 2 | 0.35 | rt | premise: u_ensemble - ce | -0.17 [-2.06, +1.71] | 2.53 | 4.90 |" in table
    assert (tmp_path / "figures" / "curve.png").stat().st_size > 0
    one = {"seeds": 1, "hours": 0.1, "comparisons": [{**points[0]["comparisons"][0], "ci_low": None, "ci_high": None}]}
    one["comparisons"][0].update(mdd=None, mdd_upper=None)  # one seed: no variance, no interval, no power
    study_report.write_curve([one, *points], tmp_path)
    assert (
        "| 1 | 0.10 | rt | primary: rl_kd - u_ensemble | -0.17 [n/a, n/a] | n/a | n/a |"
        in (tmp_path / "curve.md").read_text()
    )


def test_the_curve_draws_a_line_per_question_though_the_strongest_baseline_changes():
    c = lambda role, a, b: {"task": "qa", "role": role, "a": a, "b": b}  # noqa: E731
    round_ = [
        c("primary", "rl_kd", "w_ensemble_dev"),
        c("primary", "rl_kd", "u_ensemble"),
        c("primary", "effect_agent", "u_ensemble"),  # the strongest on dev is the declared baseline: one comparison
        c("premise", "lr_ensemble", "ce"),
    ]
    assert [label for label, _ in study_report.questions(round_)] == [
        "rl_kd - strongest on dev",
        "rl_kd - u_ensemble",
        "effect_agent - strongest on dev",
        "effect_agent - u_ensemble",
        "KD's premise: best fixed-weight KD - ce",
    ]
    # a later round chose another strongest baseline and another best fixed-weight KD: the same lines
    later = [
        c("primary", "rl_kd", "single_mpnet"),
        c("primary", "rl_kd", "u_ensemble"),
        c("premise", "u_ensemble", "ce"),
    ]
    assert [label for label, _ in study_report.questions(later)] == [
        "rl_kd - strongest on dev",
        "rl_kd - u_ensemble",
        "KD's premise: best fixed-weight KD - ce",
    ]


def test_readme_quotes_the_studys_findings_between_its_markers(tmp_path):
    readme = tmp_path / "README.md"
    start, end = study_report.FINDINGS
    readme.write_text(f"# Suite\n\n## What it finds\n\n{start}\nold text\n{end}\n\nMore.\n")
    progress = {"seeds_done": [1, 2, 3], "command": "python -m orchestration.study"}
    study_report.write_findings(readme, progress, {"findings": ["KD helps: +1.1 points.", "RL-KD: -0.5 points."]})
    text = readme.read_text()
    assert "old text" not in text and text.endswith(f"{study_report.FINDINGS[1]}\n\nMore.\n")
    assert "The study at 3 seeds" in text and "- KD helps: +1.1 points.\n- RL-KD: -0.5 points.\n" in text
    readme.write_text("# Suite without markers\n")
    with pytest.raises(InputError, match="markers"):
        study_report.write_findings(readme, progress, {"findings": []})


def export_of(folder: Path, seeds: list[int], findings: list[str], tasks: list[str]) -> None:
    """A results folder as a round exports it: report, metrics with findings, progress, params."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.md").write_text(f"report at {len(seeds)} seeds")
    (folder / "metrics.json").write_text(json.dumps({"findings": findings}))
    (folder / "progress.json").write_text(json.dumps({"seeds_done": seeds, "rows": ["ce"], "tasks": tasks}))
    (folder / "params.yaml").write_text(yaml.safe_dump({"run": {"tasks": tasks, "methods": ["ce"]}}))


def test_a_widened_study_keeps_quoting_its_earlier_verdict_until_it_has_as_many_seeds(tmp_path):
    out, work = tmp_path / "study", tmp_path / "work"
    export_of(out, [1, 2, 3], ["On `rt`, KD helps: +1.1 points."], ["rt"])
    study.keep_earlier(out)  # `tw` added: the 3-seed verdict is kept
    assert (out / "earlier" / "report.md").read_text() == "report at 3 seeds"
    export_of(out / "earlier", [1, 2, 3, 4], ["other"], ["rt"])  # not replaced by a second widening
    study.keep_earlier(out)
    assert (out / "earlier" / "report.md").read_text() == "report at 4 seeds"

    export_of(work / "results", [1], ["On `tw`, KD helps: +0.2 points."], ["rt", "tw"])
    (work / "runs").mkdir()
    (work / "dvc.lock").write_text("schema: '2.0'\n")
    (work / "params.yaml").write_text("run: {}\n")
    progress = {"seeds_done": [1], "rows": ["ce"], "tasks": ["rt", "tw"], "curve": [], "seconds": {}}
    study.export(work, out, progress)
    assert (out / "earlier" / "report.md").read_text() == "report at 4 seeds"  # carried through the export
    kept = study.earlier_verdict(out, progress)
    assert kept["findings"] == ["other"] and kept["tasks"] == ["rt"]

    readme = tmp_path / "README.md"
    start, end = study_report.FINDINGS
    readme.write_text(f"# Suite\n\n{start}\nold\n{end}\n")
    progress["command"] = "python -m orchestration.study"
    study_report.write_findings(readme, progress, {"findings": ["On `tw`, KD helps: +0.2 points."]}, kept)
    link = "[results/study/report.md](results/study/report.md#verdict), written by `python -m orchestration.study`"
    assert readme.read_text() == (
        f"# Suite\n\n{start}\nThe study at 4 seeds, before `tw` joined it ([results/study/earlier/report.md]"
        "(results/study/earlier/report.md#verdict)):\n\n- other\n\nWith `tw` the study runs again from the first "
        f"seed, the earlier runs restored at each: 1 seed so far ({link}).\n{end}\n"
    )
    # caught up: the export drops the earlier verdict, and README quotes the study's own
    progress["seeds_done"] = [1, 2, 3, 4]
    assert study.earlier_verdict(out, progress) is None
    study.export(work, out, progress)
    assert not (out / "earlier").exists()


def test_the_studys_rows_are_its_run_lists_with_the_families_named():
    params = {"run": {"methods": ["ce"], "single": ["a", "b"], "drop": ["a"], "agents": ["rl_kd", "x"]}}
    assert study.study_rows(params) == ["ce", "single_a", "single_b", "drop_a", "rl_kd", "x"]
    # a study committed before the agents had a list of their own: its rows are those its params.yaml names
    assert study.study_rows({"run": {"methods": ["ce"], "single": ["a"]}}) == ["ce", "single_a"]


def test_rows_or_tasks_added_start_the_seeds_again_and_keep_the_earlier_record():
    committed = {"run": {"tasks": ["rt"], "methods": ["ce", "u_ensemble"], "seeds": [1, 2]}}
    progress = {"rows": ["ce", "u_ensemble"], "seeds_done": [1, 2], "seconds": {"1": 60, "2": 70}, "commit": "abc"}
    same = dict(progress)
    assert study.widened(same, ["ce", "u_ensemble"], ["rt"], committed) == [] and same == progress
    assert study.widened(dict(progress), ["ce"], ["rt"], committed) == []  # a row dropped: nothing to run again
    assert study.widened(dict(progress), ["ce"], ["rt"], None) == []  # no committed round yet

    added = study.widened(progress, ["ce", "u_ensemble", "rl_kd"], ["rt", "tw"], committed)
    assert added == ["rl_kd", "task tw"]
    assert progress == {
        "commit": "abc",
        "earlier": [
            {"rows": ["ce", "u_ensemble"], "tasks": ["rt"], "seeds_done": [1, 2], "seconds": {"1": 60, "2": 70}}
        ],
        "seeds_done": [],
        "seconds": {},
    }
    # a study from before progress.json named its tasks: those of its params.yaml
    old = {"rows": ["ce"], "seeds_done": [1], "seconds": {}, "earlier": [{"rows": ["ce"], "seeds_done": [1]}]}
    assert study.widened(old, ["ce"], ["rt", "tw"], committed) == ["task tw"] and len(old["earlier"]) == 2
