"""The bad-input corpus: every kind of messy file a classroom dataset holds, generated in a temporary folder.

Nothing here is committed as a binary: ``make_corpus(tmp_path)`` writes the whole corpus in well under a second.
The main tree is a GenImage-style generator folder ``<base>/raw/MESSY/{train,val}/{ai,nature}`` (so it is both a
reference-layout dataset and a ``raw_dir`` for the dataset tools) holding, side by side:

* **odd but good** images (each must load as RGB of a known size): CMYK JPEG, 16-bit PNG, palette PNG with
  transparency, RGBA, LA, EXIF-rotated JPEG, 1x1 PNG, animated GIF, WebP, TIFF, upper-case ``.JPG`` / ``.PNG``,
  a non-UTF-8 file name (the bytes ``caf\\xe9.png``, written through ``os.fsencode``-level paths) and a name with
  spaces and brackets, plus plain PNGs so every class has something to learn from;
* **bad** entries (each must be skipped with a warning naming it, or fail fast with ``strict``): truncated JPEG,
  truncated PNG, zero-byte files, a text file named ``.jpg``, a PNG whose header claims 20000x20000 (a
  decompression bomb: a valid tiny PNG with its IHDR patched and its CRC recomputed), a symlink loop
  (``loop.png -> loop.png``), and unreadable entries: a directory named ``folder.png``, a FIFO named ``pipe.png``
  (opening one naively blocks forever), and ``locked.png`` with mode 000. Tests run as root in this project's
  containers, where mode 000 does not stop reading: ``Corpus.locked_is_unreadable`` says which case applies and
  ``locked.png`` is then listed as good (root reads it) rather than bad;
* structure problems: an extra class folder ``train/maybe``, a directory cycle ``train/ai/cycle -> ../..``
  (recursive scans must not follow it), and three variant roots: ``no_val`` (no ``val/``), ``empty_class``
  (``train/nature`` empty) and ``clean_raw/CLEAN`` (the good images only, for runs that must succeed).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import stat
import struct
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

ODD_GOOD = ("cmyk_jpeg", "png_16bit", "palette_transparency", "rgba", "la", "exif_rotated", "one_pixel",
            "animated_gif", "webp", "tiff", "upper_jpg", "upper_png", "spaced_name", "non_utf8_name")
BAD = ("truncated_jpeg", "truncated_png", "zero_bytes_png", "zero_bytes_jpg", "text_as_jpg", "decompression_bomb",
       "symlink_loop", "directory_named_png", "fifo")  # plus "mode_000" when not running as root
NOT_FILES = ("zero_bytes_png", "zero_bytes_jpg", "symlink_loop", "directory_named_png", "fifo")  # refused unopened
NON_UTF8_NAME = b"caf\xe9.png"  # Latin-1 "café.png": not valid UTF-8, so Python sees 'caf\udce9.png'
SPACED_NAME = "my photo (1) .png"


@dataclass
class Corpus:
    """Where everything is. ``good`` maps a label to (path, expected (width, height)); ``bad`` maps a label to a
    path. Paths of the non-UTF-8 file hold a surrogate escape, as ``os.listdir`` returns them."""

    base: Path
    raw: Path  # raw_dir for the dataset tools: holds the generator folder MESSY
    root: Path  # raw/MESSY: the reference-layout dataset with everything in it
    no_val: Path
    empty_class: Path
    clean: Path  # clean_raw/CLEAN: the good images only (a generator folder too: clean.parent is a raw_dir)
    good: dict[str, tuple[Path, tuple[int, int]]] = field(default_factory=dict)
    bad: dict[str, Path] = field(default_factory=dict)
    locked_is_unreadable: bool = False

    def bad_in(self, folder: Path) -> list[Path]:
        return sorted(p for p in self.bad.values() if p.parent == folder)

    def good_in(self, folder: Path) -> list[Path]:
        return sorted(p for p, _ in self.good.values() if p.parent == folder)


# ------------------------------------------------------------------------------------------- file makers
def noise(width: int, height: int, seed: int, tint: int | None = None) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, 3))
    if tint is not None:  # ai (0) leans red, nature (1) green: a learnable task
        pixels[..., tint] = pixels[..., tint] // 4 + 190
    return Image.fromarray(pixels.astype(np.uint8))


def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: int(len(data) * keep)]


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A valid 8x8 PNG whose IHDR is patched to claim ``width`` x ``height`` (CRC recomputed): PIL refuses it
    from the header alone (more than twice ``Image.MAX_IMAGE_PIXELS``), before any pixel is decoded."""
    data = bytearray(encoded(Image.new("RGB", (8, 8)), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def exif_rotated(width: int = 40, height: int = 20) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display": the displayed image is height x width
    return encoded(noise(width, height, 7), "JPEG", exif=exif, quality=90)


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (12, 10), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])


