"""Real data: fetch CIFAKE and Tiny-GenImage and turn them into the reference layout.

Introduced in notebook 01 (the ``full`` profile). The demo never needs the network; real datasets do, so
everything here is built for classrooms with flaky Wi-Fi and for machines with no internet at all:

* ``download`` streams to ``<dest>.part``, resumes with an HTTP ``Range`` request, verifies size and SHA-256,
  and only then renames the file into place, so a half-written file never looks like a dataset.
* ``extract_archive`` checks every member before writing anything: no ``..``, no absolute paths, no links.
* The converters copy (never move or delete), skip files already there, never overwrite a different file,
  and write each file under a temporary name first (``os.replace``), so an interrupted run is safe to re-run.
* Offline, every fetcher raises one ``DownloadError`` line: what to download, from where, where to put it.

Layouts produced (see ``data``): CIFAKE becomes ``raw/CIFAKE/{train,val}/{ai,nature}``; Tiny-GenImage becomes
GenImage-style ``raw/<GEN>/{train,val}/{ai,nature}``.
"""

from __future__ import annotations

import filecmp
import hashlib
import http.client
import io
import json
import os
import shutil
import ssl
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..config import get_paths
from ..files import atomic_write, build_folder
from .images import IMAGE_EXTENSIONS, is_image_file
from .layout import LayoutError

CIFAKE_KAGGLE = "birdy654/cifake-real-and-ai-generated-synthetic-images"


CIFAKE_PAGE = f"https://www.kaggle.com/datasets/{CIFAKE_KAGGLE}"


# Kaggle's public download endpoint (what the dataset page's "Download via curl" uses); no account needed.
CIFAKE_URL = f"https://www.kaggle.com/api/v1/datasets/download/{CIFAKE_KAGGLE}"


TINY_GENIMAGE_REPO = "TheKernel01/Tiny-GenImage"


# ClassLabel names from the dataset card, used when a parquet shard lacks the `datasets` metadata.
TINY_GENIMAGE_LABELS = ("real", "fake")


TINY_GENIMAGE_GENERATORS = ("Real", "ADM", "BigGAN", "GLIDE", "Midjourney", "SD14", "SD15", "VQDM", "Wukong")


# Folder names the converters accept (any case) and the reference-layout name each becomes.
SPLIT_NAMES = {"train": "train", "val": "val", "validation": "val", "test": "val"}


CLASS_NAMES = {"ai": "ai", "fake": "ai", "nature": "nature", "real": "nature"}


CHUNK = 1 << 20


TIMEOUT_S = 60


USER_AGENT = "detectlib (teaching kit; urllib)"


# What a broken or missing network looks like to urllib (disk errors are plain OSError and stay themselves).
NETWORK_ERRORS = (
    urllib.error.URLError,
    TimeoutError,
    ConnectionError,
    ssl.SSLError,
    http.client.HTTPException,
)


_TAR_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


class DownloadError(RuntimeError):
    """The network could not deliver a file; the one-line message says how to get it by hand.

    ``why`` is the bare reason (e.g. "connection refused"), for callers that phrase their own message.
    """

    def __init__(self, message: str, why: str = ""):
        super().__init__(message)
        self.why = why or message


class ChecksumError(ValueError):
    """A file whose size or SHA-256 is not the one expected: truncated, corrupted, or another version."""


class UnsafeArchiveError(ValueError):
    """An archive member that could land outside the extraction folder (``..``, absolute path, link)."""


class ConflictError(FileExistsError):
    """A different file already sits where a converter would write; converters never overwrite."""


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# --------------------------------------------------------------------------------------------- downloading


