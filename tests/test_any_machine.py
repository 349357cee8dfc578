"""The numeric tests do not depend on the machine that runs them.

Another CPU of the same kind picks other BLAS and torch kernels (AVX-512 instead of AVX2, other
thread counts), which sum in another order and change the last bits of every float. The suite
is written for that (tolerances with their reasons, rankings checked free of near-ties,
invariants instead of recorded digits); this test keeps it so, by running the numeric test files
again in a child pytest under kernels this machine does not use by default:

- torch's vectorised kernels without AVX2 (``ATEN_CPU_CAPABILITY=default``) and MKL, torch's
  BLAS, limited to AVX (``MKL_ENABLE_INSTRUCTIONS=AVX``): other summation orders in every
  matmul, reduction and optimiser step of training;
- one thread instead of the machine's cores for OpenMP, MKL and OpenBLAS: other partitions of
  the parallel sums;
- numba's kernels (the compiled engine of mf-bpr / mf-bce, mf-als's conjugate gradient)
  compiled for a generic x86-64 (``NUMBA_CPU_NAME=generic``: no AVX), which vectorises and
  reassociates their sums otherwise.

OpenBLAS's own core type (numpy, scipy) is left as the machine sets it: on some processors the
workplace sets ``OPENBLAS_CORETYPE`` because other kernels compute wrong results there. To try
one by hand: ``OPENBLAS_CORETYPE=Sandybridge bash scripts/test.sh tests/test_any_machine.py``.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The test files whose results are floating-point computations (training, solves, rankings,
# projections, metrics); the app, CLI and browser tests read what these compute.
NUMERIC = [
    "test_refactor_pins.py", "test_speed_paths.py", "test_bpr_speed_paths.py", "test_models.py",
    "test_als.py", "test_coldstart.py", "test_evaluation.py", "test_index.py",
    "test_neighbours.py", "test_funnel.py", "test_serving.py", "test_anatomy.py",
    "test_projection.py", "test_replay.py", "test_segments.py", "test_vector_norms.py",
    "test_negative_mix.py", "test_sampling.py", "test_map_structure.py", "test_compiled_sgd.py",
    "test_compiled_cg.py",
]

OTHER_KERNELS = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_ENABLE_INSTRUCTIONS": "AVX",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMBA_CPU_NAME": "generic",  # the compiled engine's kernels without AVX (own cache entry)
}
MARK = "RECSYS_TEST_OTHER_KERNELS"  # set in the child run: it does not start another


def test_numeric_files_are_listed_and_exist():
    for name in NUMERIC:
        assert (ROOT / "tests" / name).is_file(), name


@pytest.mark.skipif(bool(os.environ.get(MARK)), reason="this is the run under other kernels")
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                    reason="the kernel switches named here are x86's")
def test_numeric_tests_pass_under_other_kernels_and_one_thread():
    env = {**os.environ, **OTHER_KERNELS, MARK: "1"}
    probe = subprocess.run(  # the switch takes: torch runs its kernels without AVX2
        [sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability(),"
         " torch.get_num_threads())"], env=env, capture_output=True, text=True, timeout=120)
    assert probe.stdout.split() == ["DEFAULT", "1"], probe.stdout + probe.stderr
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         *[f"tests/{name}" for name in NUMERIC]],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
    assert result.returncode == 0, f"the numeric tests under {OTHER_KERNELS}:\n{tail}"
    assert " passed" in tail and " failed" not in tail, tail
