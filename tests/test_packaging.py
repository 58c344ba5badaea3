"""The wheel: built offline, installed outside the checkout, it finds its schema and templates inside itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not (ROOT / "pyproject.toml").is_file(), reason="needs the source checkout to build the wheel from"
)


def build_wheel(source: Path, outdir: Path) -> Path:
    """Build a wheel of ``source`` without network (no build isolation: hatchling comes from this venv)."""
    done = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(outdir), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = outdir.glob("llmflow-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout installed with ``pip install --target`` into a folder of its own."""
    wheel = build_wheel(ROOT, tmp_path_factory.mktemp("dist"))
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return target


def run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run this interpreter on the installed wheel only: ``-S`` skips the venv's .pth files (the editable
    install of the checkout), PYTHONPATH gives the wheel first and then the venv's packages for dependencies."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), sysconfig.get_paths()["purelib"]])
    env.pop("PYTHONHOME", None)
    return subprocess.run([sys.executable, "-S", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_resources_come_from_the_installed_package(installed: Path, tmp_path: Path) -> None:
    script = (
        "import json, llmflow, llmflow.resources as r; "
        "print(json.dumps([llmflow.__file__, str(r.schema_path()), str(r.templates_dir())]))"
    )
    done = run_installed(installed, tmp_path, "-c", script)
    assert done.returncode == 0, done.stderr
    package_file, schema, templates = (Path(p) for p in json.loads(done.stdout))
    package = installed / "llmflow"
    assert package_file.parent == package
    assert schema == package / "schemas" / "workflow.schema.json"
    assert templates == package / "templates"
    assert schema.is_file()
    assert not schema.is_relative_to(ROOT) and not templates.is_relative_to(ROOT)
    assert schema.read_text(encoding="utf-8") == (ROOT / "schemas" / "workflow.schema.json").read_text(encoding="utf-8")
    shipped = sorted(p.relative_to(ROOT / "templates") for p in (ROOT / "templates").rglob("*") if p.is_file())
    if shipped:
        assert sorted(p.relative_to(templates) for p in templates.rglob("*") if p.is_file()) == shipped


def test_the_installed_cli_prints_the_schema_and_validates(installed: Path, tmp_path: Path) -> None:
    done = run_installed(installed, tmp_path, "-m", "llmflow", "schema")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (ROOT / "schemas" / "workflow.schema.json").read_text(encoding="utf-8")
    shutil.copy(ROOT / "examples" / "hello.yaml", tmp_path / "hello.yaml")
    done = run_installed(installed, tmp_path, "-m", "llmflow", "validate", "hello.yaml")
    assert (done.returncode, done.stderr) == (0, "1 file valid\n")


def test_the_wheel_holds_the_package_only(installed: Path) -> None:
    tops = {path.name for path in installed.iterdir()}
    assert {"llmflow"} <= tops
    assert {name for name in tops if not name.startswith("llmflow")} <= {"bin"}  # console script
    assert not (installed / "tests").exists() and not (installed / "examples").exists()
    assert (installed / "llmflow" / "py.typed").is_file()


def test_a_fresh_clone_without_a_templates_folder_builds(tmp_path: Path) -> None:
    # git keeps no empty folders: while the template library is empty, a clone has no templates/ at all.
    source = tmp_path / "clone"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("llmflow", "schemas"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    wheel = build_wheel(source, tmp_path / "dist")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "llmflow/schemas/workflow.schema.json" in names
    assert not any(name.startswith("llmflow/templates/") for name in names)
