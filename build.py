#!/usr/bin/env python3
"""Developer tasks: set up the virtual environment, run the tests, run the demo job.

python3.11 build.py test    # create .venv, install everything (torch CPU-only without a GPU), ruff + pytest
python3.11 build.py demo    # create .venv, install the runtime, run the main job on a bundled clip
python3.11 build.py setup [--test]
python3.11 build.py wheel   # the backend as a wheel (code + embedded demo model + assets, no CMU clips) -> dist/
python3.11 build.py addon   # the Blender add-on zip (extension + legacy add-on + the backend wheel) -> dist/
python3.11 build.py bench-addon  # add-on benchmarks in real Blender (key writing, read-back, timer ticks): bpy 5.0,
                                 # then every further Blender environment that `build.py test` has set up
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import venv
import zipfile
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
OUT = ROOT / "out"
DEMO_PROMPT = "a person walks forward, then turns left"

# The Blender add-on package: id (a Python identifier), the pyzmq wheels it bundles for every platform Blender
# ships on and for both of Blender's Pythons (3.11: Blender 4.2-5.0; 3.13: Blender 5.1+).
ADDON_ID = "motiongpt3_addon"
PYZMQ = "27.3.0"
WHEEL_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_28_aarch64", "win_amd64", "macosx_11_0_arm64")
WHEEL_PYTHONS = ("3.11", "3.13")
DIST = ROOT / "dist"
WHEEL_CACHE = ROOT / "build" / "wheels"


def run(*command: str | Path) -> None:
    """Run a command from the repo root, echoing it; stop the task on failure."""
    print("+", " ".join(str(c) for c in command), flush=True)
    subprocess.run([str(c) for c in command], cwd=ROOT, check=True)


def pip(python: Path, *arguments: str) -> None:
    """`python -m pip ARGUMENTS`, quiet: one line saying what is installed, and pip's whole output only when it
    fails (then the task stops)."""
    print(f"+ pip {' '.join(arguments)}", flush=True)
    done = subprocess.run(
        [str(python), "-m", "pip", *arguments, "--disable-pip-version-check", "--no-input"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        print(f"build.py: pip failed (exit {done.returncode}); its output is above", file=sys.stderr)
        raise subprocess.CalledProcessError(done.returncode, done.args)


def has_nvidia_gpu() -> bool:
    """True where an NVIDIA driver answers (then the default, CUDA-enabled torch build is wanted)."""
    smi = shutil.which("nvidia-smi")
    return smi is not None and subprocess.run([smi], capture_output=True).returncode == 0


def setup(with_tests: bool) -> None:
    """Create .venv and install the project (and test extras); skipped when nothing changed since last time."""
    if sys.version_info[:2] != (3, 11):
        sys.exit(f"build.py needs Python 3.11 (the bpy wheels are cp311 only); this is {sys.version.split()[0]}")
    extras = "[test]" if with_tests else ""
    stamp_text = (ROOT / "pyproject.toml").read_bytes() + extras.encode() + str(has_nvidia_gpu()).encode()
    stamp = VENV / f".installed{extras}"
    digest = hashlib.sha256(stamp_text).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and PYTHON.exists():
        return
    if not PYTHON.exists():
        venv.create(VENV, with_pip=True)
    pip(PYTHON, "install", "--upgrade", "pip")
    if has_nvidia_gpu():
        pip(PYTHON, "install", "torch>=2.4")
    else:
        # CPU-only build: this machine image's pip configuration provides the 2.13.0+cpu wheel; elsewhere
        # point PIP_EXTRA_INDEX_URL at PyTorch's CPU wheel index to avoid the multi-GB CUDA build.
        pip(PYTHON, "install", "torch==2.13.0")
    pip(PYTHON, "install", "-e", f".{extras}")
    stamp.write_text(digest)


# Further Blenders the add-on tests run on, each in its own environment without torch (the main .venv has bpy 5.0
# and the backend): 4.2 LTS (the oldest Blender the add-on supports: legacy F-curves, no Action slots) and 4.5 LTS on
# Python 3.11, 5.2 LTS on Python 3.13 (bpy wheels exist for one Python each).
class BlenderEnv(NamedTuple):
    """A virtual environment with one bpy release, for the Blender tests."""

    label: str
    venv: Path
    python: str  # the Python version its bpy wheel is built for
    packages: tuple[str, ...]

    @property
    def interpreter(self) -> Path:
        return self.venv / "bin" / "python"


BLENDER_ENVS = (
    BlenderEnv(
        "Blender 4.2 LTS",
        ROOT / ".venv-bpy42",
        "3.11",
        ("bpy==4.2.23", "numpy>=1.26,<2.0", f"pyzmq=={PYZMQ}", "pytest>=8", "scipy>=1.11"),
    ),
    BlenderEnv(
        "Blender 4.5 LTS",
        ROOT / ".venv-bpy45",
        "3.11",
        ("bpy==4.5.15", "numpy>=1.26,<2.0", f"pyzmq=={PYZMQ}", "pytest>=8", "scipy>=1.11"),
    ),
    BlenderEnv(
        "Blender 5.2 LTS",
        ROOT / ".venv-bpy52",
        "3.13",
        ("bpy==5.2.3", "numpy>=2.2,<3.0", f"pyzmq=={PYZMQ}", "pytest>=8", "scipy>=1.11"),
    ),
)
# Re-run in every BlenderEnv (the backend end-to-end tests there skip for want of torch, and say so).
BLENDER_TESTS = (
    "tests/test_blender_addon.py",
    "tests/test_blender_addon_backend.py",
    "tests/test_blender_bvh.py",
    "tests/test_blender_bvh_import.py",
    "tests/test_blender_control_rigs.py",
    "tests/test_blender_inbetween_keys.py",
    "tests/test_blender_install.py",
    "tests/test_blender_key_write.py",
    "tests/test_blender_long_takes.py",
    "tests/test_blender_mapping.py",
    "tests/test_blender_rigs.py",
    "tests/test_blender_shot.py",
    "tests/test_blender_shot_backend.py",
)


def _reports_version(python: Path | str, version: str) -> bool:
    """True when `python` runs and is CPython `version` (a pyenv shim without a selected version fails here)."""
    try:
        done = subprocess.run(
            [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except OSError:
        return False
    return done.returncode == 0 and done.stdout.strip() == version


def find_python(version: str) -> Path:
    """An interpreter for Python `version` ("3.13"): this one, $MOTIONGPT3_PYTHON<major><minor>, pyenv's
    versions/<version>*/bin, then python<version> on PATH; exits with a clear message when there is none."""
    if "{}.{}".format(*sys.version_info[:2]) == version:
        return Path(sys.executable)
    variable = "MOTIONGPT3_PYTHON" + version.replace(".", "")
    candidates: list[Path] = [Path(os.environ[variable])] if os.environ.get(variable) else []
    roots = [Path(os.environ["PYENV_ROOT"])] if os.environ.get("PYENV_ROOT") else []
    pyenv = shutil.which("pyenv")
    if pyenv:
        done = subprocess.run([pyenv, "root"], capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip():
            roots.append(Path(done.stdout.strip()))
    roots.append(Path.home() / ".pyenv")
    for root in roots:
        candidates += sorted((root / "versions").glob(f"{version}*/bin/python{version}"), reverse=True)
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if _reports_version(candidate, version):
            return candidate
    tried = ", ".join(str(c) for c in candidates) or "nothing found"
    sys.exit(
        f"build.py: the Blender tests need Python {version} (bpy's wheels for that Blender are built for it only); "
        f"tried {tried}. Install it (e.g. `pyenv install {version}`) or set {variable}=/path/to/python{version}."
    )


def setup_blender_env(env: BlenderEnv) -> None:
    """Create `env.venv` with its bpy + numpy + pyzmq + pytest (no torch); skipped when nothing changed."""
    stamp = env.venv / ".installed"
    digest = hashlib.sha256(" ".join(env.packages).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and _reports_version(env.interpreter, env.python):
        return
    if not _reports_version(env.interpreter, env.python):
        shutil.rmtree(env.venv, ignore_errors=True)
        run(find_python(env.python), "-m", "venv", env.venv)
    pip(env.interpreter, "install", "--upgrade", "pip")
    pip(env.interpreter, "install", *env.packages)
    stamp.write_text(digest)


def test(pytest_args: list[str]) -> None:
    """Lint, type-check the add-on, run the whole test suite (real bpy 5.0 included), then the Blender tests on
    every BlenderEnv (4.2 LTS, 4.5 LTS, 5.2 LTS)."""
    setup(with_tests=True)
    for env in BLENDER_ENVS:
        setup_blender_env(env)
    run(PYTHON, "-m", "ruff", "check", ".")
    run(PYTHON, "-m", "mypy")  # blender_addon/ against fake-bpy-module ([tool.mypy] in pyproject.toml)
    run(PYTHON, "-m", "pytest", *pytest_args)
    if not pytest_args:
        for env in BLENDER_ENVS:
            print(f"== {env.label}: the Blender tests", flush=True)
            run(env.interpreter, "-m", "pytest", "-p", "no:cacheprovider", "-rs", *BLENDER_TESTS)
    print("build.py test: all checks passed. Next: `python3.11 build.py demo` (the main job: text to motion).")


def demo() -> None:
    """The main job: text-to-motion with the embedded demo model (no download) -> out/walk.bvh, .npy and preview."""
    setup(with_tests=False)
    OUT.mkdir(exist_ok=True)
    motiongpt3 = VENV / "bin" / "motiongpt3"
    run(motiongpt3, "generate", DEMO_PROMPT, "--frames", "120", "--seed", "7", "--fps", "30", "-o", OUT / "walk")
    print(
        f"build.py demo: done. Next: open {OUT / 'walk.bvh'} in Blender (File > Import > BVH), try your own prompt "
        f"with `{motiongpt3} generate \"a person jumps\" -o out/jump`, or build the add-on: "
        "`python3.11 build.py addon`."
    )


def project_version() -> str:
    """The one version of the project (pyproject.toml); the add-on's bl_info and manifest are stamped from it."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def retag_wheel(wheel: Path, python_tag: str, abi_tag: str, out_dir: Path) -> Path:
    """A copy of `wheel` under other python/abi tags (what `wheel tags` does): filename, WHEEL `Tag:` lines and its
    RECORD hash. Used to declare a stable-ABI (abi3) build for one CPython, where that narrower claim is true."""
    dist, version, _, _, platforms = wheel.name[: -len(".whl")].split("-")
    out = out_dir / f"{dist}-{version}-{python_tag}-{abi_tag}-{platforms}.whl"
    info = f"{dist}-{version}.dist-info"
    with zipfile.ZipFile(wheel) as src:
        tags = "".join(f"Tag: {python_tag}-{abi_tag}-{p}\n" for p in platforms.split("."))
        text = src.read(f"{info}/WHEEL").decode()
        wheel_text = "".join(line + "\n" for line in text.splitlines() if not line.startswith("Tag:")) + tags
        digest = base64.urlsafe_b64encode(hashlib.sha256(wheel_text.encode()).digest()).rstrip(b"=").decode()
        record = "".join(
            f"{info}/WHEEL,sha256={digest},{len(wheel_text.encode())}\n"
            if line.startswith(f"{info}/WHEEL,")
            else line + "\n"
            for line in src.read(f"{info}/RECORD").decode().splitlines()
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
            for item in src.infolist():
                data = {f"{info}/WHEEL": wheel_text.encode(), f"{info}/RECORD": record.encode()}.get(item.filename)
                dst.writestr(item, data if data is not None else src.read(item))
    return out


def pyzmq_wheels() -> list[Path]:
    """pyzmq wheels for every platform x Blender Python, downloaded once into build/wheels (PyPI).

    For Python 3.13 pyzmq publishes only stable-ABI wheels (cp312-abi3). Blender derives an extension's Python
    versions from its wheels' tags and drops the bare "3" of an abi3 wheel when a "3.11" is also listed, so a zip
    with cp311 + abi3 wheels is refused by Blender 5.1+ ("This Python version (3.13) isn't compatible with (3.11)").
    The abi3 wheels are therefore bundled re-tagged cp313-cp313 (abi3 modules load on CPython 3.13).
    """
    wheels: list[Path] = []
    for python in WHEEL_PYTHONS:
        for platform_tag in WHEEL_PLATFORMS:
            target = WHEEL_CACHE / f"pyzmq-{PYZMQ}-{python}-{platform_tag}"
            found = sorted(target.glob("pyzmq-*.whl"))
            if not found:
                run(
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--only-binary=:all:",
                    "--no-deps",
                    "--python-version",
                    python,
                    "--platform",
                    platform_tag,
                    "-d",
                    target,
                    f"pyzmq=={PYZMQ}",
                )
                found = sorted(target.glob("pyzmq-*.whl"))
            cp = "cp" + python.replace(".", "")
            for wheel in found:
                if wheel.name.split("-")[-2] == "abi3":
                    wheel = retag_wheel(wheel, cp, cp, WHEEL_CACHE / "retagged")
                wheels.append(wheel)
    return wheels


def manifest(version: str, wheels: list[Path]) -> str:
    """blender_manifest.toml (BLENDER_NOTES.md section 1.2)."""
    wheel_lines = "".join(f'  "./wheels/{w.name}",\n' for w in wheels)
    return f"""schema_version = "1.0.0"
id = "{ADDON_ID}"
version = "{version}"
name = "MotionGPT3"
tagline = "Generate, caption, predict and in-between motion with a local MotionGPT3 backend"
maintainer = "MotionGPT3 for Blender contributors"
type = "add-on"
blender_version_min = "4.2.0"
license = ["SPDX:MIT"]
platforms = ["linux-x64", "linux-arm64", "windows-x64", "macos-arm64", "macos-x64"]
wheels = [
{wheel_lines}]

[permissions]
network = "Talk to the backend over ZeroMQ; download its packages if asked"
files = "Install the local backend into a folder of its own"

[build]
paths_exclude_pattern = ["__pycache__/", "/.git/", "/*.zip", "/_vendor/"]
"""


def vendored_source(path: Path) -> str:
    """A shared/ module's text with `from shared.x import y` made relative (`from .x import y`, `from ..x ...`), so
    the copy inside the add-on package imports its siblings, never a top-level `shared`."""
    text = path.read_text(encoding="utf-8")
    level = len(path.relative_to(ROOT / "shared").parts) - 1  # 0 for shared/client.py, 1 for shared/motion/x.py
    text = re.sub(r"^(\s*)from shared\.", lambda m: f"{m.group(1)}from {'.' * (level + 1)}", text, flags=re.M)
    text = re.sub(
        r"^(\s*)from shared import", lambda m: f"{m.group(1)}from {'.' * (level + 1)} import", text, flags=re.M
    )
    if re.search(r"^\s*import shared\b", text, flags=re.M):
        sys.exit(f"build.py: {path}: use `from shared.x import y` (or relative imports), not `import shared...`")
    return text


# What the backend wheel is built from (a clean copy of these, so that stale build/ output never reaches it).
WHEEL_SOURCES = ("pyproject.toml", "README.md", "LICENSE", "shared", "backend")


def build_wheel(out_dir: Path = DIST) -> Path:
    """dist/motiongpt3_blender-<version>-py3-none-any.whl: the backend and shared/ with the embedded demo model, the
    tokenizer and the other package data (pyproject.toml's package-data; the CMU and held-out clips stay out). Built
    by pip from a fresh copy of the sources, so nothing left over in build/ or an egg-info folder can slip into it."""
    version = project_version()
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("motiongpt3_blender-*.whl"):
        old.unlink()
    staging = Path(tempfile.mkdtemp(prefix="motiongpt3-wheel-"))
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    try:
        for name in WHEEL_SOURCES:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, staging / name, ignore=skip)
            elif source.exists():
                shutil.copy2(source, staging / name)
        pip(Path(sys.executable), "wheel", "--no-deps", "--wheel-dir", str(out_dir), str(staging))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    (wheel,) = out_dir.glob(f"motiongpt3_blender-{version}-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    clips = [n for n in names if n.startswith(("backend/assets/cmu/", "backend/assets/heldout/"))]
    if not any(n.endswith("assets/models/demo.safetensors") for n in names) or clips:
        sys.exit(f"build.py: {wheel.name} must hold the demo model and none of the repository's data clips")
    print(f"wrote {wheel} ({wheel.stat().st_size / 1e6:.1f} MB, {len(names)} files)")
    return wheel


def build_addon() -> Path:
    """dist/motiongpt3_addon-<version>.zip: one top-level folder that installs as an extension and a legacy add-on.

    blender_addon/*.py + shared/ vendored inside the package (no top-level `shared` module reaches Blender) + the
    pyzmq wheels (listed in the manifest: Blender installs the matching one into its own Python) + the backend wheel
    in runtime/ (not listed: Install Local Backend puts it into an environment of its own, never into Blender's
    Python); the version comes from pyproject.toml.
    """
    version = project_version()
    wheels = pyzmq_wheels()
    backend_wheel = build_wheel()
    DIST.mkdir(exist_ok=True)
    out = DIST / f"{ADDON_ID}-{version}.zip"
    init = (ROOT / "blender_addon" / "__init__.py").read_text()
    numbers = ", ".join(version.split("."))
    init, stamped = re.subn(r'"version": \([0-9, ]+\)', f'"version": ({numbers})', init)
    if stamped != 1:
        sys.exit("build.py: bl_info version not found in blender_addon/__init__.py")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{ADDON_ID}/__init__.py", init)
        archive.writestr(f"{ADDON_ID}/blender_manifest.toml", manifest(version, wheels))
        for path in sorted((ROOT / "blender_addon").glob("*.py")):
            if path.name != "__init__.py":
                archive.write(path, f"{ADDON_ID}/{path.name}")
        for path in sorted((ROOT / "shared").rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            name = f"{ADDON_ID}/{path.relative_to(ROOT).as_posix()}"
            if path.suffix == ".py":
                archive.writestr(name, vendored_source(path))
            else:
                archive.write(path, name)
        for wheel in wheels:
            archive.write(wheel, f"{ADDON_ID}/wheels/{wheel.name}")
        archive.write(backend_wheel, f"{ADDON_ID}/runtime/{backend_wheel.name}", compress_type=zipfile.ZIP_STORED)
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, version {version}, {len(wheels)} pyzmq wheels, "
        f"backend {backend_wheel.name})"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    tasks = parser.add_subparsers(dest="task", required=True)
    setup_parser = tasks.add_parser("setup", help="create .venv and install the project")
    setup_parser.add_argument("--test", action="store_true", help="also install the test extras (bpy, pytest)")
    test_parser = tasks.add_parser("test", help="set up, then ruff + pytest")
    test_parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra arguments for pytest")
    tasks.add_parser("demo", help="set up, then run the main job")
    tasks.add_parser("wheel", help="build the backend wheel into dist/")
    tasks.add_parser("addon", help="build the Blender add-on zip (with the backend wheel) into dist/")
    tasks.add_parser("bench-addon", help="set up, then run the add-on benchmarks in real Blender (every bpy set up)")
    args = parser.parse_args()
    try:
        if args.task == "setup":
            setup(with_tests=args.test)
            print(f"build.py setup: {VENV} is ready. Next: `python3.11 build.py demo` or `{VENV}/bin/motiongpt3 -h`.")
        elif args.task == "test":
            test(args.pytest_args)
        elif args.task == "wheel":
            build_wheel()
        elif args.task == "addon":
            build_addon()
        elif args.task == "bench-addon":
            setup(with_tests=True)
            run(PYTHON, ROOT / "tests" / "bench_blender_addon.py")
            for env in BLENDER_ENVS:  # the further Blenders that `build.py test` has set up
                if _reports_version(env.interpreter, env.python):
                    print(f"== {env.label}", flush=True)
                    run(env.interpreter, ROOT / "tests" / "bench_blender_addon.py")
        else:
            demo()
    except subprocess.CalledProcessError as error:
        sys.exit(error.returncode)


if __name__ == "__main__":
    main()
