"""The wheel, built as `pip wheel .` builds it: no warning on the way, and nothing left out."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def _working_tree(to: Path) -> None:
    """The project's files as a clone would have them (tracked, and new files not ignored), copied to ``to``:
    a build writes build/ and *.egg-info where it runs, and must not write them into the checkout."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout of voicekit, to know its files")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    for name in filter(None, listed.stdout.decode().split("\0")):
        if (ROOT / name).is_file():  # a tracked file deleted in the work tree is not built
            (to / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, to / name)


def _files(folder: Path, pattern: str) -> set[str]:
    return {
        p.relative_to(folder).as_posix() for p in folder.glob(pattern) if p.is_file() and "__pycache__" not in p.parts
    }


def test_the_wheel_builds_without_warnings_and_holds_everything(tmp_path):
    source, out = tmp_path / "voicekit", tmp_path / "dist"
    _working_tree(source)
    # no build isolation: no network, and the test extra brings the setuptools pyproject.toml asks for;
    # byte-compiling left on, else setuptools says it is off (a warning about this environment, not the project)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "--disable-pip-version-check",
         "-v", "-w", str(out)],
        cwd=source, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    log = build.stdout + build.stderr
    assert build.returncode == 0, log[-4000:]
    complaints = [
        line for line in log.splitlines() if re.search(r"warn|deprecat|would be ignored", line, re.IGNORECASE)
    ]
    assert complaints == [], "\n".join(complaints)

    (wheel,) = out.glob("voicekit-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (dist_info,) = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
        metadata = archive.read(f"{dist_info}/METADATA").decode()
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    # every module, the typing marker, the sentence data and the page's files (vendored scripts and their licenses)
    expected = _files(source, "voicekit/**/*.py") | {"voicekit/py.typed"}
    expected |= _files(source, "voicekit/text/data/*") | _files(source, "voicekit/server/static/*")
    expected |= _files(source, "voicekit/engines/kokoro_voices/*")  # Kokoro's voices, their LICENSE and NOTICE
    expected |= {
        f"voicekit/adapters/{name}" for name in _files(source / "adapters", "*.py")
    }  # adapters/ installs there
    assert "voicekit/engines/kokoro_voices/NOTICE" in expected and "voicekit/engines/kokoro_voices/af_heart.bin" in expected
    assert "voicekit/server/static/index.html" in expected and "voicekit/adapters/__init__.py" in expected
    assert expected - names == set()
    assert {f"{dist_info}/licenses/LICENSE", f"{dist_info}/licenses/NOTICE"} <= names
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    assert re.search(r"^voicekit = voicekit\.__main__:main$", entry_points, re.MULTILINE), entry_points
