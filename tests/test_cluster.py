"""`python -m orchestration.cluster`: stages in dependency waves (SLURM) or a pool of local workers through
submitit, results back through DVC.

The end-to-end test runs the tiny profile through submitit's local executor with two workers, one killed
after its first student stage, and checks the result against a single-machine `dvc repro`.
"""

import dataclasses
import os
import re
import shutil
import signal
import sys
import time

import cloudpickle
import pytest
import yaml

from orchestration import cluster, dvc_api, plan, pool
from orchestration import stages as kinds
from pipeline import schema as P
from tests.conftest import ROOT, outputs, run, tiny_cluster_repo, write_params

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the local executor's jobs unpickle KilledOnce


def test_every_stage_runs_after_the_stages_it_depends_on(tmp_path):
    """DVC's own graph of this repository's dvc.yaml against the waves: upstream is in an earlier wave."""
    from dvc.repo import Repo

    for name in ("dvc.yaml", "params.yaml"):  # without dvc.lock: only the stages' dependencies matter
        shutil.copy(ROOT / name, tmp_path)
    assert run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], tmp_path).returncode == 0
    with Repo(str(tmp_path)) as repo:
        graph = repo.index.graph  # edges: stage -> a stage it depends on
        names = [s.name for s in repo.index.stages]
        wave_of = {s: n for n, wave in enumerate(kinds.waves(names)) for group in wave.values() for s in group}
        wave_of["assets"] = -1  # runs on the submitting machine first
        pairs = [(a.name, b.name) for a, b in graph.edges]
    assert pairs and set(wave_of) == set(names)
    late = [(a, b) for a, b in pairs if wave_of[b] >= wave_of[a]]
    assert late == []


def test_a_stage_kind_without_a_wave_is_refused():
    with pytest.raises(P.InputError, match=r"stage kind\(s\) \['export'\] have no wave"):
        kinds.waves(["prepare@rt", "export@rt"])


def test_shares_deal_stages_round_robin():
    assert kinds.shares(list("abcde"), 2) == [["a", "c", "e"], ["b", "d"]]
    assert kinds.shares(list("ab"), 5) == [["a"], ["b"]]
    assert kinds.shares(list("abc"), 1) == [["a", "b", "c"]]


def test_the_pool_takes_ready_stages_longest_kinds_first(tmp_path):
    """A hand-made graph: prepare -> finetune a, b -> cache a -> agent, distill (both need cache a and b)."""
    stages = ["prepare@t", "finetune@t-a", "finetune@t-b", "cache@t-a", "distill@t-ce-1", "agent@t-rl_kd-1"]
    needs = {
        "prepare@t": [],
        "finetune@t-a": ["prepare@t"],
        "finetune@t-b": ["prepare@t"],
        "cache@t-a": ["finetune@t-a", "prepare@t"],
        "distill@t-ce-1": ["cache@t-a", "finetune@t-a", "finetune@t-b", "prepare@t"],
        "agent@t-rl_kd-1": ["cache@t-a", "finetune@t-a", "finetune@t-b", "prepare@t"],
    }
    q = pool.StageQueue.create(tmp_path / "queue.json", stages, needs)
    assert q.read()["pending"] == [
        "finetune@t-a",
        "finetune@t-b",
        "agent@t-rl_kd-1",
        "cache@t-a",
        "distill@t-ce-1",
        "prepare@t",
    ]
    assert q.take("w0") == "prepare@t"  # the only stage with nothing upstream
    assert q.take("w1") == pool.WAIT  # the rest needs it
    q.finish("prepare@t", {})
    assert (q.take("w1"), q.take("w0")) == ("finetune@t-a", "finetune@t-b")
    q.finish("finetune@t-a", {})
    assert q.take("w1") == "cache@t-a"  # finetune b still runs: cache a need not wait for it
    assert q.held_by("w1") == ["cache@t-a"]
    assert q.release("cache@t-a", "boom", retries=1) is True  # back at the head of the queue
    assert q.take("w1") == "cache@t-a"
    assert q.release("cache@t-a", "boom again", retries=1) is False
    assert q.read()["failed"] == {"cache@t-a": "boom again"}
    assert q.take("w1") is None  # the students need the failed cache: nothing left that can run


