"""`python -m orchestration.cluster --executor local`: the stages on this machine's cores, each started as soon as
the stages it depends on are done.

Waves (orchestration.cluster, for SLURM) leave cores idle on one machine: a wave waits for its longest stage
(MPNet's fine-tuning) while the other workers have nothing to do, though the cache of a teacher that is
already trained could run. Here `cluster.local_workers` long-lived workers (submitit's local executor)
share one queue of stages, a JSON file under a lock: each worker takes the first stage whose upstream
stages are done, longest kinds first (stages.LONGEST_FIRST), runs `dvc repro STAGE` in its own copy of the
snapshot, and takes the next. As in a wave, DVC does the work: a stage's upstream outputs come back from
the run-cache, and a stage a killed worker had finished is restored, not run again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

from pipeline.io import atomic_path

from .dvc_api import RAN, DvcFailed, dvc, save_uncached
from .stages import WaveFailed, longest_first
from .workspace import attempt_workspace

WAIT = ""  # take(): nothing ready yet, but a running stage may make something ready


class StageQueue:
    """The pool's shared state in one JSON file: `pending` (in the order to take them), `needs` (each stage's
    upstream stages still to do), `running` (stage -> worker), `done` (stage -> record), `failed` (stage ->
    error) and `tries` (failed attempts of each stage). Every change happens under an exclusive lock."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    @classmethod
    def create(cls, path: Path, stages: list[str], needs: dict[str, list[str]]) -> StageQueue:
        queue = cls(path)
        queue.write(
            {"pending": longest_first(stages), "needs": needs, "running": {}, "done": {}, "failed": {}, "tries": {}}
        )
        return queue

    def write(self, state: dict) -> None:
        with atomic_path(self.path) as tmp:  # a refused write (a full disk) names the queue, and leaves it whole
            tmp.write_text(json.dumps(state, indent=1))

    def read(self) -> dict:
        return json.loads(self.path.read_text())

    @contextlib.contextmanager
    def state(self):
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self.read()
            yield state
            self.write(state)

    def take(self, worker: str) -> str | None:
        """The first pending stage whose upstream is done (now `running` on `worker`); WAIT if none is ready
        but one may become so; None when nothing is left that can run."""
        with self.state() as s:
            ready = next((st for st in s["pending"] if all(n in s["done"] for n in s["needs"][st])), None)
            if ready is not None:
                s["pending"].remove(ready)
                s["running"][ready] = worker
                return ready
            blocked = {st for st in s["pending"] if any(n in s["failed"] for n in s["needs"][st])}
            return WAIT if s["running"] and set(s["pending"]) - blocked else None

    def finish(self, stage: str, record: dict) -> None:
        with self.state() as s:
            s["running"].pop(stage, None)
            s["done"][stage] = record

    def release(self, stage: str, error: str, retries: int) -> bool:
        """A failed attempt: the stage goes back to the queue's head, or to `failed` after `retries` retries.
        True if it will be tried again."""
        with self.state() as s:
            s["running"].pop(stage, None)
            s["tries"][stage] = s["tries"].get(stage, 0) + 1
            if s["tries"][stage] > retries:
                s["failed"][stage] = error[-2000:]
                return False
            s["pending"].insert(0, stage)
            return True

    def held_by(self, worker: str) -> list[str]:
        return [stage for stage, w in self.read()["running"].items() if w == worker]


@dataclass
class PoolWorker:
    """One local worker: its own copy of the snapshot, and `dvc repro` of one stage after another from the
    queue until nothing is left. A stage that fails goes back to the queue (`retries` times); a killed worker
    is replaced by the pool, and its stage goes back too."""

    name: str
    queue: str
    snapshot: str
    folder: str
    retries: int
    attempt: int = 0

    def __call__(self) -> dict:
        start = time.perf_counter()
        work, log = attempt_workspace(self.snapshot, self.folder, self.name, self.attempt)
        queue = StageQueue(self.queue)
        for stage in queue.held_by(self.name):  # submitit restarted this worker in place: its stage goes back
            queue.release(stage, f"{self.name} restarted", self.retries)
        stages = []
        while (stage := queue.take(self.name)) is not None:
            if stage == WAIT:
                time.sleep(1)
                continue
            began = time.perf_counter()
            try:
                out = self.repro(work, stage)
                save_uncached(work, [stage])
            except DvcFailed as err:  # DVC or the stage failed: its output in the log, the stage re-queued
                with log.open("a") as f:
                    f.write(f"== {stage}: failed\n{err}\n")
                queue.release(stage, str(err), self.retries)
                continue
            with log.open("a") as f:
                f.write(f"== {stage}\n{out}\n")
            record = {
                "worker": self.name,
                "attempt": self.attempt,
                "ran": RAN.findall(out),  # the stage, unless restored; an upstream stage only if it was lost
                "seconds": round(time.perf_counter() - began, 1),
            }
            queue.finish(stage, record)
            stages.append(stage)
        shutil.rmtree(work)  # every output is in the cache now; the log stays beside it
        return {
            "job": self.name,
            "attempt": self.attempt,
            "stages": stages,
            "seconds": round(time.perf_counter() - start, 1),
        }

    def repro(self, work: Path, stage: str) -> str:
        return dvc("repro", stage, cwd=work)


