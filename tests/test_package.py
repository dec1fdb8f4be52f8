"""The package is whole outside the checkout (issue #11): the wheel holds the layer definitions, the
demo city's data, the migrations and the map's static files; installed into a fresh venv elsewhere,
`gridmap db start && gridmap demo load && gridmap serve` works from another folder."""

from __future__ import annotations

import json
import shutil
import site
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest

from servers import serving

ROOT = Path(__file__).resolve().parent.parent


def _tracked(prefix: str) -> set[str]:
    out = subprocess.run(["git", "ls-files", prefix], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """(the wheel built from this checkout, the build's output)."""
    out = tmp_path_factory.mktemp("wheel")
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # setuptools' staging folder: no stale modules
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-w", str(out), "-v"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return next(out.glob("gridmap-*.whl")), res.stdout + res.stderr


def test_wheel_holds_layers_data_migrations_and_static_files(wheel):
    path, _ = wheel
    names = set(zipfile.ZipFile(path).namelist())
    for folder in ("gridmap/resources/layers", "gridmap/resources/data", "gridmap/migrations", "gridmap/web/static"):
        files = {f for f in _tracked(folder) if "__pycache__" not in f}
        assert files and files <= names, sorted(files - names)
    modules = {n for n in names if n.endswith(".py")}
    assert modules == {f for f in _tracked("gridmap") if f.endswith(".py")}  # nothing stale, nothing missing


def test_building_warns_of_no_ignored_package(wheel):
    _, output = wheel
    assert "would be ignored" not in output and "is absent from the `packages` configuration" not in output


@pytest.mark.slow
def test_installed_elsewhere_it_starts_loads_and_serves(wheel, engine, database_url, tmp_path):
    """A venv outside the checkout gets the wheel alone; its dependencies come from this venv (a .pth
    naming its site-packages, which holds no gridmap of its own but the editable finder, not loaded)."""
    venv, work = tmp_path / "venv", tmp_path / "elsewhere"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheel[0]),
        ],
        check=True,
        capture_output=True,
    )
    packages = next(venv.glob("lib/python3*/site-packages"))
    (packages / "checkout-dependencies.pth").write_text(site.getsitepackages()[0] + "\n")
    env = {"PATH": "/usr/bin:/bin", "GRIDMAP_DATABASE_URL": database_url, "HOME": str(tmp_path)}

    def gridmap(*args):
        res = subprocess.run([str(venv / "bin" / "gridmap"), *args], cwd=work, env=env, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr[-2000:]
        return res

    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import gridmap; print(gridmap.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(packages))
    gridmap("db", "start")
    loaded = gridmap("demo", "load", "--fresh")
    assert loaded.stdout.startswith("loaded guancheng:")
    with serving(database_url, "--workers", "1", gridmap=str(venv / "bin" / "gridmap"), cwd=work, env=env) as (
        base,
        _port,
    ):
        stats = json.loads(urllib.request.urlopen(base + "/api/v1/stats", timeout=30).read())
        page = urllib.request.urlopen(base + "/", timeout=30).read().decode()
    assert stats["levels"]["courtyard"]["grids"] == 756 and stats["levels"]["micro"]["grids"] > 756
    assert "/tiles/micro/{z}/{x}/{y}.pbf" in page
