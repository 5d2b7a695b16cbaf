"""Real-data helpers, offline: small archives built here with CIFAKE's and Tiny-GenImage's structure.

Nothing here reaches past 127.0.0.1: a guard refuses any other address, and the resumable download is
served by a tiny local HTTP server with Range support.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import random
import socket
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from detectlib.data import realdata
from detectlib.data.layout import check_layout, discover_generators

# --------------------------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Refuse, and fail the test on, any attempt to resolve or reach an address but 127.0.0.1.

    Attempts are recorded as well as refused, so code that swallows the refusal still fails the test.
    """
    connect, getaddrinfo, attempts = socket.socket.connect, socket.getaddrinfo, []

    def guarded_connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] != "127.0.0.1":
            attempts.append(address)
            raise ConnectionRefusedError(f"test tried to reach {address}")
        return connect(sock, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host != "127.0.0.1":
            attempts.append(host)
            raise socket.gaierror(f"test tried to resolve {host}")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    yield
    assert attempts == [], f"a test tried to leave 127.0.0.1: {attempts}"


def png(seed: int) -> bytes:
    """A distinct 4x4 PNG per seed."""
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (seed * 37 % 256, seed * 91 % 256, seed * 53 % 256)).save(buf, format="PNG")
    return buf.getvalue()


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused, like a machine with no network."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# CIFAKE: train/{REAL,FAKE}, test/{REAL,FAKE}; 3 + 2 + 2 + 1 images.
CIFAKE_FILES = {
    **{f"train/REAL/{i:04d}.png": png(i) for i in range(3)},
    **{f"train/FAKE/{i:04d}.png": png(10 + i) for i in range(2)},
    **{f"test/REAL/{i:04d}.png": png(20 + i) for i in range(2)},
    "test/FAKE/0000.png": png(30),
}
CIFAKE_MAP = {
    "train/REAL": "train/nature",
    "train/FAKE": "train/ai",
    "test/REAL": "val/nature",
    "test/FAKE": "val/ai",
}
CIFAKE_COUNTS = {"train/ai": 2, "train/nature": 3, "val/ai": 1, "val/nature": 2}

# Tiny-GenImage-like folders: a wrapper folder, two generators, mixed case.
GENIMAGE_FILES = {
    "Tiny-GenImage/ADM/TRAIN/AI/a0.png": png(40),
    "Tiny-GenImage/ADM/TRAIN/AI/a1.png": png(41),
    "Tiny-GenImage/ADM/train/Nature/n0.png": png(42),
    "Tiny-GenImage/ADM/VAL/ai/a2.png": png(43),
    "Tiny-GenImage/ADM/val/NATURE/n1.png": png(44),
    "Tiny-GenImage/BigGAN/train/ai/b0.png": png(45),
    "Tiny-GenImage/BigGAN/train/nature/m0.png": png(46),
    "Tiny-GenImage/BigGAN/train/nature/notes.txt": b"not an image",
    "Tiny-GenImage/BigGAN/val/ai/b1.png": png(47),
    "Tiny-GenImage/BigGAN/val/nature/m1.png": png(48),
}
GENIMAGE_COUNTS = {
    "ADM/train/ai": 2, "ADM/train/nature": 1, "ADM/val/ai": 1, "ADM/val/nature": 1,
    "BigGAN/train/ai": 1, "BigGAN/train/nature": 1, "BigGAN/val/ai": 1, "BigGAN/val/nature": 1,
}  # fmt: skip