class InProcess:
    """A submitit job that ran when submitted: done, with its result or its error."""

    def __init__(self, worker):
        self.result_, self.error = None, None
        try:
            self.result_ = worker()
        except Exception as err:
            self.error = err

    def done(self):
        return True

    def result(self):
        if self.error:
            raise self.error
        return self.result_

    def cancel(self, check=True):
        pass


@dataclasses.dataclass
class FakeWorker(pool.PoolWorker):
    """Takes stages from the queue and marks them done, without DVC; worker-0's first attempt is lost while
    holding its first stage; `fails` fails every time."""

    fails: str = "cache@t-a"

    def __call__(self):
        q = pool.StageQueue(self.queue)
        while (stage := q.take(self.name)) not in (None, pool.WAIT):  # in process: nothing runs beside it
            if self.name == "worker-0" and self.attempt == 0:
                raise RuntimeError("node lost")
            if stage == self.fails:
                q.release(stage, "DVC's output\nerror: boom", self.retries)  # the last line goes in the error
                continue
            q.finish(stage, {"worker": self.name, "attempt": self.attempt, "ran": [stage], "seconds": 1})
        return {"job": self.name, "attempt": self.attempt}


@dataclasses.dataclass
class HealthyWorker(FakeWorker):
    fails: str = ""


def test_the_pool_replaces_a_lost_worker_and_gives_up_on_a_failing_stage(tmp_path):
    stages = ["prepare@t", "finetune@t-a", "finetune@t-b", "cache@t-a", "cache@t-b", "distill@t-ce-1"]
    needs = {
        "prepare@t": [],
        "finetune@t-a": ["prepare@t"],
        "finetune@t-b": ["prepare@t"],
        "cache@t-a": ["finetune@t-a", "prepare@t"],
        "cache@t-b": ["finetune@t-b", "prepare@t"],
        "distill@t-ce-1": ["cache@t-a", "cache@t-b", "finetune@t-a", "finetune@t-b", "prepare@t"],
    }
    submit = lambda workers: [InProcess(w) for w in workers]  # noqa: E731
    failed = r"stage\(s\) \['cache@t-a'\] failed 2 times, 1 left undone; the last error: error: boom; the logs"
    with pytest.raises(kinds.WaveFailed, match=failed):
        pool.run_pool(stages, needs, 2, submit, 1, tmp_path, tmp_path, FakeWorker, poll=0)
    state = pool.StageQueue(tmp_path / "queue.json").read()
    # worker-0 was lost holding prepare: prepare went back, once (tries 1 of retries 1), and a new worker-0 ran it
    assert state["tries"] == {"prepare@t": 1, "cache@t-a": 2}
    assert [state["done"]["prepare@t"][k] for k in ("worker", "attempt")] == ["worker-0", 1]
    assert sorted(state["done"]) == ["cache@t-b", "finetune@t-a", "finetune@t-b", "prepare@t"]
    assert state["pending"] == ["distill@t-ce-1"]  # blocked by the failed cache, never started

    done = pool.run_pool(stages, needs, 2, submit, 1, tmp_path, tmp_path / "ok", HealthyWorker, poll=0)
    assert sorted(done["done"]) == sorted(stages) and done["failed"] == {}
    assert [j["job"] for j in done["jobs"] if "failed" in j] == ["worker-0"]


class Running:
    """A submitit job that runs until stopped. Its first poll is when the driver gets `signum`; it gets it again
    while the job is being stopped."""

    def __init__(self, signum):
        self.signum, self.cancelled = signum, False

    def done(self):
        os.kill(os.getpid(), self.signum)
        return False

    def cancel(self, check=True):
        os.kill(os.getpid(), self.signum)  # a second Ctrl-C, or a supervisor's second SIGTERM
        self.cancelled = True


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_stops_every_local_worker_even_when_it_comes_again(tmp_path, signum):
    def not_caught(*_):
        pytest.fail(f"{signal.Signals(signum).name} reached the process, not the pool")

    jobs = []
    submit = lambda workers: jobs.extend(Running(signum) for _ in workers) or jobs[-len(workers) :]  # noqa: E731
    before = signal.signal(signum, not_caught)  # by default SIGTERM or SIGHUP would end pytest itself
    try:
        with pytest.raises(pool.Stopped, match=signal.Signals(signum).name):
            pool.run_pool(["prepare@t"], {"prepare@t": []}, 2, submit, 1, tmp_path, tmp_path, HealthyWorker, poll=0)
        assert [job.cancelled for job in jobs] == [True, True]  # no worker left running unwatched
        assert signal.getsignal(signum) is not_caught  # outside the pool, the signal is as it was
    finally:
        signal.signal(signum, before)