def palette_with_transparency() -> bytes:
    im = Image.new("P", (10, 12), 1)
    im.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    im.putpixel((0, 0), 0)
    return encoded(im, "PNG", transparency=0)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _odd_but_good() -> dict[str, tuple[str, bytes, tuple[int, int]]]:
    """label -> (file name, bytes, displayed (width, height))."""
    rgba = np.zeros((9, 11, 4), np.uint8)
    rgba[..., :3], rgba[:4, :, 3] = 90, 255
    la = np.zeros((10, 8, 2), np.uint8)
    la[..., 0], la[:, :4, 1] = 70, 255
    return {
        "cmyk_jpeg": ("cmyk.jpg", encoded(noise(16, 12, 1).convert("CMYK"), "JPEG", quality=90), (16, 12)),
        "png_16bit": ("deep16.png", encoded(Image.fromarray(np.arange(15 * 13, dtype=np.uint16).reshape(13, 15)
                                                            * 300), "PNG"), (15, 13)),
        "palette_transparency": ("palette_t.png", palette_with_transparency(), (10, 12)),
        "rgba": ("rgba.png", encoded(Image.fromarray(rgba, "RGBA"), "PNG"), (11, 9)),
        "la": ("la.png", encoded(Image.fromarray(la, "LA"), "PNG"), (8, 10)),
        "exif_rotated": ("exif_rotated.jpg", exif_rotated(40, 20), (20, 40)),
        "one_pixel": ("tiny_1x1.png", encoded(Image.new("RGB", (1, 1), (9, 200, 9)), "PNG"), (1, 1)),
        "animated_gif": ("anim.gif", animated_gif(), (12, 10)),
        "webp": ("photo.webp", encoded(noise(14, 14, 2), "WEBP", quality=80), (14, 14)),
        "tiff": ("scan.tif", encoded(noise(13, 11, 3), "TIFF"), (13, 11)),
        "upper_jpg": ("UPPER.JPG", encoded(noise(12, 12, 4), "JPEG", quality=90), (12, 12)),
        "upper_png": ("UPPER.PNG", encoded(noise(12, 16, 5), "PNG"), (12, 16)),
        "spaced_name": (SPACED_NAME, encoded(noise(16, 16, 6), "PNG"), (16, 16)),
    }


def _plain(folder: Path, n: int, tint: int, seed: int) -> list[Path]:
    return [write(folder / f"plain_{i}.png", encoded(noise(24, 24, seed + i, tint), "PNG")) for i in range(n)]


def _fs_write(folder: Path, name: bytes, data: bytes) -> Path:
    """Write a file whose name is raw bytes (not valid UTF-8), at the ``os`` level."""
    raw_path = os.path.join(os.fsencode(folder), name)
    with open(raw_path, "wb") as fh:
        fh.write(data)
    return Path(os.fsdecode(raw_path))