def sha256sum(path: Path | str) -> str:
    """Hex SHA-256 of a file, read in chunks so multi-GB archives need no memory.

    Introduced in notebook 01: print it once, paste it into ``download(..., sha256=...)`` to pin a version.
    """
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def verify_file(path: Path | str, *, size: int | None = None, sha256: str | None = None) -> Path:
    """Raise ``ChecksumError`` unless ``path`` has the expected size and SHA-256 (``None`` skips a check).

    Introduced in notebook 01: a dataset that is silently truncated trains silently worse.
    """
    path = Path(path)
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise ChecksumError(
            f"{path}: {actual} bytes, expected {size}; the file is truncated or not the expected one"
        )
    if sha256 is not None:
        digest = sha256sum(path)
        if digest != sha256.lower():
            raise ChecksumError(
                f"{path}: SHA-256 {digest}, expected {sha256.lower()}; corrupted or another version"
            )
    return path


def download(
    url: str,
    dest: Path | str,
    *,
    sha256: str | None = None,
    size: int | None = None,
    resume: bool = True,
    progress: bool = True,
) -> Path:
    """Fetch ``url`` to ``dest``: streamed, resumable, verified, renamed into place only when complete.

    Introduced in notebook 01. Why: real datasets are hundreds of MB on shared Wi-Fi; a dropped connection
    should cost only the missing bytes, and a half-written file must never pass for a dataset. An existing
    ``dest`` is verified and returned without touching the network (so a file brought by hand is used as is).
    A partial ``dest.part`` is continued with an HTTP ``Range`` request when the server honours it, else
    restarted. A size or checksum mismatch raises ``ChecksumError`` and discards the ``.part``; a network
    failure raises ``DownloadError`` and keeps it for the next attempt.
    """
    dest = Path(dest)
    if dest.exists():
        return verify_file(dest, size=size, sha256=sha256)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if part.exists() and (not resume or (size is not None and part.stat().st_size > size)):
        part.unlink()
    start = part.stat().st_size if part.exists() else 0
    if size is None or start < size:
        try:
            _fetch(url, part, start, progress)
        except NETWORK_ERRORS as err:
            if isinstance(err, urllib.error.HTTPError):
                why = f"the server answered HTTP {err.code} {err.reason}"
            else:
                reason = _first_line(getattr(err, "reason", err))
                why = f"{reason}; this machine seems to be offline or cannot reach it"
            raise DownloadError(
                f"could not download {url} ({why}). Get the file by hand: download it on a machine with internet, "
                f"put it at {dest} and re-run (a complete, verified file there is not downloaded again).",
                why,
            ) from None
    try:
        verify_file(part, size=size, sha256=sha256)
    except ChecksumError:
        part.unlink()
        raise
    os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, start: int, progress: bool) -> None:
    """Stream ``url`` into ``part``, appending from byte ``start`` when the server answers 206 to a Range."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        # A fresh opener reads the proxy settings of the moment (urlopen caches them at first use).
        response = urllib.request.build_opener().open(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:  # Range Not Satisfiable: the part may already hold every byte
            if err.headers.get("Content-Range") == f"bytes */{start}":
                return
            part.unlink()
            return _fetch(url, part, 0, progress)
        raise
    with response:
        content_range = response.headers.get("Content-Range", "")
        resumed = bool(start) and response.status == 206 and content_range.startswith(f"bytes {start}-")
        offset = start if resumed else 0
        length = response.headers.get("Content-Length")
        expected = offset + int(length) if length is not None else None
        received = offset
        with (
            open(part, "ab" if resumed else "wb") as out,
            tqdm(
                total=expected,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            while block := response.read(CHUNK):
                out.write(block)
                received += len(block)
                bar.update(len(block))
    if expected is not None and received != expected:
        raise http.client.IncompleteRead(b"", expected - received)


# --------------------------------------------------------------------------------------------- archives


def _check_member(archive: Path, name: str) -> None:
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise UnsafeArchiveError(
            f"{archive}: refused member {name!r}: absolute paths and '..' could write outside the extraction "
            "folder; nothing was extracted"
        )


def extract_archive(archive: Path | str, dest: Path | str) -> Path:
    """Unpack a zip or tar archive into ``dest``, refusing any member that could land outside it.

    Introduced in notebook 01. Why: an archive from the internet can name ``../../.bashrc``. Every member
    is checked before anything is written; unpacking happens in a temporary sibling folder renamed into
    place, so ``dest`` is either complete or absent. An existing ``dest`` is reused as is (delete it to
    unpack again). The archive itself is only read.
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        return dest
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                _check_member(archive, name)
            build_folder(dest, None, zf.extractall)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                _check_member(archive, member.name)
                if not (member.isfile() or member.isdir()):
                    raise UnsafeArchiveError(
                        f"{archive}: refused member {member.name!r}: links and device files are not extracted; "
                        "nothing was extracted"
                    )
            build_folder(dest, None, lambda tmp: tf.extractall(tmp, **_TAR_FILTER))
    else:
        raise ValueError(
            f"{archive}: neither a zip nor a tar archive (an HTML error page?); delete it and download it again"
        )
    return dest