def holds_a_child(pid_file):
    """A local job that starts a process (as a worker starts `dvc repro`) and waits on it."""
    import subprocess

    child = subprocess.Popen(["sleep", "300"])
    pid_file.with_suffix(".tmp").write_text(str(child.pid))
    pid_file.with_suffix(".tmp").rename(pid_file)  # whole, or not there yet
    child.wait()


@pytest.mark.slow
def test_a_stopped_local_worker_leaves_no_process_behind(tmp_path):
    import psutil
    import submitit

    def gone(pid):
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    ex = submitit.AutoExecutor(folder=tmp_path / "logs", cluster="local")
    job = ex.submit(holds_a_child, tmp_path / "child")
    controller = int(job.job_id)
    try:
        for _ in range(600):  # its start: an interpreter and the pickle, a few seconds
            if (tmp_path / "child").exists():
                break
            time.sleep(0.05)
        child = int((tmp_path / "child").read_text())
        pool.stop([job])
        assert gone(controller) and gone(child)  # not left to run on, orphaned, as after SIGTERM or SIGINT
    finally:
        for proc in pool.processes(controller):
            proc.kill()


def test_forget_drops_only_the_named_lock_entries(tmp_path):
    lock = tmp_path / "dvc.lock"
    dvc_api.forget(lock, ["a"])  # no lock yet: nothing to do
    assert not lock.exists()
    lock.write_text("schema: '2.0'\nstages:\n  a:\n    cmd: x\n  b:\n    cmd: y\n")
    dvc_api.forget(lock, ["a", "c"])
    assert yaml.safe_load(lock.read_text()) == {"schema": "2.0", "stages": {"b": {"cmd": "y"}}}


def test_keep_only_drops_every_other_lock_entry(tmp_path):
    lock = tmp_path / "dvc.lock"
    lock.write_text("schema: '2.0'\nstages:\n  a:\n    cmd: x\n  b:\n    cmd: y\n  c:\n    cmd: z\n")
    dvc_api.keep_only(lock, ["b", "d"])
    assert yaml.safe_load(lock.read_text()) == {"schema": "2.0", "stages": {"b": {"cmd": "y"}}}


def test_the_pool_knows_what_each_stage_waits_for(tmp_path):
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path)
    assert run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], tmp_path).returncode == 0
    todo = ["prepare@rt", "finetune@rt-mpnet", "cache@rt-mpnet", "latency@rt", "distill@rt-ce-1"]
    due = dvc_api.todo(tmp_path)  # nothing has run here: every stage is to do, and reads none that is done
    assert due.inputs(todo) == []
    needs = {s: [n for n in due.needs[s] if n in todo] for s in todo}
    assert needs["prepare@rt"] == [] and needs["cache@rt-mpnet"] == ["finetune@rt-mpnet", "prepare@rt"]
    # a student needs every teacher's cache; of those stages, only MPNet's are still to run here
    assert needs["distill@rt-ce-1"] == ["cache@rt-mpnet", "finetune@rt-mpnet", "prepare@rt"]
    assert needs["latency@rt"] == ["finetune@rt-mpnet", "prepare@rt"]  # it times the teachers, not the students


def test_only_some_kinds_keeps_the_stages_they_need():
    above = {  # a toy graph: prepare <- finetune <- cache <- distill; latency reads the teacher alone
        "prepare@rt": set(),
        "finetune@rt-a": {"prepare@rt"},
        "cache@rt-a": {"prepare@rt", "finetune@rt-a"},
        "latency@rt": {"prepare@rt", "finetune@rt-a"},
        "distill@rt-ce-1": {"prepare@rt", "finetune@rt-a", "cache@rt-a"},
    }
    due = dvc_api.Todo(list(above), {s: sorted(up) for s, up in above.items()}, above)
    only = due.only({"cache", "latency"})
    assert only.stages == ["prepare@rt", "finetune@rt-a", "cache@rt-a", "latency@rt"]  # no student
    assert only.needs["cache@rt-a"] == ["finetune@rt-a", "prepare@rt"]
    # a stage already done is not to do: the teacher restored, only its cache is left
    done = dvc_api.Todo(["cache@rt-a", "distill@rt-ce-1"], {"cache@rt-a": [], "distill@rt-ce-1": ["cache@rt-a"]}, above)
    assert done.only({"finetune", "cache"}).stages == ["cache@rt-a"]
    assert due.only({"analyze"}).stages == []


