"""The add-on zip: wheel choice for every Blender platform/Python, and a real install both ways in fresh Blenders."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from blender_addon.vendor import matching_wheel

ROOT = Path(__file__).resolve().parents[1]
WHEELS = [
    "pyzmq-27.3.0-cp311-cp311-manylinux_2_26_x86_64.manylinux_2_28_x86_64.whl",
    "pyzmq-27.3.0-cp311-cp311-manylinux_2_26_aarch64.manylinux_2_28_aarch64.whl",
    "pyzmq-27.3.0-cp311-cp311-win_amd64.whl",
    "pyzmq-27.3.0-cp311-cp311-macosx_10_15_universal2.whl",
    "pyzmq-27.3.0-cp313-cp313-manylinux_2_26_x86_64.manylinux_2_28_x86_64.whl",  # abi3 builds re-tagged by build.py
    "pyzmq-27.3.0-cp313-cp313-manylinux_2_26_aarch64.manylinux_2_28_aarch64.whl",
    "pyzmq-27.3.0-cp313-cp313-win_amd64.whl",
    "pyzmq-27.3.0-cp313-cp313-macosx_10_15_universal2.whl",
]
ABI3 = [  # what PyPI has for CPython 3.12+ (the vendoring code must also pick these for any later CPython)
    "pyzmq-27.3.0-cp312-abi3-manylinux_2_26_x86_64.manylinux_2_28_x86_64.whl",
    "pyzmq-27.3.0-cp312-abi3-win_amd64.whl",
]


@pytest.mark.parametrize(
    ("system", "machine", "python", "expected"),
    [
        ("linux", "x86_64", (3, 11), WHEELS[0]),
        ("linux", "aarch64", (3, 11), WHEELS[1]),
        ("win32", "AMD64", (3, 11), WHEELS[2]),
        ("darwin", "arm64", (3, 11), WHEELS[3]),
        ("darwin", "x86_64", (3, 11), WHEELS[3]),
        ("linux", "x86_64", (3, 13), WHEELS[4]),  # Blender 5.1+
        ("linux", "aarch64", (3, 13), WHEELS[5]),
        ("win32", "AMD64", (3, 13), WHEELS[6]),
        ("darwin", "arm64", (3, 13), WHEELS[7]),
        ("linux", "x86_64", (3, 14), None),  # cp313-cp313 is exact: a later CPython gets no wheel from WHEELS
        ("linux", "x86_64", (3, 10), None),
        ("linux", "ppc64le", (3, 11), None),
    ],
)
def test_vendored_wheel_matches_platform_and_python(system, machine, python, expected) -> None:
    assert matching_wheel(WHEELS, system, machine, python) == expected


@pytest.mark.parametrize(
    ("python", "expected"), [((3, 11), None), ((3, 12), ABI3[0]), ((3, 13), ABI3[0]), ((3, 14), ABI3[0])]
)
def test_stable_abi_wheel_serves_its_cpython_and_later(python, expected) -> None:
    assert matching_wheel(ABI3, "linux", "x86_64", python) == expected


@pytest.fixture(scope="module")
def addon_zip() -> Path:
    return _load_build_script().build_addon()


def test_zip_layout_version_and_vendored_shared(addon_zip: Path) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    with zipfile.ZipFile(addon_zip) as archive:
        names = archive.namelist()
        manifest = tomllib.loads(archive.read("motiongpt3_addon/blender_manifest.toml").decode())
        init = archive.read("motiongpt3_addon/__init__.py").decode()
    assert {n.split("/")[0] for n in names} == {"motiongpt3_addon"}  # one top-level folder: legacy installer
    assert "motiongpt3_addon/shared/motion/humanml3d.py" in names
    assert "motiongpt3_addon/shared/motion/assets/humanml3d_mean.npy" in names
    assert manifest["version"] == version and manifest["id"] == "motiongpt3_addon"
    assert f'"version": ({", ".join(version.split("."))})' in init
    assert {"network", "files"} <= set(manifest["permissions"])
    assert all(len(reason) <= 64 for reason in manifest["permissions"].values())  # Blender's limit for the UI
    backend_wheels = [n for n in names if n.startswith("motiongpt3_addon/runtime/")]
    assert [Path(n).name for n in backend_wheels] == [f"motiongpt3_blender-{version}-py3-none-any.whl"]
    wheels = sorted(Path(w).name for w in manifest["wheels"])
    assert wheels == sorted(WHEELS)
    assert all(f"motiongpt3_addon/wheels/{w}" in names for w in wheels)


def _load_build_script():
    spec = importlib.util.spec_from_file_location("build_script", ROOT / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return build


def _blender_pythons() -> list[str]:
    """This interpreter (bpy from the test extra) and every further Blender's environment that is set up (build.py
    test makes them: bpy 4.2 and 4.5 LTS on Python 3.11, bpy 5.2 LTS on Python 3.13)."""
    found = [sys.executable]
    for env in _load_build_script().BLENDER_ENVS:
        if env.interpreter.exists() and Path(sys.prefix).resolve() != env.venv.resolve():
            found.append(str(env.interpreter))
    return found


@pytest.mark.parametrize("python", _blender_pythons())
def test_zip_installs_enables_and_disables_both_ways(python: str, addon_zip: Path, tmp_path: Path) -> None:
    env = dict(os.environ)
    for kind in ("CONFIG", "SCRIPTS", "EXTENSIONS"):
        env[f"BLENDER_USER_{kind}"] = str(tmp_path / kind.lower())
    done = subprocess.run(
        [python, str(ROOT / "tests" / "blender_addon_install_check.py"), str(addon_zip)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert lines, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(lines[-1][len("REPORT ") :])
    operators = {"generate", "caption", "caption_all", "predict", "inbetween", "cancel", "apply_result"}
    for way in ("legacy", "extension"):
        assert report[f"{way}_install"] == ["FINISHED"]
        state = report[way]
        assert state["loaded"] and state["enabled"] and state["panel"] and state["settings"]
        assert operators <= set(state["operators"])
    assert report["legacy"]["file"].startswith(str(tmp_path / "scripts"))
    assert report["extension"]["file"].startswith(str(tmp_path / "extensions"))
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert report["legacy"]["version"] == [int(n) for n in version.split(".")]
    # pyzmq came from the zip: unpacked by the add-on (legacy) and installed from the manifest (extension).
    assert report["legacy_zmq"].startswith(str(tmp_path / "scripts" / "addons" / "motiongpt3_addon" / "_vendor"))
    assert report["extension_zmq"].startswith(str(tmp_path / "extensions"))
    assert not report["top_level_shared"]
    assert report["client_module"] == "motiongpt3_addon.shared.client" and report["client_request"]
    assert not report["top_level_shared_after_client"]
    assert report["legacy_timer_before_disable"]
    for off in (report["legacy_disabled"], report["extension_uninstalled"]):
        assert not off["enabled"] and not off["panel"] and not off["settings"] and off["operators"] == []
        assert not off["timer"]
    assert report["legacy_removed"]


def test_local_backend_command_matches_the_serve_cli() -> None:
    from backend.cli import build_parser
    from blender_addon.local_backend import LocalBackend

    command = LocalBackend.command("/env/bin/python -m backend.cli", "tcp://127.0.0.1:5601", "/m.safetensors", "cpu")
    assert command[:3] == ["/env/bin/python", "-m", "backend.cli"]
    args = build_parser().parse_args(command[3:])  # the real `motiongpt3 serve` parser accepts it
    assert (args.bind, str(args.checkpoint), args.device) == ("tcp://127.0.0.1:5601", "/m.safetensors", "cpu")
