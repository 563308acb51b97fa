"""The compiled kernels (ldnn/csrc/*.cpp, sharing the headers HEADERS): each built with the
machine's C++ compiler on first use (about a minute) and cached by PyTorch
(TORCH_EXTENSIONS_DIR, default ~/.cache/torch_extensions). Each module that loads one names
its source file, so that the workflow's code provenance (ldnn.provenance) counts it."""
from __future__ import annotations

import hashlib
import logging
import subprocess
import time
from functools import cache
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCES = Path(__file__).with_name("csrc")
HEADERS = ("dense.h",)
LOSS_KINDS = {"cross_entropy": 0, "mse": 1, "hamiltonian": 2}  # dense.h's


def kernel_loss(loss_kind: str, hamiltonian: bool) -> str:
    """The kernels' name for a task's loss: a Hamiltonian network's is "hamiltonian"."""
    return "hamiltonian" if hamiltonian else loss_kind
# No floating-point traps are ever enabled, so comparisons may be evaluated speculatively:
# the spline loops' clamps then vectorise (the values are the same).
FLAGS = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]


@cache
def load(source_name: str):
    """The extension built from csrc/<source_name> (e.g. "inner_loop.cpp"), once per machine
    and source version (the cache's name carries a digest of the source and the headers, so
    an edited header rebuilds)."""
    from torch.utils import cpp_extension

    source = SOURCES / source_name
    digest = hashlib.sha256(b"".join((SOURCES / f).read_bytes() for f in (source_name, *HEADERS)))
    vector = _vector_flags()
    started = time.perf_counter()
    try:
        module = cpp_extension.load(
            name=f"ldnn_{source.stem}{'_avx2' if vector else ''}_{digest.hexdigest()[:12]}",
            sources=[str(source)], extra_cflags=FLAGS + vector,
            extra_ldflags=["-fopenmp"], verbose=False)
    except (OSError, RuntimeError, subprocess.CalledProcessError) as error:
        raise RuntimeError(f"cannot build the compiled kernel {source.name}: it needs a C++ "
                           f"compiler (g++) and ninja; {str(error).splitlines()[0]}") from error
    log.info("kernel %s ready in %.1f s", source.name, time.perf_counter() - started)
    return module


def _vector_flags() -> list[str]:
    """AVX2 and FMA where PyTorch uses them on this CPU (its spline loops vectorise with
    AVX2's gathers); such builds get their own name, so a cache shared with older CPUs
    never hands them a binary they cannot run."""
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        return ["-mavx2", "-mfma"]
    return []