def test_only_an_unknown_kind_is_refused_before_anything_runs(capsys):
    with pytest.raises(SystemExit) as exit_:
        cluster.main(["--executor", "local", "--only", "finetune", "teachers"])
    assert exit_.value.code == 2
    assert "--only: ['teachers'] is no stage kind; the kinds: prepare, finetune, cache" in capsys.readouterr().err


def test_a_stage_runs_on_compute_threads():
    import torch

    from pipeline import compute

    before = torch.get_num_threads()
    try:
        compute.pin_threads(P.Compute(threads=1))
        assert torch.get_num_threads() == 1
        compute.pin_threads(P.Compute(threads=None))  # torch's own: left as it is
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_bad_cluster_params_are_refused(tmp_path):
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    for bad, message in (
        ({"jobs": {"train": {"gpus": 1}}}, "cluster.jobs.train"),
        ({"jobs": {"distill": {"gpus": -1}}}, "cluster.jobs.distill.gpus"),
        ({"retries": 11}, "cluster.retries"),
        ({"local_workers": 0}, "cluster.local_workers"),
    ):
        write_params(tmp_path, {**base, "cluster": bad})
        with pytest.raises(P.InputError, match=re.escape(message)):
            plan.check(tmp_path / "params.yaml")
    write_params(tmp_path, {**base, "cluster": {"jobs": {"finetune": {"gpus": 2}}}})
    jobs = cluster.settings(tmp_path / "params.yaml").jobs
    assert jobs["finetune"].gpus == 2 and jobs["cache"] == cluster.ClusterJob()  # a kind left out: the defaults


def test_plan_shows_the_waves_with_their_hours():
    """One task, one teacher, 1,000 examples/s for both: the hours worked out by hand."""

    def profile(agent: str, section: dict) -> P.Params:
        return P.Params.model_validate(
            {
                "run": {"tasks": ["t"], "teachers": ["a"], "methods": ["ce", "u_ensemble"], "agents": [agent]}
                | {"seeds": [1, 2]},
                "tasks": {"t": {"source": "rotten_tomatoes"}},
                "teachers": {"a": {"source": "random", "epochs": 2}},
                "distill": {"epochs": 3},
                "methods": {"ce": {}, "u_ensemble": {}, agent: section},
            }
        )

    sizes = {"train": 1000, "dev": 100, "test": 200}
    hours = plan.task_hours_by_kind(profile("rl_kd", {"warmup_epochs": 1, "pretrain_epochs": 3}), sizes, 1000, 1000)
    # teacher: 2 epochs x 3 passes x 1,000 + 2 x 100 dev + 200 test; cache: train and dev
    assert hours["finetune"] == pytest.approx((6000 + 200 + 200) / 1000 / 3600)
    assert hours["cache"] == pytest.approx(1100 / 1000 / 3600)
    # a student run: 3 epochs x 3 x 1,000 + 3 x 100 + 200 = 9,500; two methods, two seeds
    assert hours["distill"] == pytest.approx(4 * 9500 / 1000 / 3600)
    # the paper's RL-KD: the run, plus pre-training (3 x 3 x 1,000) and the reward's passes (3 x 1,000), two seeds
    assert hours["agent"] == pytest.approx(2 * (9500 + 9000 + 3000) / 1000 / 3600)
    # effect_agent with its guard: also the guard's equal-weights run of the 2 joint epochs (2 x (3 x 1,000 + 100))
    guarded = profile("effect_agent", {"warmup_epochs": 1, "guard": "equal_weights"})
    assert plan.task_hours_by_kind(guarded, sizes, 1000, 1000)["agent"] == pytest.approx(
        2 * (9500 + 9000 + 3000 + 6200) / 1000 / 3600
    )
    longest = {k: h / n for k, h, n in (("finetune", hours["finetune"], 1), ("distill", hours["distill"], 4))}
    lines = plan.wave_lines(
        cluster.Cluster().jobs,
        {"prepare": 1, "finetune": 1, "cache": 1, "latency": 1, "distill": 4, "agent": 2, "analyze": 1},
        hours,
        longest,
    )
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["2"][1:3] == ["finetune", "1"]
    assert rows["4"][1:9] == ["distill", "+", "single", "+", "drop", "+", "agent", "6"]
    assert float(rows["4"][-1]) == pytest.approx(hours["distill"] + hours["agent"], abs=0.05)


