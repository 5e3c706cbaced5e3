"""The compute path on the CPU: device choice, bf16 autocast, loader workers and data parallelism.

Data parallelism runs here as two CPU processes (torchrun, gloo), the same code path that
`accelerate launch` takes on several GPUs; no test needs a GPU.
"""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pipeline import compute
from pipeline import schema as P
from tests.conftest import run, tiny_params, write_params


def test_shard_gives_each_process_its_part_of_every_batch():
    idx = np.arange(10, 27)
    parts = [compute.shard(SimpleNamespace(num_processes=2, process_index=i), idx) for i in range(2)]
    assert sorted(np.concatenate(parts).tolist()) == idx.tolist()
    assert [len(p) for p in parts] == [9, 8]
    small = np.array([3])  # fewer rows than processes: every process takes them all
    assert compute.shard(SimpleNamespace(num_processes=2, process_index=1), small).tolist() == [3]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_a_gpu_is_refused_up_front():
    with pytest.raises(P.InputError, match=r"compute.device: cuda, but torch sees no CUDA GPU"):
        compute.accelerator("cuda", "auto")


def test_a_bad_launch_is_refused(tmp_path):
    params = tiny_params(tmp_path)
    params["compute"]["launch"] = "torchrun -m"
    with pytest.raises(P.InputError, match=r"compute.launch"):
        P.load(write_params(tmp_path, params))
    del params["compute"]["launch"]
    with pytest.raises(P.InputError, match=r"missing section\(s\) \['compute.launch'\]"):
        P.load(write_params(tmp_path, params))


def prepared(root: Path, compute_section: dict, dropout: float | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    params = tiny_params(root)
    params["compute"].update(compute_section)
    if dropout is not None:
        params["teachers"]["tiny_a"]["config"].update(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
        params["teachers"]["tiny_a"]["batch_size"] = 15  # odd: the processes' shares of a batch differ
    write_params(root, params)
    done = run([sys.executable, "-m", "pipeline.prepare", "reviews"], root)
    assert done.returncode == 0, done.stderr
    return root


def stage(root: Path, *args: str, processes: int = 1):
    """A stage in its own process (Accelerate's state is per process), as DVC runs it."""
    launch = (
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
        if processes > 1
        else [sys.executable]
    )
    return run([*launch, "-m", *args], root)


@pytest.mark.slow
def test_bf16_autocast_runs_fine_tuning_and_caching_and_is_recorded(tmp_path):
    root = prepared(tmp_path / "bf16", {"precision": "bf16"})
    for module in ("pipeline.finetune", "pipeline.cache"):
        done = stage(root, module, "reviews", "tiny_a")
        assert done.returncode == 0, done.stderr
    metrics = json.loads((root / "models/reviews/tiny_a/metrics.json").read_text())
    assert metrics["provenance"]["compute"] == {"device": "cpu", "precision": "bf16", "processes": 1}
    cached = load_file(root / "logits/reviews/tiny_a/dev.safetensors")
    assert cached["logits"].dtype == torch.float32 and torch.isfinite(cached["logits"]).all()
    assert metrics["dev_accuracy"] > 0.6  # the planted signal is learnt under bf16 as well


@pytest.mark.slow
def test_data_parallel_fine_tuning_matches_one_process(tmp_path):
    """Two processes, each with its share of every batch, take the same steps as one process with the whole
    batch (no dropout, so the two runs compute the same thing); only the first process writes."""
    weights = {}
    for processes in (1, 2):
        root = prepared(tmp_path / f"p{processes}", {}, dropout=0.0)
        done = stage(root, "pipeline.finetune", "reviews", "tiny_a", processes=processes)
        assert done.returncode == 0, done.stderr
        metrics = json.loads((root / "models/reviews/tiny_a/metrics.json").read_text())
        assert metrics["provenance"]["compute"]["processes"] == processes
        model = root / "models/reviews/tiny_a/model"
        weights[processes] = {**load_file(model / "head.safetensors"), **load_file(model / "encoder/model.safetensors")}
        assert not list((root / "models/reviews/tiny_a").glob(".*partial"))
    # equal up to float rounding; a lost gradient sync, a schedule stepped per process or shares of a batch
    # weighed equally each differ by about 1e-3 here
    for name, value in weights[1].items():
        torch.testing.assert_close(weights[2][name], value, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_distill_refuses_several_processes(tmp_path):
    root = prepared(tmp_path / "dp", {})
    done = stage(root, "pipeline.distill", "reviews", "ce", "1", processes=2)
    assert done.returncode != 0
    assert "distill runs on one device" in done.stderr and "DVC's queue" in done.stderr
    assert not (root / "runs").exists()


@pytest.mark.slow
def test_loader_workers_give_the_same_numbers(tmp_path):
    """Worker processes only pad and collate: the same batches, the same fine-tuned weights (distill batches
    through the same loader)."""
    digests = {}
    for workers in (0, 2):
        root = prepared(tmp_path / f"w{workers}", {"loader_workers": workers})
        done = stage(root, "pipeline.finetune", "reviews", "tiny_a")
        assert done.returncode == 0, done.stderr
        digests[workers] = json.loads((root / "models/reviews/tiny_a/model/classifier.json").read_text())["sha256"]
    assert digests[0] == digests[2]
