"""``detectlib.data.packages``: offline, with fake ``apt-get``, ``dpkg-deb`` and ``npm`` on ``PATH`` (small Python
scripts that write tiny archives and log each call) and a fake ``pip download`` in place of ``packages._run``."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from detectlib.data import packages
from detectlib.data.packages import PackageFetcher, PackageRef, missing_hint, packages_cache

ARCHIVE_HELPER = '''
import io, os, sys, tarfile
def log(*words):
    with open(os.environ["FAKE_LOG"], "a") as f:
        f.write(" ".join(words) + "\\n")
def fail_if(tool, message, code):
    if os.environ.get("FAKE_FAIL") == tool:
        print(message, file=sys.stderr)
        sys.exit(code)
def tarball(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
'''

FAKE_APT_GET = '''
log("apt-get", *sys.argv[1:])
name, _, version = sys.argv[-1].partition("=")
fail_if("apt-get", "E: Unable to locate package " + name, 100)
if version and version != "2.0":
    print(f"E: Version '{version}' for '{name}' was not found", file=sys.stderr)
    sys.exit(100)
tarball(f"{name}_2.0_all.deb", {f"usr/share/{name}/photo.jpg": b"jpeg", f"usr/share/doc/{name}/copyright": b"MIT"})
'''

FAKE_DPKG_DEB = '''
log("dpkg-deb", *sys.argv[1:])
with tarfile.open(sys.argv[2]) as tar:
    tar.extractall(sys.argv[3], filter="data")
'''

FAKE_NPM = '''
log("npm", *sys.argv[1:])
spec = sys.argv[-1]
name, _, version = spec[1:].partition("@")
name = spec[0] + name
fail_if("npm", f"npm error 404 Not Found - GET https://registry.npmjs.org/{name} - Not found", 1)
tgz = f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
tarball(tgz, {"package/package.json": b"{}", "package/dist/model.bin": b"weights"})
print(tgz)
'''


@pytest.fixture
def tools(tmp_path, monkeypatch) -> Path:
    """Fake registry clients first on PATH; returns the log of their calls (one line each)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in [("apt-get", FAKE_APT_GET), ("dpkg-deb", FAKE_DPKG_DEB), ("npm", FAKE_NPM)]:
        script = bin_dir / name
        script.write_text(f"#!{sys.executable}\n{ARCHIVE_HELPER}\n{body}")
        script.chmod(0o755)
    log = tmp_path / "calls.log"
    log.touch()
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return log


def _calls(log: Path) -> list[str]:
    return log.read_text().splitlines()


def _left_over(cache: Path) -> list[str]:
    """Anything in the cache but finished packages: temporary folders or half-unpacked trees."""
    return sorted(p.name for p in cache.iterdir() if p.name not in packages.REGISTRIES) if cache.is_dir() else []


def _fake_pip(mode: str, calls: list[list[str]]):
    """A stand-in for ``packages._run`` running ``pip download``: ``wheel``, ``sdist`` (the first call fails, the
    ``--no-binary`` retry gets a .tar.gz), ``sdist-zip`` (the same, a .zip) or ``fail``."""

    def run(cmd, cwd):
        cmd = [str(c) for c in cmd]
        calls.append(cmd)
        dest, spec = Path(cmd[cmd.index("-d") + 1]), cmd[-1]
        name, _, version = spec.partition("==")
        if mode == "fail" or (mode.startswith("sdist") and "--no-binary" not in cmd):
            return subprocess.CompletedProcess(cmd, 1, "", f"ERROR: No matching distribution found for {spec}")
        dest.mkdir(parents=True, exist_ok=True)
        top = f"{name}-{version}/"
        members = {f"{name}/data/a.png": b"png", "setup.py": b""} if mode.startswith("sdist") else \
            {f"{name}/data/a.png": b"png", f"{name}-{version}.dist-info/METADATA": b""}
        if mode == "sdist":
            with tarfile.open(dest / f"{name}-{version}.tar.gz", "w:gz") as tar:
                for member, data in members.items():
                    info = tarfile.TarInfo(top + member)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        else:
            suffix, prefix = (".zip", top) if mode == "sdist-zip" else ("-py3-none-any.whl", "")
            with zipfile.ZipFile(dest / f"{name}-{version}{suffix}", "w") as zf:
                for member, data in members.items():
                    zf.writestr(prefix + member, data)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    return run


