"""bench/gpu_suite.py on the CPU in its --tiny form: every part runs, writes its rows, and a budget too small for a
part says so instead of overrunning. (The GPU numbers themselves come from running it on a GPU; see README.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "bench" / "gpu_suite.py"


def _run(*args: str, timeout: float = 280) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SUITE), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def test_tiny_cpu_suite_measures_every_part(tmp_path: Path) -> None:
    proc = _run("--device", "cpu", "--tiny", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "gpu_suite.json").read_text())
    assert (tmp_path / "gpu_suite.txt").read_text() in proc.stdout   # the printed table is the saved one
    rows = result["rows"]
    assert not [r for r in rows if "error" in r], rows
    assert {r["part"] for r in rows} == {"presets", "options", "diffusion", "latent", "torchrun", "profile"}
    throughput = [r for r in rows if "images_per_s" in r and r["part"] in ("presets", "options")]
    assert len(throughput) == 6 + 14
    for r in throughput:
        assert r["images_per_s"] > 0 and r["s_per_epoch"] == pytest.approx(50_000 / r["images_per_s"], rel=1e-2)
        assert r["gflop_per_image"] > 0          # FlopCounterMode counted the step
    by_name = {r["row"]: r for r in rows}
    assert by_name["cifar10: Trainer (defaults)"]["vs_plain"] > 0
    # each preset's own model was counted (the two steps differ)
    assert by_name["cifar10: plain fp32 loop"]["gflop_per_image"] != by_name["mnist: plain fp32 loop"][
        "gflop_per_image"]
    run = by_name["torchrun, 1 process, mnist preset, 1 epoch"]
    assert run["exit"] == 0 and "last.safetensors" in run["saved"] and run["backend"] == "gloo"
    knn = next(r for r in rows if r["row"].startswith("exact kNN"))
    assert knn["self_first"] is True
    samples = next(r for r in rows if r["row"].startswith("1,000 samples") and "fp32" in r["row"])
    assert samples["images"] == 4 and samples["seconds"] > 0
    assert any(r.get("table") for r in rows if r["part"] == "profile")


def test_a_budget_too_small_skips_parts_and_says_so(tmp_path: Path) -> None:
    proc = _run("--device", "cpu", "--tiny", "--budget-s", "0.5", "--parts", "presets,latent", "--out", str(tmp_path),
                timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "gpu_suite.json").read_text())
    assert [r["part"] for r in result["rows"]] == ["presets", "latent"]
    assert all(r["skipped"] == "no budget left" for r in result["rows"])
    assert "part presets skipped" in proc.stdout and "part latent skipped" in proc.stdout


@pytest.mark.parametrize(("args", "said"), [(("--device", "cuda"), "CUDA is not available"),
                                            (("--device", "cpu", "--parts", "nope"), "unknown part(s) nope")])
def test_bad_requests_are_one_line(tmp_path: Path, args: tuple[str, ...], said: str) -> None:
    import torch

    if args[1] == "cuda" and torch.cuda.is_available():
        args = ("--device", "cpu", "--parts", "nope")
        said = "unknown part(s) nope"
    proc = _run(*args, "--out", str(tmp_path), timeout=60)
    assert proc.returncode == 2 and said in proc.stderr and "Traceback" not in proc.stderr