# --------------------------------------------------------------------------------------------- a local server


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.payload`` at any path; honours ``Range: bytes=N-`` when ``server.ranges`` is on."""

    def do_GET(self):
        srv = self.server
        data, header = srv.payload, self.headers.get("Range")
        srv.ranges_asked.append(header)
        start = int(header.split("=")[1].split("-")[0]) if header and srv.ranges else 0
        body = data[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        srv.bytes_sent += len(body)  # counted before the write: the client cannot finish reading before this runs
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    srv.payload = random.Random(0).randbytes(200_000)
    srv.ranges, srv.ranges_asked, srv.bytes_sent = True, [], 0
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/data.bin"
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


# --------------------------------------------------------------------------------------------- download


def test_download_verifies_and_renames_into_place(server, tmp_path):
    dest = tmp_path / "dl" / "data.bin"
    sha = hashlib.sha256(server.payload).hexdigest()
    assert realdata.download(server.url, dest, sha256=sha, size=len(server.payload), progress=False) == dest
    assert dest.read_bytes() == server.payload
    assert not dest.with_name("data.bin.part").exists()


def test_partial_download_is_completed_not_restarted(server, tmp_path):
    dest, half = tmp_path / "data.bin", len(server.payload) // 2
    dest.with_name("data.bin.part").write_bytes(server.payload[:half])
    realdata.download(server.url, dest, sha256=hashlib.sha256(server.payload).hexdigest(), progress=False)
    assert dest.read_bytes() == server.payload
    assert server.ranges_asked == [f"bytes={half}-"]
    assert server.bytes_sent == len(server.payload) - half  # only the missing half crossed the wire


def test_server_without_range_support_gives_a_fresh_complete_file(server, tmp_path):
    server.ranges = False
    dest, half = tmp_path / "data.bin", len(server.payload) // 2
    dest.with_name("data.bin.part").write_bytes(server.payload[:half])
    realdata.download(server.url, dest, size=len(server.payload), progress=False)
    assert dest.read_bytes() == server.payload  # restarted, not appended to the half already there


@pytest.mark.parametrize("check", ["sha256", "size"])
def test_corrupted_download_is_rejected_and_discarded(server, tmp_path, check):
    dest = tmp_path / "data.bin"
    wrong = {"sha256": "0" * 64, "size": len(server.payload) + 1}[check]
    with pytest.raises(realdata.ChecksumError, match="expected"):
        realdata.download(server.url, dest, progress=False, **{check: wrong})
    assert not dest.exists() and not dest.with_name("data.bin.part").exists()


def test_verify_file_passes_a_good_file_and_rejects_a_corrupted_one(tmp_path):
    good = tmp_path / "good.bin"
    good.write_bytes(b"detectlib")
    sha = hashlib.sha256(b"detectlib").hexdigest()
    assert realdata.verify_file(good, size=9, sha256=sha.upper()) == good
    good.write_bytes(b"detectlix")
    with pytest.raises(realdata.ChecksumError, match="SHA-256"):
        realdata.verify_file(good, size=9, sha256=sha)


def test_a_complete_verified_file_is_not_downloaded_again(tmp_path):
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"brought by hand")
    url = f"http://127.0.0.1:{closed_port()}/data.bin"  # would fail if contacted
    assert realdata.download(url, dest, sha256=hashlib.sha256(b"brought by hand").hexdigest()) == dest
    dest.write_bytes(b"brought by hand, but corrupted")
    with pytest.raises(realdata.ChecksumError):
        realdata.download(url, dest, sha256=hashlib.sha256(b"brought by hand").hexdigest())
    assert dest.read_bytes() == b"brought by hand, but corrupted"  # reported, never deleted


def test_offline_download_is_one_clear_line(tmp_path):
    url, dest = f"http://127.0.0.1:{closed_port()}/cifake.zip", tmp_path / "cifake.zip"
    with pytest.raises(realdata.DownloadError) as info:
        realdata.download(url, dest, progress=False)
    message = str(info.value)
    assert url in message and "offline" in message and str(dest) in message and "\n" not in message
    assert not dest.exists()


# --------------------------------------------------------------------------------------------- archives


@pytest.mark.parametrize("evil", ["../evil.png", "train/../../evil.png", "/tmp/evil.png", "C:/evil.png"])
def test_path_traversal_member_is_rejected_before_anything_is_written(tmp_path, evil):
    archive = write_zip(tmp_path / "bad.zip", {"train/REAL/ok.png": png(1), evil: png(2)})
    dest = tmp_path / "out" / "extracted"
    with pytest.raises(realdata.UnsafeArchiveError, match="refused member"):
        realdata.extract_archive(archive, dest)
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.png").exists()  # nothing written


def test_tar_links_are_rejected(tmp_path):
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as tf:
        link = tarfile.TarInfo("train/REAL/link.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    with pytest.raises(realdata.UnsafeArchiveError, match="links"):
        realdata.extract_archive(archive, tmp_path / "out")


# --------------------------------------------------------------------------------------------- CIFAKE


def test_cifake_zip_becomes_the_reference_layout(tmp_path):
    archive = write_zip(tmp_path / "cifake.zip", CIFAKE_FILES)
    before = file_hash(archive)
    dest = tmp_path / "raw" / "CIFAKE"
    report = realdata.fetch_cifake(dest, archive=archive, downloads=tmp_path / "dl", progress=False)
    assert report.counts == CIFAKE_COUNTS and (report.copied, report.skipped) == (8, 0)
    check_layout(dest)
    for name, data in CIFAKE_FILES.items():  # FAKE -> ai, REAL -> nature, test -> val, bytes unchanged
        src_folder, file = name.rsplit("/", 1)
        assert (dest / CIFAKE_MAP[src_folder] / file).read_bytes() == data
    assert file_hash(archive) == before


def test_cifake_is_downloaded_once_then_reused_offline(server, tmp_path):
    server.payload = write_zip(tmp_path / "served.zip", CIFAKE_FILES).read_bytes()
    dest, dl = tmp_path / "CIFAKE", tmp_path / "dl"
    assert realdata.fetch_cifake(dest, url=server.url, downloads=dl, progress=False).counts == CIFAKE_COUNTS
    offline = f"http://127.0.0.1:{closed_port()}/cifake.zip"
    again = realdata.fetch_cifake(dest, url=offline, downloads=dl, progress=False)
    assert (again.copied, again.skipped) == (0, 8) and len(server.ranges_asked) == 1


def test_cifake_conversion_copies_never_moves_and_is_idempotent(tmp_path):
    src = write_tree(tmp_path / "unzipped" / "cifake", CIFAKE_FILES)  # a wrapper folder is tolerated
    before = tree_hashes(src)
    dest = tmp_path / "out"
    assert realdata.convert_cifake(tmp_path / "unzipped", dest, progress=False).copied == 8
    converted = tree_hashes(dest)
    again = realdata.convert_cifake(tmp_path / "unzipped", dest, progress=False)
    assert (again.copied, again.skipped, again.counts) == (0, 8, CIFAKE_COUNTS)
    assert tree_hashes(src) == before and tree_hashes(dest) == converted  # sources byte for byte


def test_cifake_conversion_never_overwrites_a_different_file(tmp_path):
    src = write_tree(tmp_path / "cifake", CIFAKE_FILES)
    dest = tmp_path / "out"
    realdata.convert_cifake(src, dest, progress=False)
    mine = dest / "train" / "ai" / "0000.png"
    mine.write_bytes(png(99))
    with pytest.raises(realdata.ConflictError, match="never overwrite"):
        realdata.convert_cifake(src, dest, progress=False)
    assert mine.read_bytes() == png(99)


def test_cifake_offline_error_says_what_where_and_where_to_put_it(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/cifake.zip"
    with pytest.raises(realdata.DownloadError) as info:
        realdata.fetch_cifake(tmp_path / "CIFAKE", url=url, downloads=tmp_path / "dl", progress=False)
    message = str(info.value)
    assert f"kaggle datasets download -d {realdata.CIFAKE_KAGGLE}" in message
    assert str(tmp_path / "dl" / "cifake.zip") in message and "\n" not in message


# --------------------------------------------------------------------------------------------- Tiny-GenImage


def test_tiny_genimage_archive_becomes_per_generator_folders(tmp_path):
    archive = write_zip(tmp_path / "tiny.zip", GENIMAGE_FILES)
    before = file_hash(archive)
    raw = tmp_path / "raw"
    report = realdata.fetch_tiny_genimage(raw, archive=archive, downloads=tmp_path / "dl", progress=False)
    assert report.counts == GENIMAGE_COUNTS and report.copied == 9
    assert discover_generators(raw) == ["ADM", "BigGAN"]
    for generator in ("ADM", "BigGAN"):
        check_layout(raw / generator)
    assert (raw / "ADM" / "train" / "ai" / "a1.png").read_bytes() == png(41)
    assert not list(raw.rglob("*.txt")) and file_hash(archive) == before


def test_tiny_genimage_folder_is_used_in_place_unchanged_and_idempotently(tmp_path):
    src = write_tree(tmp_path / "src", GENIMAGE_FILES)
    before = tree_hashes(src)
    raw = tmp_path / "raw"
    assert (
        realdata.fetch_tiny_genimage(raw, archive=src, downloads=tmp_path / "dl", progress=False).copied == 9
    )
    again = realdata.fetch_tiny_genimage(raw, archive=src, downloads=tmp_path / "dl", progress=False)
    assert (again.copied, again.skipped) == (0, 9)
    assert tree_hashes(src) == before and not (tmp_path / "dl").exists()


def test_tiny_genimage_parquet_rows_deal_real_photos_to_generators(tmp_path, monkeypatch):
    """The Hub copy is parquet: fake shards (JSON here, pyarrow is not needed to test the mapping)."""

    def row(label: str, generator: str, seed: int) -> dict:
        return {"label": label, "generator": generator, "image": base64.b64encode(png(seed)).decode()}

    shards = {
        "data/train-00000-of-00002.parquet": [
            row("fake", "ADM", 1),
            row("real", "Real", 2),
            row("fake", "BigGAN", 3),
        ],
        "data/train-00001-of-00002.parquet": [
            row("real", "Real", 4),
            row("real", "Real", 5),
            row("real", "Real", 6),
        ],
        "data/validation-00000-of-00001.parquet": [row("fake", "ADM", 7), row("real", "Real", 8)],
        ".cache/huggingface/ignored.parquet": [row("fake", "Nope", 9)],
    }
    src = write_tree(tmp_path / "snapshot", {k: json.dumps(v).encode() for k, v in shards.items()})

    def fake_read(path: Path, columns: list[str]):
        for r in json.loads(path.read_text()):
            yield {
                c: {"bytes": base64.b64decode(r[c]), "path": None} if c == "image" else r[c] for c in columns
            }

    monkeypatch.setattr(realdata, "_read_parquet", fake_read)
    raw = tmp_path / "raw"
    report = realdata.convert_tiny_genimage(src, raw, progress=False)
    assert report.counts == {
        "ADM/train/ai": 1, "ADM/train/nature": 2, "BigGAN/train/ai": 1, "BigGAN/train/nature": 2,
        "ADM/val/ai": 1, "ADM/val/nature": 1,
    }  # fmt: skip
    assert sorted(p.name for p in raw.iterdir()) == ["ADM", "BigGAN"]  # no "Real" generator, no "Nope"
    assert (raw / "ADM" / "val" / "nature" / "000001.png").read_bytes() == png(8)
    assert realdata.convert_tiny_genimage(src, raw, progress=False).copied == 0


def test_class_label_names_come_from_the_hugging_face_metadata():
    features = {"generator": {"names": ["Real", "X"], "_type": "ClassLabel"}, "image": {"_type": "Image"}}
    names = realdata._class_label_names(
        {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    )
    assert names["generator"] == ["Real", "X"] and names["label"] == ["real", "fake"]
    assert realdata._class_label_names(None)["generator"][1] == "ADM"


def test_tiny_genimage_offline_error_says_what_where_and_where_to_put_it(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(realdata.DownloadError) as info:
        realdata.fetch_tiny_genimage(tmp_path / "raw", downloads=tmp_path / "dl", progress=False)
    message = str(info.value)
    assert f"https://huggingface.co/datasets/{realdata.TINY_GENIMAGE_REPO}" in message
    assert f"archive='{tmp_path / 'dl' / 'Tiny-GenImage'}'" in message and "\n" not in message


def test_a_folder_without_the_layout_is_a_clear_error(tmp_path):
    src = write_tree(tmp_path / "src", {"photos/cat.png": png(1)})
    with pytest.raises(realdata.LayoutError, match="no GenImage folders"):
        realdata.convert_tiny_genimage(src, tmp_path / "raw", progress=False)
    with pytest.raises(realdata.LayoutError, match="expected one CIFAKE folder"):
        realdata.convert_cifake(src, tmp_path / "out", progress=False)
