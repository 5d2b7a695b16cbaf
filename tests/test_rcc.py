"""The Qt resource (.rcc) reader, on small archives written here in Qt's layout: data, names, then the tree."""

from __future__ import annotations

import hashlib
import struct
import sys
import zlib
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image

from detectlib.data.rcc import RccError, extract, list_entries, read_entry

RAW = b"plain bytes, stored as they are"


def _png() -> bytes:
    out = BytesIO()
    Image.new("RGB", (8, 6), (200, 40, 90)).save(out, format="PNG")
    return out.getvalue()


def _name(text: str) -> bytes:
    """A names-table record: length in characters, Qt's hash (not read by the reader, so 0), UTF-16BE."""
    return struct.pack(">HI", len(text), 0) + text.encode("utf-16-be")


def _write_rcc(path: Path, version: int, folder: str, files: list[tuple[str, int, bytes]]) -> Path:
    """An archive holding ``folder/name`` for each (name, flags, content); flag 0x01 stores content as qCompress
    does (uncompressed size, then zlib), any other flags store it as given."""
    data, names, name_offsets = b"", b"", []
    for text in [folder] + [name for name, _, _ in files]:
        name_offsets.append(len(names))
        names += _name(text)
    tail = struct.pack(">Q", 0) if version >= 2 else b""  # the modification time
    tree = struct.pack(">IHII", 0, 0x02, 1, 1) + tail  # the root: one child, node 1
    tree += struct.pack(">IHII", name_offsets[0], 0x02, len(files), 2) + tail
    for (_, flags, content), name_offset in zip(files, name_offsets[1:], strict=True):
        stored = struct.pack(">I", len(content)) + zlib.compress(content) if flags == 0x01 else content
        tree += struct.pack(">IHHHI", name_offset, flags, 0, 1, len(data)) + tail
        data += struct.pack(">I", len(stored)) + stored
    header_size = 24 if version >= 3 else 20
    offsets = (header_size + len(data) + len(names), header_size, header_size + len(data))
    header = b"qres" + struct.pack(">IIII", version, *offsets) + (struct.pack(">I", 1) if version >= 3 else b"")
    path.write_bytes(header + data + names + tree)
    return path


@pytest.fixture(params=[2, 3])
def archive(request, tmp_path) -> Path:
    files = [("raw.bin", 0x00, RAW), ("cat.png", 0x01, _png())]
    return _write_rcc(tmp_path / f"photos_v{request.param}.rcc", request.param, "words", files)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_lists_and_reads_stored_and_zlib_entries(archive):
    assert list_entries(archive) == ["words/cat.png", "words/raw.bin"]
    assert read_entry(archive, "words/raw.bin") == RAW
    assert read_entry(archive, "words/cat.png") == _png()
    assert Image.open(BytesIO(read_entry(archive, "words/cat.png"))).size == (8, 6)


def test_extract_writes_the_entries_and_leaves_the_archive_alone(archive, tmp_path):
    before = _sha256(archive)
    written = extract(archive, ["words/cat.png", "words/raw.bin"], tmp_path / "out")
    assert written == [tmp_path / "out/words/cat.png", tmp_path / "out/words/raw.bin"]
    assert [path.read_bytes() for path in written] == [_png(), RAW]
    assert _sha256(archive) == before
    assert sorted(p.name for p in (tmp_path / "out/words").iterdir()) == ["cat.png", "raw.bin"]  # no temp files


def test_an_unknown_entry_is_named_and_nothing_is_written(archive, tmp_path):
    with pytest.raises(RccError, match=r"photos_v\d\.rcc: no entry 'words/dog\.png'"):
        extract(archive, ["words/raw.bin", "words/dog.png"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_png_is_not_an_rcc_file(tmp_path):
    fake = tmp_path / "fake.rcc"
    fake.write_bytes(_png())
    with pytest.raises(RccError, match=r"fake\.rcc: not a Qt resource"):
        list_entries(fake)


def test_a_truncated_archive_is_named(archive):
    archive.write_bytes(archive.read_bytes()[:-30])
    with pytest.raises(RccError, match=rf"{archive.name}: truncated"):
        list_entries(archive)


def test_zstd_without_zstandard_and_unknown_compression_name_the_entry(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "zstandard", None)  # the import fails even where zstandard is installed
    path = _write_rcc(tmp_path / "qt6.rcc", 3, "d", [("z.webp", 0x04, b"\x28\xb5\x2f\xfd"), ("u.bin", 0x08, RAW)])
    with pytest.raises(RccError, match=r"qt6\.rcc: entry 'd/z\.webp' is zstd-compressed .* zstandard"):
        read_entry(path, "d/z.webp")
    with pytest.raises(RccError, match=r"qt6\.rcc: entry 'd/u\.bin' has unknown compression flags 0x08"):
        read_entry(path, "d/u.bin")
