"""The product ships without the rig: not in the wheel, not in the image (design, "Rig placement").

quiesce/rig/ (node agent, scenarios, load generator, Go build wrappers) is test
infrastructure; a source checkout's editable install imports it from the tree. These
tests build the wheel as `pip install .` does (offline: the dev extra brings the build
backend) and read the Dockerfile and .dockerignore. No cluster needed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from install import chartkit

#: What the Dockerfile may copy into its build stage (and .dockerignore lets through).
IMAGE_SOURCES = {"pyproject.toml", "README.md", "quiesce"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of the checkout, rig included in the source tree it is built from."""
    import setuptools

    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.fail(
            f"this venv's setuptools {setuptools.__version__} cannot build quiesce (PEP 639 "
            "license needs >= 77, which the dev extra installs): run ./dev setup"
        )
    root = tmp_path_factory.mktemp("wheel")
    # A copy, so the build's build/ and *.egg-info stay out of the checkout (and a stale
    # build/lib there cannot leak old files into the wheel).
    src = root / "src"
    src.mkdir()
    for name in IMAGE_SOURCES:
        path = chartkit.REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, src / name)
    out = root / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--quiet", "--wheel-dir", str(out), str(src)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    (built,) = out.glob("quiesce-*.whl")
    return built


def test_the_wheel_has_the_product_and_not_the_rig(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert [n for n in names if n.startswith("quiesce/rig/")] == []
    assert not [n for n in names if n.endswith(("go.mod", "go.sum"))]
    for expected in ("quiesce/py.typed", "quiesce/cli.py", "quiesce/commands/demo.py",
                     "quiesce/sidecar/__init__.py", "quiesce/operator/__init__.py"):  # fmt: skip
        assert expected in names


def test_the_wheel_offers_no_rig_extra(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        (metadata,) = [n for n in whl.namelist() if n.endswith(".dist-info/METADATA")]
        text = whl.read(metadata).decode()
    assert "Provides-Extra: rig" not in text
    assert "Provides-Extra: dev" in text


def test_quiesce_demo_from_the_wheel_says_the_demo_needs_a_checkout(
    wheel: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # -S: no site module, so neither this checkout's editable finder (a .pth file) nor the
    # checkout itself is on the path; the venv's packages are, for quiesce's dependencies.
    code = (
        "import sys; "
        f"sys.path[:0] = [{str(site)!r}, {sysconfig.get_paths()['purelib']!r}]; "
        "from quiesce import cli; sys.exit(cli.main(['demo']))"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "source checkout" in result.stderr and "./dev demo" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_image_never_installs_the_rig() -> None:
    dockerfile = DockerfileParser(path=str(chartkit.REPO / "Dockerfile"))
    copied = set()
    for instruction in dockerfile.structure:
        if instruction["instruction"] == "COPY" and "--from=" not in instruction["value"]:
            copied.update(instruction["value"].split()[:-1])
        if instruction["instruction"] == "RUN" and "pip install" in instruction["value"]:
            args = instruction["value"].split("pip install", 1)[1].split("&&")[0].split()
            assert "-e" not in args and "--editable" not in args, instruction["value"]
            assert [a for a in args if not a.startswith("-")] == ["."], instruction["value"]
    assert copied <= IMAGE_SOURCES, copied
    ignored = (chartkit.REPO / ".dockerignore").read_text().splitlines()
    assert "quiesce/rig/" in ignored