def _unpacked(archive: Path, downloads: Path) -> Path:
    """A folder is used in place; an archive is unpacked once into ``downloads``."""
    if archive.is_dir():
        return archive
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: no such archive or folder")
    return extract_archive(archive, downloads / f"{archive.name}.extracted")


# --------------------------------------------------------------------------------------------- converting


@dataclass
class ConvertReport:
    """What a conversion did: files copied, files already there, and images per output folder."""

    root: Path
    copied: int = 0
    skipped: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # "train/ai" or "ADM/train/ai" -> images

    def _add(self, folder: str, copied: bool) -> None:
        self.counts[folder] = self.counts.get(folder, 0) + 1
        self.copied += copied
        self.skipped += not copied

    def __str__(self) -> str:
        folders = ", ".join(f"{k}: {v}" for k, v in sorted(self.counts.items()))
        return f"{self.root}: {self.copied} copied, {self.skipped} already there ({folders})"


def _conflict(dst: Path, origin: object) -> ConflictError:
    return ConflictError(
        f"{dst} already exists and differs from {origin}; converters never overwrite: "
        "move it away or convert into another folder"
    )


def _place_file(src: Path, dst: Path) -> bool:
    """Copy ``src`` to ``dst`` unless the same bytes are there already; True when copied."""
    if dst.exists():
        if filecmp.cmp(src, dst, shallow=False):
            return False
        raise _conflict(dst, src)
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))
    return True


def _place_bytes(data: bytes, dst: Path, origin: str) -> bool:
    if dst.exists():
        if dst.stat().st_size == len(data) and dst.read_bytes() == data:
            return False
        raise _conflict(dst, origin)
    atomic_write(dst, lambda tmp: tmp.write_bytes(data))
    return True


def _children(folder: Path, names: dict[str, str]) -> list[tuple[str, Path]]:
    """Sub-folders whose lower-cased name is in ``names``, as (reference name, folder), sorted."""
    if not folder.is_dir():
        return []
    return sorted(
        (names[p.name.lower()], p) for p in folder.iterdir() if p.is_dir() and p.name.lower() in names
    )


def _is_split_root(folder: Path) -> bool:
    return any(_children(split_dir, CLASS_NAMES) for _, split_dir in _children(folder, SPLIT_NAMES))


def _find_split_roots(root: Path, depth: int = 3) -> list[Path]:
    """Folders holding ``<split>/<class>`` (any case), found under at most ``depth`` wrapper folders."""
    if _is_split_root(root):
        return [root]
    if depth == 0 or not root.is_dir():
        return []
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX")))
    return [found for sub in subdirs for found in _find_split_roots(sub, depth - 1)]


def _copy_tree(split_root: Path, dst: Path, prefix: str, report: ConvertReport, progress: bool) -> None:
    """Copy ``split_root/<split>/<class>/*image*`` to ``dst/<split>/<class>/`` with reference names."""
    plan = [
        (f, dst / split / cls / f.name, f"{prefix}{split}/{cls}")
        for split, split_dir in _children(split_root, SPLIT_NAMES)
        for cls, cls_dir in _children(split_dir, CLASS_NAMES)
        for f in sorted(cls_dir.iterdir())
        if f.is_file() and is_image_file(f) and not f.name.startswith(".")  # skips macOS "._x.jpg" forks
    ]
    for src, target, folder in tqdm(
        plan, desc=f"copy {prefix or split_root.name}", unit="img", disable=not progress
    ):
        report._add(folder, _place_file(src, target))


