"""core and the headless commands never import Qt: they must work on a server with no display.

Each check runs in a fresh interpreter, because the test session itself imports PySide6 for tests/explorer.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import core

ROOT = Path(core.__file__).resolve().parent.parent
QT_PREFIXES = ("PySide6", "pyqtgraph", "superqt", "shiboken6")

CHECK = textwrap.dedent("""
    import sys
    qt = sorted(m for m in sys.modules if m.split(".")[0] in {prefixes!r})
    assert not qt, "Qt modules were imported: " + ", ".join(qt[:10])
    print("NO-QT-OK")
""").format(prefixes=QT_PREFIXES)


def _python(code: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, VAE_EXPLORER_HOME=str(tmp_path / "home"))
    env.pop("QT_QPA_PLATFORM", None)   # as on a server: nothing set up for Qt
    env.pop("DISPLAY", None)
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240)


def test_importing_core_and_training_and_sampling_load_no_qt(tmp_path):
    run_dir = tmp_path / "run"
    code = textwrap.dedent(f"""
        import importlib, pkgutil
        import core
        # Every module of core, whoever wrote it.
        for info in pkgutil.walk_packages(core.__path__, "core."):
            importlib.import_module(info.name)
        from core import cli
        argv = ["train", "--epochs", "1", "--per-class", "10", "--batch-size", "32", "--set", "model.width=8",
                "--set", "model.latent_dim=2", "--set", "model.stages=2", "--out", {str(run_dir)!r}, "--quiet"]
        assert cli.main(argv) == 0
        ckpt = {str(run_dir / "checkpoints" / "last.safetensors")!r}
        assert cli.main(["sample", ckpt, "--n", "2", "--out", {str(tmp_path / "s.png")!r}]) == 0
    """) + CHECK
    proc = _python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "NO-QT-OK" in proc.stdout
    assert (run_dir / "checkpoints" / "last.safetensors").is_file()


def test_main_py_help_and_version_work_without_qt(tmp_path):
    for flag, expected in (("--help", "restore-eval"), ("--version", f"vae-explorer {core.__version__}")):
        # As a user runs it ...
        plain = subprocess.run([sys.executable, "main.py", flag], cwd=ROOT, capture_output=True, text=True,
                               timeout=120, env=dict(os.environ, VAE_EXPLORER_HOME=str(tmp_path / "home")))
        assert plain.returncode == 0, plain.stderr
        assert expected in plain.stdout
        # ... and once more in-process, to see which modules it loaded.
        code = textwrap.dedent(f"""
            import runpy, sys
            sys.argv = ["main.py", {flag!r}]
            try:
                runpy.run_path("main.py", run_name="__main__")
            except SystemExit as e:
                assert e.code in (0, None), e.code
        """) + CHECK
        proc = _python(code, tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "NO-QT-OK" in proc.stdout and expected in proc.stdout