# ------------------------------------------------------------------------------------------------ names and places
def test_cache_folder_and_keys(tmp_path, monkeypatch):
    monkeypatch.setenv(packages.PACKAGES_ENV, str(tmp_path / "pk"))
    assert packages_cache() == tmp_path / "pk"
    monkeypatch.delenv(packages.PACKAGES_ENV)
    assert packages_cache() == Path.home() / ".cache" / "detectlib" / "packages"
    assert PackageRef("debian", "gcompris-qt-data", "").key == "debian/gcompris-qt-data"
    assert PackageRef("npm", "@vladmandic/face-api", "1.7.15").key == "npm/vladmandic__face-api"
    assert PackageRef("pypi", "../etc", "1").key == "pypi/_..__etc"
    assert PackageRef("npm", "@a/b", "1").spec == "@a/b@1" and PackageRef("pypi", "x", "").spec == "x"
    with pytest.raises(ValueError):
        PackageRef("conda", "x", "1")


# ------------------------------------------------------------------------------------------------------- debian
def test_debian_is_fetched_once_and_unpacked_in_place(tmp_path, tools):
    cache = tmp_path / "cache"
    ref = PackageRef("debian", "fake-photos", "2.0")
    fetcher = PackageFetcher(cache)
    path = fetcher.file(ref, "/usr/share/fake-photos/photo.jpg")
    assert path == cache / "debian" / "fake-photos" / "usr" / "share" / "fake-photos" / "photo.jpg"
    assert path.read_bytes() == b"jpeg"
    assert fetcher.file(ref, "usr/share/doc/fake-photos/copyright").read_bytes() == b"MIT"
    assert fetcher.file(ref, "usr/share/fake-photos/absent.jpg") is None
    assert PackageFetcher(cache).root(ref) == cache / "debian" / "fake-photos"  # a new run reuses the cache
    assert [c.split()[:2] for c in _calls(tools)] == [["apt-get", "download"], ["dpkg-deb", "-x"]]
    assert _calls(tools)[0].endswith("fake-photos=2.0")
    assert fetcher.failed == {} and _left_over(cache) == []


def test_debian_version_the_distribution_moved_on_from_is_fetched_current(tmp_path, tools):
    fetcher = PackageFetcher(tmp_path / "cache")
    assert fetcher.root(PackageRef("debian", "fake-photos", "1.0")) is not None
    assert [c.split()[-1] for c in _calls(tools)][:2] == ["fake-photos=1.0", "fake-photos"]
    assert fetcher.failed == {}


def test_debian_installed_file_is_used_as_it_is(tmp_path, tools):
    installed = tmp_path / "usr" / "share" / "backgrounds" / "x.jpg"
    installed.parent.mkdir(parents=True)
    installed.write_bytes(b"here")
    fetcher = PackageFetcher(tmp_path / "cache")
    assert fetcher.file(PackageRef("debian", "bg", "1"), str(installed)) == installed
    assert _calls(tools) == [] and not (tmp_path / "cache").exists()


def test_refused_package_is_one_line_tried_once_and_leaves_nothing(tmp_path, tools, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "apt-get")
    cache = tmp_path / "cache"
    ref = PackageRef("debian", "gone-photos", "")
    fetcher = PackageFetcher(cache)
    assert fetcher.root(ref) is None and fetcher.file(ref, "/usr/share/gone/x.jpg") is None
    assert len(_calls(tools)) == 1
    why = fetcher.failed[ref]
    assert "\n" not in why and "apt-get download failed" in why and "Unable to locate package gone-photos" in why
    hint = missing_hint(ref, "3 photos", why, cache)
    assert "\n" not in hint and hint.startswith("missing gone-photos (3 photos): apt-get download failed")
    assert "`apt-get install gone-photos`" in hint and str(cache / "debian" / "gone-photos") in hint
    assert not (cache / "debian").exists() and _left_over(cache) == []