def test_the_paper_profile_plan_adds_its_waves_up_to_the_estimate():
    params, chosen, settings = plan.check(ROOT / "params-paper.yaml")
    lines, total = plan.plan(params, 500, 2000, chosen, settings)
    table = lines[lines.index(next(line for line in lines if line.startswith("wave "))) + 1 :]
    rows = [line.split() for line in table if line[:1].isdigit()]
    assert [r[0] for r in rows] == ["1", "2", "3", "4", "5"]
    assert sum(float(r[-1]) for r in rows) == pytest.approx(total, abs=0.3)
    assert not any("past their time limit" in line for line in lines)  # params-paper.yaml's limits fit


class KilledOnce(pool.PoolWorker):
    """A worker whose first attempt is killed (SIGKILL, as a node loss would) right after its first student
    stage, before it reports the stage done."""

    def repro(self, work, stage):
        out = super().repro(work, stage)
        if self.attempt == 0 and self.name == "worker-0" and dvc_api.kind(stage) in ("distill", "agent"):
            os.kill(os.getpid(), signal.SIGKILL)
        return out


@pytest.mark.cluster
def test_two_workers_and_a_killed_job_give_a_single_machine_result(tmp_path, monkeypatch):
    reference = tiny_cluster_repo(tmp_path / "reference")
    done = run([sys.executable, "-m", "dvc", "repro"], reference)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    repo = tiny_cluster_repo(tmp_path / "repo")
    # as on a fresh clone: a committed dvc.lock that names outputs (metrics with another run's timings) this
    # cache lacks; DVC would run such a stage again in every job that needs it rather than use the run-cache
    shutil.copy(reference / "dvc.lock", repo / "dvc.lock")
    monkeypatch.chdir(repo)
    monkeypatch.setenv("PATH", f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")
    summary = cluster.run(cluster.settings("params.yaml"), "local", worker_class=KilledOnce)

    jobs, done = summary["pool"]["jobs"], summary["pool"]["done"]
    killed = [job for job in jobs if "failed" in job]
    assert [(j["job"], j["attempt"]) for j in killed] == [("worker-0", 0)]
    (lost,) = summary["pool"]["tries"]  # the stage worker-0 had finished but not reported
    assert dvc_api.kind(lost) in ("distill", "agent") and done[lost]["ran"] == []  # restored, not redone
    ran = [s for record in done.values() for s in record["ran"]]
    assert sorted(ran) == sorted(set(done) - {lost})  # every other stage ran once, in its own worker's call
    assert summary["pool"]["failed"] == {} and summary["pool"]["pending"] == []
    assert "analyze" not in done  # the analysis runs here, where every run is checked out already
    assert summary["final_repro"]["ran"] == ["analyze"]  # the rest comes back from the run-cache
    assert sorted(summary["final_repro"]["restored"]) == sorted(done)
    status = run([sys.executable, "-m", "dvc", "status"], repo)
    assert "up to date" in status.stdout, status.stdout

    mine, theirs = outputs(repo), outputs(reference)
    assert sorted(mine) == sorted(theirs)
    assert [k for k in mine if mine[k] != theirs[k]] == []
    # one run to do again (its lock entry gone): a worker restores it from the run-cache, reading a lock that holds
    # only the stages that run reads, not the other runs or the analysis
    one = "distill@reviews-ce-1"
    dvc_api.forget(repo / "dvc.lock", [one])
    redo = cluster.run(cluster.settings("params.yaml"), "local")
    assert sorted(redo["pool"]["done"]) == [one] and redo["pool"]["done"][one]["ran"] == []
    assert redo["final_repro"] == {"ran": ["analyze"], "restored": [one]}  # analyze reads the restored run's files
    snapshot_lock = yaml.safe_load((repo / ".dvc/tmp/cluster/snapshot/dvc.lock").read_text())["stages"]
    teachers = [f"{k}@reviews-{t}" for k in ("finetune", "cache") for t in ("tiny_a", "tiny_b")]
    assert sorted(snapshot_lock) == sorted(["assets", "prepare@reviews", *teachers])
    again = cluster.run(cluster.settings("params.yaml"), "local")  # nothing stale: no worker, nothing runs
    assert "pool" not in again and again["final_repro"]["ran"] == []
