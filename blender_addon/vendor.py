"""Make `zmq` importable: the extension installer provides it from the manifest's wheels; a legacy install unpacks the
matching bundled wheel into `_vendor/` (BLENDER_NOTES.md §1.4). Standard library only: runs before anything else."""

from __future__ import annotations

import os
import platform
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
WHEELS = os.path.join(HERE, "wheels")
VENDOR = os.path.join(HERE, "_vendor")


def _platform_tag_matches(tag: str, system: str, machine: str) -> bool:
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine.lower(), machine.lower())
    if system == "linux":
        return (tag.startswith("manylinux") or tag.startswith("musllinux") or tag.startswith("linux")) and (
            tag.endswith("_" + machine)
        )
    if system == "win32":
        return tag == {"x86_64": "win_amd64", "aarch64": "win_arm64"}.get(machine, "")
    if system == "darwin":
        mac_arch = "arm64" if machine == "aarch64" else machine
        return tag.startswith("macosx") and (tag.endswith("_universal2") or tag.endswith("_" + mac_arch))
    return False


def _python_tag_matches(tag: str, abi: str, python: tuple[int, int]) -> bool:
    """cp311 + cp311 abi: exactly 3.11; cp312 + abi3 (the stable ABI): CPython 3.12 and newer."""
    if not tag.startswith("cp") or not tag[2:].isdigit():
        return False
    built = (int(tag[2]), int(tag[3:]))
    return built <= python if abi == "abi3" else built == python


def matching_wheel(names: list[str], system: str, machine: str, python: tuple[int, int]) -> str | None:
    """The first wheel (sorted by name) for this CPython version, OS (`sys.platform`) and machine, or None."""
    for name in sorted(names):
        if not name.endswith(".whl"):
            continue
        parts = name[:-4].split("-")  # name-version[-build]-python-abi-platform(s)
        if len(parts) < 5:
            continue
        python_tags, abi, platform_tags = parts[-3].split("."), parts[-2], parts[-1].split(".")
        if not any(_python_tag_matches(tag, abi, python) for tag in python_tags):
            continue
        if any(_platform_tag_matches(tag, system, machine) for tag in platform_tags):
            return name
    return None


def ensure_zmq() -> str:
    """Import zmq, unpacking the bundled wheel first where needed; returns "installed" or "vendored"."""
    try:
        import zmq

        return "installed"
    except ImportError:
        pass
    if not os.path.isdir(os.path.join(VENDOR, "zmq")):
        names = os.listdir(WHEELS) if os.path.isdir(WHEELS) else []
        wheel = matching_wheel(names, sys.platform, platform.machine(), sys.version_info[:2])
        if wheel is None:
            raise ImportError(
                f"no bundled pyzmq wheel for CPython {sys.version_info[0]}.{sys.version_info[1]} on "
                f"{sys.platform}/{platform.machine()} (have: {', '.join(sorted(names)) or 'none'})"
            )
        with zipfile.ZipFile(os.path.join(WHEELS, wheel)) as archive:
            archive.extractall(VENDOR)  # a compiled extension cannot be imported from inside the .whl
    if VENDOR not in sys.path:
        sys.path.insert(0, VENDOR)
    import zmq  # noqa: F401

    return "vendored"