def test_missing_tool_and_fetching_off_are_reasons_not_errors(tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    fetcher = PackageFetcher(tmp_path / "cache")
    deb, npm = PackageRef("debian", "a", ""), PackageRef("npm", "b", "1.0")
    assert fetcher.root(deb) is None and fetcher.root(npm) is None
    assert "no apt-get or dpkg-deb here" in fetcher.failed[deb] and "no npm here" in fetcher.failed[npm]
    offline = PackageFetcher(tmp_path / "cache", fetch=False)
    assert offline.root(deb) is None and "fetching is off" in offline.failed[deb]
    assert _left_over(tmp_path / "cache") == []


def test_timeout_is_a_reason(tmp_path, monkeypatch):
    def hang(cmd, cwd):
        raise subprocess.TimeoutExpired(list(cmd), packages.FETCH_TIMEOUT_S)

    monkeypatch.setattr(packages, "_run", hang)
    fetcher = PackageFetcher(tmp_path / "cache")
    ref = PackageRef("pypi", "slow", "1.0")
    assert fetcher.root(ref) is None
    assert fetcher.failed[ref] == f"pip download timed out after {packages.FETCH_TIMEOUT_S} s"
    assert _left_over(tmp_path / "cache") == []


# --------------------------------------------------------------------------------------------------------- pypi
@pytest.mark.parametrize("mode", ["wheel", "sdist", "sdist-zip"])
def test_pypi_wheel_or_sdist_unpacks_relative_to_the_project(tmp_path, monkeypatch, mode):
    calls: list[list[str]] = []
    monkeypatch.setattr(packages, "_run", _fake_pip(mode, calls))
    cache = tmp_path / "cache"
    ref = PackageRef("pypi", "imgfake", "2.1.0")
    fetcher = PackageFetcher(cache)
    assert fetcher.file(ref, "imgfake/data/a.png") == cache / "pypi" / "imgfake" / "imgfake" / "data" / "a.png"
    assert fetcher.file(ref, "imgfake/data/a.png").read_bytes() == b"png"
    assert fetcher.file(ref, "../../x") is None
    assert all(c[:4] == [sys.executable, "-m", "pip", "download"] and "--no-deps" in c for c in calls)
    assert [("--no-binary" in c) for c in calls] == ([False] if mode == "wheel" else [False, True])
    assert calls[0][-1] == "imgfake==2.1.0" and _left_over(cache) == []


def test_pypi_failure_hint_names_pip_download(tmp_path, monkeypatch):
    monkeypatch.setattr(packages, "_run", _fake_pip("fail", []))
    ref = PackageRef("pypi", "nope", "1.0")
    fetcher = PackageFetcher(tmp_path / "cache")
    assert fetcher.file(ref, "nope/x.png") is None
    assert fetcher.failed[ref] == "pip download failed (ERROR: No matching distribution found for nope==1.0)"
    hint = missing_hint(ref, "1 photo", fetcher.failed[ref], tmp_path / "cache")
    assert hint.startswith("missing nope (1 photo)") and "`pip download --no-deps nope==1.0`" in hint
    assert _left_over(tmp_path / "cache") == []


# ---------------------------------------------------------------------------------------------------------- npm
def test_npm_tarball_unpacks_without_its_package_folder(tmp_path, tools):
    cache = tmp_path / "cache"
    ref = PackageRef("npm", "@scope/face-fake", "1.7.15")
    fetcher = PackageFetcher(cache)
    path = fetcher.file(ref, "dist/model.bin")
    assert path == cache / "npm" / "scope__face-fake" / "dist" / "model.bin" and path.read_bytes() == b"weights"
    assert fetcher.file(ref, "package.json") is not None
    assert _calls(tools) == ["npm pack --ignore-scripts @scope/face-fake@1.7.15"] and _left_over(cache) == []


def test_npm_failure_hint_names_npm_pack(tmp_path, tools, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "npm")
    ref = PackageRef("npm", "tracking-fake", "1.1.3")
    fetcher = PackageFetcher(tmp_path / "cache")
    assert fetcher.root(ref) is None and fetcher.root(ref) is None and len(_calls(tools)) == 1
    assert fetcher.failed[ref].startswith("npm pack failed (npm error 404 Not Found")
    hint = missing_hint(ref, "2 photos", fetcher.failed[ref], tmp_path / "cache")
    assert "tracking-fake (2 photos)" in hint and "`npm pack tracking-fake@1.1.3`" in hint
    assert _left_over(tmp_path / "cache") == []