def readable(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.read(1)
        return True
    except OSError:
        return False


def make_corpus(base: Path) -> Corpus:
    """Write the whole corpus under ``base`` and say where each case is."""
    base = Path(base)
    root = base / "raw" / "MESSY"
    c = Corpus(base, base / "raw", root, base / "no_val", base / "empty_class", base / "clean_raw" / "CLEAN")
    folders = {(s, k): root / s / k for s in ("train", "val") for k in ("ai", "nature")}
    for (split, cls), folder in folders.items():
        for path in _plain(folder, 3 if split == "train" else 2, 0 if cls == "ai" else 1,
                           seed=100 * (split == "val") + 10 * (cls == "nature")):
            c.good[f"{split}/{cls}/{path.name}"] = (path, (24, 24))

    # odd but good: half in train/ai, half in train/nature, one in each val folder
    odd = list(_odd_but_good().items())
    homes = [folders["train", "ai"], folders["train", "nature"]]
    for i, (label, (name, data, size)) in enumerate(odd):
        folder = homes[i % 2] if i < len(odd) - 2 else folders["val", "ai" if i % 2 else "nature"]
        c.good[label] = (write(folder / name, data), size)
    c.good["non_utf8_name"] = (_fs_write(folders["train", "nature"], NON_UTF8_NAME,
                                         encoded(noise(10, 10, 8), "PNG")), (10, 10))

    # bad: spread over every folder, so each entry point meets some in every split and class
    jpeg = encoded(noise(64, 64, 9), "JPEG", quality=95)
    png = encoded(noise(64, 64, 10), "PNG")
    c.bad["truncated_jpeg"] = write(folders["train", "ai"] / "truncated.jpg", truncated(jpeg))
    c.bad["truncated_png"] = write(folders["train", "nature"] / "truncated.png", truncated(png))
    c.bad["zero_bytes_png"] = write(folders["train", "ai"] / "zero.png", b"")
    c.bad["zero_bytes_jpg"] = write(folders["val", "nature"] / "zero.jpg", b"")
    c.bad["text_as_jpg"] = write(folders["val", "ai"] / "notes.jpg", b"these are my notes, not a JPEG\n")
    c.bad["decompression_bomb"] = write(folders["train", "ai"] / "bomb.png", bomb_png())
    loop = folders["train", "nature"] / "loop.png"
    os.symlink(loop.name, loop)  # loop.png -> loop.png: ELOOP on open or stat
    c.bad["symlink_loop"] = loop
    (folders["val", "nature"] / "folder.png").mkdir()
    c.bad["directory_named_png"] = folders["val", "nature"] / "folder.png"
    os.mkfifo(folders["train", "ai"] / "pipe.png")
    c.bad["fifo"] = folders["train", "ai"] / "pipe.png"
    locked = write(folders["val", "ai"] / "locked.png", encoded(noise(12, 12, 11), "PNG"))
    locked.chmod(0)
    c.locked_is_unreadable = not readable(locked)
    if c.locked_is_unreadable:
        c.bad["mode_000"] = locked
    else:  # root (the test containers): mode 000 does not stop reading, so it is an ordinary good image
        c.good["mode_000_as_root"] = (locked, (12, 12))

    # structure: a directory cycle (never followed), an unexpected class folder, variants of the layout
    os.symlink("../..", folders["train", "ai"] / "cycle")
    _plain(root / "train" / "maybe", 1, 0, seed=300)
    for split in ("train",):
        for k, cls in enumerate(("ai", "nature")):
            _plain(c.no_val / split / cls, 2, k, seed=400 + k)
    for split in ("train", "val"):
        for k, cls in enumerate(("ai", "nature")):
            folder = c.empty_class / split / cls
            folder.mkdir(parents=True)
            if not (split == "train" and cls == "nature"):
                _plain(folder, 2, k, seed=500 + 10 * k)
    for (split, cls), folder in folders.items():  # the good images only, same layout
        for path in c.good_in(folder):
            target = c.clean / split / cls / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return c


# ------------------------------------------------------------------------------------------- assertions
def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` without following links or opening anything that could block: regular files
    by content hash, size and mtime; links by target; FIFOs and directories by type and mode."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):  # followlinks=False: the cycle is listed, not entered
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = os.lstat(path)
            key = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                out[key] = ("link", os.readlink(path))
            elif stat.S_ISREG(info.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest() if readable(path) else "unreadable"
                out[key] = ("file", digest, info.st_size, info.st_mtime_ns, stat.S_IMODE(info.st_mode))
            else:
                out[key] = ("other", stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode))
    return out


class Hang(Exception):
    """Raised by ``no_hang`` when a call blocks (e.g. opening a FIFO)."""


@contextmanager
def no_hang(seconds: int = 20):
    """Fail instead of hanging: SIGALRM interrupts a blocking call (an ``open`` of a FIFO, a loop that never
    ends) and raises ``Hang`` there."""

    def alarm(signum, frame):
        raise Hang(f"still running after {seconds} s: something blocked or looped")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def one_line_error(err: str) -> bool:
    """What every CLI must print on bad input: exactly one line ``error: ...`` and no traceback."""
    return err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