def convert_cifake(src_root: Path | str, dst_root: Path | str, *, progress: bool = True) -> ConvertReport:
    """CIFAKE's ``{train,test}/{REAL,FAKE}`` -> ``dst_root/{train,val}/{ai,nature}``.

    Introduced in notebook 01. Why: CIFAKE names its classes and splits differently from the reference
    layout every notebook reads: ``FAKE`` -> ``ai``, ``REAL`` -> ``nature``, ``train`` -> ``train``,
    ``test`` -> ``val``. Files are copied, never moved; a second run copies nothing; a different file
    already at a target raises ``ConflictError``. A wrapper folder around ``train``/``test`` is fine.
    """
    src_root, dst_root = Path(src_root), Path(dst_root)
    roots = _find_split_roots(src_root)
    if len(roots) != 1:
        raise LayoutError(
            f"{src_root}: expected one CIFAKE folder holding train/{{REAL,FAKE}} and test/{{REAL,FAKE}}, "
            f"found {len(roots)}{': ' + ', '.join(map(str, roots)) if roots else ''}"
        )
    report = ConvertReport(dst_root)
    _copy_tree(roots[0], dst_root, "", report, progress)
    return report


def convert_tiny_genimage(
    src_root: Path | str, dst_root: Path | str, *, progress: bool = True
) -> ConvertReport:
    """Tiny-GenImage (or any GenImage-style copy) -> ``dst_root/<GEN>/{train,val}/{ai,nature}``.

    Introduced in notebook 01. Why: per-generator folders let notebook 05 ask "trained on ADM, does it catch
    Midjourney?". Two sources are understood:

    * folders ``<GEN>/{train,val}/{ai,nature}``, in any case, under up to three wrapper folders
      (``validation``/``test`` count as ``val``, ``fake``/``real`` as ``ai``/``nature``);
    * the Hugging Face repository's parquet shards (``train-*.parquet``, ``validation-*.parquet``; needs
      ``pyarrow``). They hold one shared pool of real photos, labelled generator ``Real``; each split's real
      photos are dealt round-robin to the generators that have AI images in it, so every generator folder is
      balanced and no photo lands in two generators.

    Copies only, idempotent, never overwrites a different file (``ConflictError``).
    """
    src_root, dst_root = Path(src_root), Path(dst_root)
    report = ConvertReport(dst_root)
    shards = _parquet_shards(src_root)
    if shards:
        _convert_parquet(shards, dst_root, report, progress)
        return report
    roots = _find_split_roots(src_root)
    if not roots:
        raise LayoutError(
            f"{src_root}: no GenImage folders <GEN>/{{train,val}}/{{ai,nature}} and no Tiny-GenImage parquet "
            "shards (train-*.parquet, validation-*.parquet) found"
        )
    for root in roots:
        _copy_tree(root, dst_root / root.name, f"{root.name}/", report, progress)
    return report


def _parquet_shards(src_root: Path) -> dict[str, list[Path]]:
    """``{"train": [...], "val": [...]}`` from shard names like ``validation-00000-of-00004.parquet``."""
    shards: dict[str, list[Path]] = {}
    if not src_root.is_dir():
        return shards
    for path in sorted(src_root.rglob("*.parquet")):
        if any(part.startswith(".") for part in path.relative_to(src_root).parts):
            continue  # huggingface_hub's own .cache folder
        split = SPLIT_NAMES.get(path.name.split("-")[0].lower()) or SPLIT_NAMES.get(path.parent.name.lower())
        if split is None:
            raise LayoutError(
                f"{path}: cannot tell its split; expected a name like train-00000-of-00004.parquet"
            )
        shards.setdefault(split, []).append(path)
    return shards


