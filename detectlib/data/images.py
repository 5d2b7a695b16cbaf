"""Images on disk -> PIL images: the one loader, and the one rule for a file that cannot be read.

``load_image(path, target)`` checks the file (a directory, FIFO, empty file, decompression bomb... each named with its
fix), decodes it, applies EXIF orientation and converts to RGB; given the size the model needs, a big JPEG is
decoded reduced (``Image.draft``), which is faster and changes AUC by less than 0.01 (``make bench``).

The bad-file rule, the same in every module and command line (``skip_bad_file``): a file that cannot be read as an
image is skipped with a warning naming it and the reason (``SkippedFileWarning``), and a summary follows
(``skipped N unreadable files: ...``); ``strict=True`` (``--strict``) raises on the first one instead.
"""

from __future__ import annotations

import errno
import math
import os
import stat
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from ..config import BadInputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class ImageLoadError(ValueError, BadInputError):
    """A file that is not a readable image; the message names the file and the fix."""


class SkippedFileWarning(UserWarning):
    """A file left out under the default policy (skip, warn, summarise); ``strict=True`` raises instead."""


def is_image_file(path: Path | str) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def skip_summary(skipped: Sequence[tuple[Path, str]] | Sequence[Path], limit: int = 20) -> str:
    """``skipped N unreadable file(s): a.png, b.jpg, ...``: the last line of every run that skipped files."""
    names = [Path(item[0] if isinstance(item, tuple) else item).name for item in skipped]
    shown = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
    return f"skipped {len(names)} unreadable file{'s' if len(names) != 1 else ''}: {shown}"


def skip_bad_file(err: ImageLoadError | str, path: Path | str | None = None,
                  skipped: list[tuple[Path, str]] | None = None, strict: bool = False, warn: bool = True,
                  note: str = "", stacklevel: int = 2) -> None:
    """The one rule for a file that cannot be read as an image, wherever the kit reads one. ``strict`` stops the
    run with the ``ImageLoadError``; otherwise the file is left out with a ``SkippedFileWarning`` naming it and why
    (``warn=False``: silently) and recorded in ``skipped``, for the summary ``warn_skipped`` gives at the end."""
    if strict:
        raise err if isinstance(err, ImageLoadError) else ImageLoadError(str(err))
    if warn:
        warnings.warn(f"skipped {err}{note}", SkippedFileWarning, stacklevel=stacklevel + 1)
    if skipped is not None:
        skipped.append((Path(path), str(err)))


def warn_skipped(skipped: Sequence[tuple[Path, str]], where: Path | str | None = None, stacklevel: int = 2) -> None:
    """The summary warning of the policy (nothing when nothing was skipped)."""
    if skipped:
        prefix = f"{where}: " if where is not None else ""
        warnings.warn(prefix + skip_summary(skipped), SkippedFileWarning, stacklevel=stacklevel + 1)


_FILE_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket",
               stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device"}


_STAT_HINTS = {errno.ENOENT: "no such file, or a broken link; check the path",
               errno.ELOOP: "a symlink loop: following the link never reaches a file; fix the link or remove it",
               errno.EACCES: "permission denied; check its permissions or remove it from the folder"}


