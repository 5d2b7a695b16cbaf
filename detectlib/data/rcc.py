"""Qt binary resource files (``.rcc``) -> the files inside them: list them, read one, extract some.

WILD v2 reads GCompris' photos out of its .rcc files: the Debian package ``gcompris-qt-data`` ships its images
only inside ``usr/share/gcompris-qt/rcc/*.rcc``, Qt's own archive format, which no Python library reads.

The format (written by Qt's ``src/tools/rcc/rcc.cpp``, read by ``src/corelib/io/qresource.cpp``), every integer
big-endian: ``qres``, the version (1 to 3), the offsets of the tree, the data and the names, and from version 3 a
flags word. The tree is an array of nodes, node 0 the root directory; a node is its name's offset (u32) and flags
(u16), then for a directory its child count and first child's index (u32 each), for a file its territory and
language (u16 each) and data offset (u32), and from version 2 a modification time (u64). A name is its length in
characters (u16), Qt's hash of it (u32) and its UTF-16BE characters; a file's data is its size (u32) and its bytes,
stored as is, zlib-compressed (flag 0x01: a 4-byte uncompressed size, then a zlib stream) or zstd-compressed (flag
0x04, Qt 6). Lookups here go by path, so the hashes are never read.

Every problem with an archive is an ``RccError`` naming the file and what is wrong; an archive is only ever read.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..files import atomic_write

_MAGIC = b"qres"
_ZLIB, _DIRECTORY, _ZSTD = 0x01, 0x02, 0x04
_NODE_SIZE = {1: 14, 2: 22, 3: 22}  # by version: version 2 added the u64 modification time
_HEADER = struct.Struct(">IIII")  # version, tree offset, data offset, names offset
# name offset, flags, then two u32: a directory's child count and first child; a file's territory and language
# (two u16, unused here) and its data offset
_NODE = struct.Struct(">IHII")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


class RccError(ValueError):
    """A file that is not a readable Qt resource archive; the one-line message names the file and the problem."""


@dataclass(frozen=True)
class _Entry:
    """Where one file's stored bytes lie in the archive, and how they are compressed."""

    flags: int
    start: int
    end: int


def list_entries(path: Path | str) -> list[str]:
    """Every file inside the archive, sorted, as ``dir/sub/name.ext`` (``/`` separators, no leading slash)."""
    return sorted(_index(path, Path(path).read_bytes()))


def read_entry(path: Path | str, name: str) -> bytes:
    """The decompressed bytes of the file ``name`` (as ``list_entries`` gives it) inside the archive."""
    buf = Path(path).read_bytes()
    return _content(path, buf, name, _lookup(path, _index(path, buf), name))


def extract(path: Path | str, names: Iterable[str], out_dir: Path | str) -> list[Path]:
    """Write the files ``names`` under ``out_dir``, keeping their paths inside the archive; returns the paths.

    Every name is checked before anything is written, so a wrong name leaves ``out_dir`` as it was; each file is
    written atomically, and a target that is the archive itself is refused, since the archive is only read.
    """
    buf = Path(path).read_bytes()
    entries = _index(path, buf)
    source = Path(path).resolve()
    jobs = []
    for name in names:
        entry, target = _lookup(path, entries, name), Path(out_dir) / name
        if target.resolve() == source:
            raise RccError(f"{path}: extracting {name!r} into {out_dir} would overwrite the archive itself")
        jobs.append((target, name, entry))
    return [_save(target, _content(path, buf, name, entry)) for target, name, entry in jobs]


def _save(target: Path, data: bytes) -> Path:
    return atomic_write(target, lambda tmp: tmp.write_bytes(data))


def _lookup(path: Path | str, entries: dict[str, _Entry], name: str) -> _Entry:
    if name not in entries:
        raise RccError(f"{path}: no entry {name!r} in this archive (list_entries gives the {len(entries)} there)")
    return entries[name]