def _class_label_names(metadata: dict[bytes, bytes] | None) -> dict[str, list[str]]:
    """ClassLabel names from the schema metadata Hugging Face ``datasets`` writes, else the card's."""
    names = {"label": list(TINY_GENIMAGE_LABELS), "generator": list(TINY_GENIMAGE_GENERATORS)}
    try:
        features = json.loads(metadata[b"huggingface"])["info"]["features"]
    except (TypeError, KeyError, ValueError):
        return names
    names.update({k: f["names"] for k, f in features.items() if isinstance(f, dict) and "names" in f})
    return names


def _read_parquet(path: Path, columns: list[str]) -> Iterator[dict]:
    """Rows of one shard, a few at a time, with ClassLabel integers decoded to their names."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(
            f"{path}: reading Tiny-GenImage's parquet shards needs pyarrow (pip install pyarrow; Colab has it), "
            "or bring the images as folders <GEN>/{train,val}/{ai,nature}"
        ) from None
    shard = pq.ParquetFile(path)
    names = _class_label_names(shard.schema_arrow.metadata)
    for batch in shard.iter_batches(columns=columns, batch_size=64):
        for row in batch.to_pylist():
            yield {k: names[k][v] if k in names and isinstance(v, int) else v for k, v in row.items()}


def _image_suffix(data: bytes, origin: str) -> str:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format or ""
    except UnidentifiedImageError:
        raise LayoutError(f"{origin}: holds no readable image") from None
    suffix = ".jpg" if fmt == "JPEG" else f".{fmt.lower()}"
    return suffix if suffix in IMAGE_EXTENSIONS else ".png"


def _convert_parquet(
    shards: dict[str, list[Path]], dst_root: Path, report: ConvertReport, progress: bool
) -> None:
    for split, paths in sorted(shards.items()):
        generators = sorted(
            {
                row["generator"]
                for path in paths
                for row in _read_parquet(path, ["label", "generator"])
                if CLASS_NAMES.get(str(row["label"]).lower()) == "ai"
            }
        )
        if not generators:
            raise LayoutError(f"{paths[0].parent}: the {split} shards hold no AI-generated images")
        reals = 0
        rows = ((path, row) for path in paths for row in _read_parquet(path, ["image", "label", "generator"]))
        bar = tqdm(rows, desc=f"Tiny-GenImage {split}", unit="img", disable=not progress)
        for index, (path, row) in enumerate(bar):
            origin = f"{path} row {index}"
            cls = CLASS_NAMES.get(str(row["label"]).lower())
            if cls is None:
                raise LayoutError(f"{origin}: unknown label {row['label']!r}; expected real or fake")
            if cls == "ai":
                generator = row["generator"]
            else:  # the shared pool of real photos, dealt round-robin
                generator = generators[reals % len(generators)]
                reals += 1
            data = row["image"]["bytes"]
            target = dst_root / generator / split / cls / f"{index:06d}{_image_suffix(data, origin)}"
            report._add(f"{generator}/{split}/{cls}", _place_bytes(data, target, origin))


# --------------------------------------------------------------------------------------------- fetchers


def how_to_bring_data(raw: Path | str) -> str:
    """What the ``full`` profile needs, said once for notebook 01 and for the error of a run without data."""
    return (
        f"The full profile builds nothing: it reads real data in GenImage's layout, {raw}/<GEN>/{{train,val}}/"
        "{ai,nature}. Bring it with one of: dl.realdata.fetch_cifake() (CIFAKE: 60,000 real CIFAR-10 and 60,000 "
        "Stable Diffusion 1.4 images at 32 px, a zip of about 100 MB from Kaggle); dl.realdata.fetch_tiny_genimage() "
        "(Tiny-GenImage: per-generator folders for ADM, BigGAN, GLIDE, Midjourney, SD 1.4/1.5, VQDM and Wukong, "
        "about 8 GB of parquet, needs pyarrow); or copy GenImage or your own folders there. Without real data, "
        "use DETECTLIB_PROFILE=demo."
    )


def fetch_cifake(
    dest_root: Path | str | None = None,
    *,
    archive: Path | str | None = None,
    url: str = CIFAKE_URL,
    downloads: Path | str | None = None,
    progress: bool = True,
) -> ConvertReport:
    """CIFAKE in the reference layout: 60k real (CIFAR-10) + 60k Stable Diffusion 1.4 images, 32x32.

    Introduced in notebook 01 (Bird & Lotfi 2024). ``dest_root`` defaults to ``data/raw/CIFAKE`` (so it
    sits beside GenImage generators), ``downloads`` to ``data/downloads``. With ``archive`` (the Kaggle zip,
    or its unzipped folder) nothing is downloaded; otherwise the zip is fetched from Kaggle's public
    endpoint into ``downloads/cifake.zip`` (resumable). Offline, the ``DownloadError`` says where to get it
    and where to put it.
    """
    paths = get_paths()
    dest = Path(dest_root) if dest_root is not None else paths.raw / "CIFAKE"
    downloads = Path(downloads) if downloads is not None else paths.data / "downloads"
    if archive is None:
        archive = downloads / "cifake.zip"
        try:
            download(url, archive, progress=progress)
        except DownloadError as err:
            raise DownloadError(
                f"CIFAKE could not be downloaded from {url} ({err.why}). On a machine with internet get the zip "
                f"from {CIFAKE_PAGE} or with `kaggle datasets download -d {CIFAKE_KAGGLE}`, put it at {archive} "
                "(or pass archive=<zip or unzipped folder>) and re-run.",
                err.why,
            ) from None
    return convert_cifake(_unpacked(Path(archive), downloads), dest, progress=progress)


def fetch_tiny_genimage(
    dest_root: Path | str | None = None,
    *,
    archive: Path | str | None = None,
    repo_id: str = TINY_GENIMAGE_REPO,
    downloads: Path | str | None = None,
    progress: bool = True,
) -> ConvertReport:
    """Tiny-GenImage, a small per-generator subset of GenImage, as ``data/raw/<GEN>/{train,val}/{ai,nature}``.

    Introduced in notebook 01. Offline, pass ``archive``: a folder or a zip/tar holding either GenImage-style
    folders ``<GEN>/{train,val}/{ai,nature}`` or the repository's parquet shards; ``repo_id`` is then unused.
    Online, the Hugging Face dataset ``repo_id`` is fetched with ``huggingface_hub.snapshot_download`` into
    ``downloads/<name>`` (resumable; the default repository is about 8 GB of parquet and needs ``pyarrow``).
    The default ``TheKernel01/Tiny-GenImage`` is the copy known to us (card: CC BY-NC-SA 4.0); to use another,
    search https://huggingface.co/datasets?search=genimage and pass its ``owner/name``.
    """
    paths = get_paths()
    dest = Path(dest_root) if dest_root is not None else paths.raw
    downloads = Path(downloads) if downloads is not None else paths.data / "downloads"
    if archive is None:
        archive = downloads / repo_id.split("/")[-1]
        try:
            from huggingface_hub import snapshot_download

            snapshot_download(repo_id, repo_type="dataset", local_dir=archive)
        except Exception as err:  # any hub or transport failure means the same to a learner: no data
            raise DownloadError(
                f"Tiny-GenImage could not be downloaded from https://huggingface.co/datasets/{repo_id} "
                f"({_first_line(err)}). On a machine with internet run `hf download {repo_id} --repo-type dataset "
                f"--local-dir Tiny-GenImage`, copy that folder to {archive} and call "
                f"fetch_tiny_genimage(archive='{archive}').",
                _first_line(err),
            ) from None
    return convert_tiny_genimage(_unpacked(Path(archive), downloads), dest, progress=progress)