def check_file(path: Path | str) -> Path:
    """Raise ``ImageLoadError`` unless ``path`` is a non-empty regular file this process may read; never opens
    it, so a FIFO named ``x.png`` cannot block the caller. Symlink loops, broken links, directories and
    permissions are named as such. Every message reads ``<path>: not a readable image (<why>); <what to do>``."""
    path = Path(path)
    try:
        info = path.stat()
    except OSError as err:
        why = _STAT_HINTS.get(err.errno, f"{err.strerror or type(err).__name__}; fix it or remove it from the folder")
        raise ImageLoadError(f"{path}: not a readable image ({why.replace('; ', '); ', 1)}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = _FILE_KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
        raise ImageLoadError(f"{path}: not a readable image (it is {kind}, not a file); remove it from the "
                             "image folder")
    if info.st_size == 0:
        raise ImageLoadError(f"{path}: not a readable image (an empty file, 0 bytes: a download cut short?); "
                             "download it again or remove it from the folder")
    if not os.access(path, os.R_OK):
        raise ImageLoadError(f"{path}: not a readable image (permission denied); check its permissions or "
                             "remove it from the folder")
    return path


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB; transparency is composited on white, 16-bit data is rescaled, not clipped."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba)
    return im.convert("RGB") if im.mode != "RGB" else im


_draft = {"enabled": True}  # switched off only by ``full_decode`` (the bench's before/after comparison)


DRAFT_FORMATS = ("JPEG", "MPO")  # MPO: the multi-picture JPEG of phone cameras, decoded by the same DCT


@contextmanager
def full_decode() -> Iterator[None]:
    """Within this block ``load_image`` decodes every file whole, whatever the target: the reference against which
    the reduced decode is measured (``make bench``'s ``draft_wild_auc_shift``). Encoders' cache keys follow it
    (``decode_mode``), so the two decodes never share embedding-cache entries."""
    previous = _draft["enabled"]
    _draft["enabled"] = False
    try:
        yield
    finally:
        _draft["enabled"] = previous


def decode_mode(target: int | None) -> str:
    """How ``load_image`` decodes for a consumer needing ``target`` px: part of every encoder's cache key, since the
    reduced JPEG decode gives other pixels (the DCT's own downscaling) than the whole decode resized."""
    return f"jpeg-draft>={target}" if target and _draft["enabled"] else "full"


def decode_side_of(consumer: Any) -> int | None:
    """The short side (px) a transform or preprocessing needs from the decoder: its ``decode_side`` (a bound
    method's object's, e.g. ``ClipHeadDetector.transform``); None (decode whole) when it does not say."""
    return getattr(getattr(consumer, "__self__", consumer), "decode_side", None)


def load_image(path: Path | str, target: int | None = None) -> Image.Image:
    """Open any image as RGB with its EXIF orientation applied; a bad file raises ``ImageLoadError`` naming it.

    ``target``: the short side the consumer resizes to (``decode_side_of`` its transform). A JPEG at least twice
    as large is then decoded at 1/2, 1/4 or 1/8 scale in the DCT (``Image.draft``, 3-7x faster on photos), never
    below ``target``: PIL picks the largest reduction that keeps both sides at or above the size asked for, and
    the size asked for keeps the image's aspect with its short side at ``target``, so a later resize (square
    squash or shortest-edge-then-crop) still only shrinks. The short side is the same before and after the EXIF
    rotation. Other formats are decoded whole: PNG, WebP and the rest have no cheaper exact path."""
    path = check_file(path)
    try:
        with Image.open(path) as im:
            im.seek(0)  # first frame of an animated GIF/WebP
            if target and _draft["enabled"] and im.format in DRAFT_FORMATS and min(im.size) >= 2 * target:
                scale = target / min(im.size)
                im.draft("RGB", (math.ceil(im.width * scale), math.ceil(im.height * scale)))
            im = ImageOps.exif_transpose(im)
            im.load()
            return to_rgb(im)
    except Image.DecompressionBombError as err:
        raise ImageLoadError(
            f"{path}: not a readable image (refused: its header claims more pixels than PIL's safety limit, "
            f"a possible decompression bomb: {err}); downscale it before using it"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        if isinstance(err, OSError) and err.errno is not None:  # the OS refused (permissions, I/O), not the decoder
            raise ImageLoadError(f"{path}: not a readable image ({err.strerror}); check its permissions or "
                                 "remove it from the folder") from None
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        reason = reason.replace(f" {str(path)!r}", "").replace(str(path), "the file")
        raise ImageLoadError(
            f"{path}: not a readable image ({reason}); re-save it as PNG or JPEG, or remove it from the folder"
        ) from None