def _index(path: Path | str, buf: bytes) -> dict[str, _Entry]:
    """Walk the tree from the root: every file's path -> where its data lies, checked to lie inside the file.

    Each node is visited once, so a malformed tree that loops or shares nodes is an error, not a hang.
    """
    version, tree, data, names = _header(path, buf)
    node_size = _NODE_SIZE[version]
    entries: dict[str, _Entry] = {}
    seen = {0}
    pending = [(0, "")]
    while pending:
        node, prefix = pending.pop()
        _, flags, count, first = _unpack(path, buf, _NODE, tree + node * node_size, f"tree node {node}")
        if not flags & _DIRECTORY:  # only the root can fail this: other nodes are queued as directories
            raise RccError(f"{path}: malformed tree: the root node is not a directory")
        for child in range(first, first + count):
            if child in seen:
                raise RccError(f"{path}: malformed tree: node {child} is reached twice")
            seen.add(child)
            name_offset, flags, _, offset = _unpack(path, buf, _NODE, tree + child * node_size,
                                                    f"tree node {child}")
            child_path = prefix + _name(path, buf, names + name_offset)
            if flags & _DIRECTORY:
                pending.append((child, child_path + "/"))
            else:
                entries[child_path] = _locate(path, buf, data + offset, flags, child_path)
    return entries


def _header(path: Path | str, buf: bytes) -> tuple[int, int, int, int]:
    """(version, tree offset, data offset, names offset); the version 3 flags word only sums up the entries'."""
    if not buf.startswith(_MAGIC):
        raise RccError(f"{path}: not a Qt resource (.rcc) file: it does not start with 'qres'")
    version, tree, data, names = _unpack(path, buf, _HEADER, len(_MAGIC), "the header")
    if version not in _NODE_SIZE:
        raise RccError(f"{path}: unsupported rcc format version {version} (this reader knows 1, 2 and 3)")
    return version, tree, data, names


def _name(path: Path | str, buf: bytes, start: int) -> str:
    """One path component; one that could climb out of an extraction folder is refused."""
    (length,) = _unpack(path, buf, _U16, start, "a name")
    _check_within(path, buf, start + 6, 2 * length, "a name")  # the characters follow the length and the hash
    raw = buf[start + 6:start + 6 + 2 * length]
    try:
        name = raw.decode("utf-16-be")
    except UnicodeDecodeError as err:
        raise RccError(f"{path}: the name at byte {start} is not valid UTF-16") from err
    if name in ("", ".", "..") or "/" in name or "\\" in name:
        raise RccError(f"{path}: unsafe entry name {name!r} at byte {start}")
    return name


def _locate(path: Path | str, buf: bytes, start: int, flags: int, name: str) -> _Entry:
    (size,) = _unpack(path, buf, _U32, start, f"the data of {name!r}")
    _check_within(path, buf, start + 4, size, f"the data of {name!r}")
    return _Entry(flags, start + 4, start + 4 + size)


def _content(path: Path | str, buf: bytes, name: str, entry: _Entry) -> bytes:
    raw = buf[entry.start:entry.end]
    if entry.flags == 0:
        return raw
    if entry.flags == _ZLIB:
        return _inflate(path, name, raw)
    if entry.flags == _ZSTD:
        return _unzstd(path, name, raw)
    raise RccError(f"{path}: entry {name!r} has unknown compression flags 0x{entry.flags:02x}")


def _inflate(path: Path | str, name: str, raw: bytes) -> bytes:
    """Qt's ``qCompress`` layout: the uncompressed size (u32), then a zlib stream; the size is checked."""
    try:
        out = zlib.decompress(raw[4:])
    except zlib.error as err:
        raise RccError(f"{path}: entry {name!r} is not a valid zlib stream ({err})") from err
    size = int.from_bytes(raw[:4], "big")
    if len(out) != size:
        raise RccError(f"{path}: entry {name!r} inflates to {len(out)} bytes, not the {size} recorded")
    return out


def _unzstd(path: Path | str, name: str, raw: bytes) -> bytes:
    """Qt 6 archives may hold zstd data; ``zstandard`` is optional, not a dependency of the kit."""
    try:
        import zstandard
    except ImportError:
        raise RccError(f"{path}: entry {name!r} is zstd-compressed (Qt 6) and the zstandard module is not "
                       "installed; pip install zstandard") from None
    try:
        return zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    except zstandard.ZstdError as err:
        raise RccError(f"{path}: entry {name!r} is not a valid zstd stream ({err})") from err


def _unpack(path: Path | str, buf: bytes, fmt: struct.Struct, offset: int, what: str) -> tuple[int, ...]:
    _check_within(path, buf, offset, fmt.size, what)
    return fmt.unpack_from(buf, offset)


def _check_within(path: Path | str, buf: bytes, start: int, size: int, what: str) -> None:
    """The truncation error, naming what was cut off, unless ``size`` bytes from ``start`` lie in the file."""
    if start + size > len(buf):
        raise RccError(f"{path}: truncated: {what} at byte {start} runs past the end of the file "
                       f"({len(buf)} bytes)")