def report(done: dict, said: set, total: int) -> set:
    """Print the stages done since the last report; return them."""
    for stage in [s for s in done if s not in said]:
        r = done[stage]
        how = "ran" if stage in r["ran"] else "restored"
        also = [s for s in r["ran"] if s != stage]
        print(
            f"cluster: {stage} {how} in {r['seconds']:.0f} s on {r['worker']} ({len(said) + 1} of {total})"
            + (f"; ran again upstream: {', '.join(also)}" if also else ""),
            flush=True,
        )
        said = said | {stage}
    return said


class Stopped(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP while the pool runs; its text names the signal."""


@contextlib.contextmanager
def stopped_as_ctrl_c():
    """Inside, SIGINT, SIGTERM and SIGHUP raise Stopped, so that the pool's `finally` stops its workers: by default
    SIGTERM and SIGHUP end the process at once and leave them running on, unwatched. A second signal while the workers
    are being stopped is ignored, so that the stopping finishes. Only around the pool: a `dvc` that the driver runs
    itself and a signal would interrupt (subprocess kills it and orphans its stage) ends by itself, as before."""

    def stop(signum, frame):
        for s in handlers:
            signal.signal(s, signal.SIG_IGN)
        raise Stopped(signal.Signals(signum).name)

    handlers = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)


def processes(pid: int) -> list[psutil.Process]:
    """A process and every descendant, each suspended as it is found, so that none starts another meanwhile."""
    found = {}
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(pid)
        while new := [p for p in [root, *root.children(recursive=True)] if p.pid not in found]:
            for proc in new:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.suspend()
                    found[proc.pid] = proc
    return list(found.values())


def stop(handles: list) -> None:
    """Stop the workers still running, with the `dvc repro` and the stage each started. Signals do not: submitit's
    worker ignores SIGTERM, and SIGINT (submitit's `cancel` of a local job) ends the worker but leaves its `dvc repro`
    and stage running on, orphaned. So a local job's processes are killed, its controller (whose process id is the
    job's id) and every descendant; a stage killed midway was not saved to the run-cache and runs again next time.
    A SLURM job is cancelled (scancel ends the job's processes)."""
    from submitit.local.local import LocalJob

    local = [p for h in handles if isinstance(h, LocalJob) for p in processes(int(h.job_id))]
    for handle in handles:
        if not isinstance(handle, LocalJob):
            handle.cancel(check=False)
    for proc in local:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(local, timeout=5)  # the controllers are reaped; a grandchild is init's to reap


def run_pool(
    stages: list[str],
    needs: dict[str, list[str]],
    workers: int,
    submit,
    retries: int,
    snap: Path,
    folder: Path,
    worker_class=PoolWorker,
    poll: float = 2.0,
) -> dict:
    """Run `stages` (`needs`: each one's upstream among them) on `workers` workers; `submit(workers)`: their
    submitit jobs. A lost worker's stage is re-queued and a new worker takes its place while stages are left,
    up to `retries` replacements a worker on average. Returns the queue's final state with the workers'
    records; raises WaveFailed if a stage could not run."""
    folder.mkdir(parents=True, exist_ok=True)
    queue = StageQueue.create(folder / "queue.json", stages, needs)
    pool = [
        worker_class(f"worker-{i}", str(queue.path), str(snap), str(folder / "jobs"), retries) for i in range(workers)
    ]
    running, jobs, said, lost = [], [], set(), 0
    with stopped_as_ctrl_c():
        try:
            running += zip(pool, submit(pool))
            while running:
                time.sleep(poll)
                said |= report(queue.read()["done"], said, len(stages))
                for worker, handle in [(w, h) for w, h in running if h.done()]:
                    running.remove((worker, handle))
                    try:
                        jobs.append(handle.result())
                    except Exception as err:  # a killed or lost worker: its stage goes back, a new worker takes over
                        lost += 1
                        message = str(err).strip()[-500:]
                        print(f"cluster: {worker.name} (attempt {worker.attempt}) lost: {message}", flush=True)
                        jobs.append({"job": worker.name, "attempt": worker.attempt, "failed": str(err)[-2000:]})
                        for stage in queue.held_by(worker.name):
                            queue.release(stage, f"{worker.name} lost: {message}", retries)
                        if queue.read()["pending"] and lost <= retries * workers:
                            again = replace(worker, attempt=worker.attempt + 1)
                            running += zip([again], submit([again]))
            report(queue.read()["done"], said, len(stages))
        finally:  # stopped here (an error, a signal): no worker runs on unwatched
            stop([handle for _, handle in running])
    state = queue.read()
    if state["failed"] or state["pending"]:
        lines = [line.strip() for e in state["failed"].values() for line in e.strip().splitlines()]
        last = [line for line in lines if line.startswith("error:")][-1:] or lines[-1:]  # a stage's own error first
        raise WaveFailed(
            f"stage(s) {sorted(state['failed'])} failed {retries + 1} times, {len(state['pending'])} left undone"
            + (f"; the last error: {last[0].strip()}" if last else "")
            + f"; the logs: {folder / 'jobs'}/worker-*/attempt-*.log and {folder / 'logs'}"
        )
    return {**state, "workers": workers, "jobs": jobs}
