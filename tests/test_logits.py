import pytest
import torch

from pipeline import examples, logits
from pipeline import schema as P


@pytest.fixture
def split():
    return examples.frame("t", [f"text {i}" for i in range(6)], [None] * 6, [0, 1, 0, 1, 1, 0])


def values(n=6):
    torch.manual_seed(0)
    return logits.tensors(torch.randn(n, 2), torch.randn(n, 8), torch.tensor([0, 1, 0, 1, 1, 0]))


def test_round_trip(tmp_path, split):
    v = values()
    logits.save(tmp_path / "c.safetensors", split, v, teacher="x")
    got = logits.load(tmp_path / "c.safetensors", split)
    for k in logits.FIELDS:
        assert torch.equal(got[k], v[k])
    assert torch.allclose(got["probs"].sum(-1), torch.ones(6))
    manual_ce = -torch.log(got["probs"][torch.arange(6), torch.tensor(split.label.to_numpy())])
    assert torch.allclose(got["ce"], manual_ce, atol=1e-6)


def test_cache_from_other_data_is_refused(tmp_path, split):
    logits.save(tmp_path / "c.safetensors", split, values())
    relabelled = split.copy()
    relabelled.loc[0, "label"] = 1
    with pytest.raises(P.InputError, match="computed on other data"):
        logits.load(tmp_path / "c.safetensors", relabelled)
    with pytest.raises(P.InputError, match="computed on other data"):
        logits.load(tmp_path / "c.safetensors", split.iloc[::-1].reset_index(drop=True))


def test_truncated_cache_is_refused(tmp_path, split):
    path = tmp_path / "c.safetensors"
    logits.save(path, split, values())
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(P.InputError, match="unreadable teacher cache"):
        logits.load(path, split)


def test_missing_cache(tmp_path, split):
    with pytest.raises(P.InputError, match="teacher cache not found"):
        logits.load(tmp_path / "none.safetensors", split)


def test_a_flipped_byte_in_the_tensors_is_detected(tmp_path, split):
    """A file that still parses, with the right shapes, but other numbers: only the digest can tell."""
    path = tmp_path / "c.safetensors"
    logits.save(path, split, values())
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF  # inside the last tensor's data, past the header
    path.write_bytes(bytes(raw))
    with pytest.raises(P.InputError, match=r"c.safetensors: corrupted \(the sha256 of its tensors differs"):
        logits.load(path, split)
