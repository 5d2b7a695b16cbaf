"""The image probe: give it any image, see both detectors' scores and where they look.

Introduced in notebook 06. An image comes from an upload box, a dataset sample, or a path/URL typed in a text box
(Colab's upload widget can fail on files over about 1 MB). The probe shows p(ai) from every detector (and the
CLIP head's own score in [-1, 1]), the label at a threshold set with a slider, and a Grad-CAM heatmap for a layer
chosen in a dropdown. A bad file becomes a message inside the widget, never a traceback.

The callbacks are plain methods (``load_upload``, ``load_source``, ``render_scores`` ...) so tests drive them without
a browser; ``uploaded_files`` reads ``FileUpload.value`` in both ipywidgets 8 and ipywidgets 7 (Colab's 7.7.1).
"""

from __future__ import annotations

import functools
import html
import io
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from .config import get_language
from .data.images import ImageLoadError, decode_side_of, load_image
from .labels import DEFAULT_THRESHOLD, class_label, predicted_class

MAX_UPLOAD_BYTES = 20 * 1024**2  # larger files: type their path instead


URL_TIMEOUT_S = 15


DISPLAY_SIDE = 256  # the heatmap panel's height in pixels (small images are enlarged)


def uploaded_files(value: Any) -> list[tuple[str, bytes]]:
    """``[(name, bytes)]`` from a ``FileUpload.value`` of either ipywidgets version.

    ipywidgets 8: a tuple of dicts with ``name`` and ``content`` (a memoryview). ipywidgets 7: a dict keyed by file
    name, each value holding ``metadata`` and ``content`` (bytes).
    """
    if not value:
        return []
    if isinstance(value, Mapping):
        return [(str(name), bytes(item["content"])) for name, item in value.items()]
    return [(str(item["name"]), bytes(item["content"])) for item in value]


def image_from_bytes(data: bytes, name: str, max_bytes: int = MAX_UPLOAD_BYTES,
                     target: int | None = None) -> Image.Image:
    """Decode uploaded bytes with ``data.load_image``'s rules; too large or not an image -> ``ImageLoadError``.

    The bytes go to a temporary file named ``upload<suffix>`` (never the uploaded name, which may hold ``..``,
    slashes or characters the file system refuses); messages name the upload as the user called it."""
    if len(data) > max_bytes:
        raise ImageLoadError(f"{name}: {len(data) / 1024**2:.1f} MB is over the {max_bytes / 1024**2:.0f} MB "
                             "upload limit; type its path in the text box instead, or downscale it")
    suffix = "".join(ch for ch in Path(str(name)).suffix[:8] if ch.isalnum() or ch == ".")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            return load_image(path, target)
        except ImageLoadError as err:
            raise ImageLoadError(str(err).replace(str(path), name)) from None


def image_from_source(source: str, max_bytes: int = MAX_UPLOAD_BYTES, target: int | None = None) -> Image.Image:
    """An image from a local path or an http(s) URL; any failure is a one-line ``ImageLoadError``."""
    source = source.strip()
    if source.startswith(("http://", "https://")):
        import urllib.request

        try:
            with urllib.request.urlopen(source, timeout=URL_TIMEOUT_S) as response:
                data = response.read(max_bytes + 1)
        except (OSError, ValueError) as err:
            raise ImageLoadError(f"{source}: could not download it ({err}); save it and type its path") from None
        return image_from_bytes(data, source, max_bytes, target)
    path = Path(source).expanduser()
    if not path.is_file():
        raise ImageLoadError(f"{source}: no such file; type the path of an image or an http(s) URL")
    return load_image(path, target)


def side_by_side(left: Image.Image, right: Image.Image, height: int = DISPLAY_SIDE) -> bytes:
    """Two images scaled to one height, next to each other, as PNG bytes for an ``ipywidgets.Image``."""
    scaled = [im.resize((max(1, round(im.width * height / im.height)), height), Image.Resampling.LANCZOS)
              for im in (left, right)]
    canvas = Image.new("RGB", (scaled[0].width + scaled[1].width + 8, height), "white")
    canvas.paste(scaled[0], (0, 0))
    canvas.paste(scaled[1], (scaled[0].width + 8, 0))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def _shows_errors(method: Callable) -> Callable:
    """Run a callback; any error is shown in the probe's message line instead of escaping into the kernel."""

    @functools.wraps(method)
    def wrapper(self: ImageProbe, *args: Any, **kwargs: Any) -> None:
        try:
            method(self, *args, **kwargs)
        except ImageLoadError as err:
            self.show_message(str(err), error=True)
        except Exception as err:  # noqa: BLE001 - a widget callback must never raise into the kernel
            self.show_message(f"{type(err).__name__}: {err}", error=True)

    return wrapper


class ImageProbe:
    """The probe widget. ``detectors``: display name -> loaded ``models.Detector`` (any kind); ``samples``:
    display name -> image path for the dropdown; ``wild_report``: notebook 05's ``results/wild.json`` (read from
    the profile's results folder when not given), whose entries say, beside each verdict, how that detector did
    on real-world images. Building it runs no model; ``probe.widget`` is what to display.
    """

    def __init__(self, detectors: Mapping[str, Any], samples: Mapping[str, Path | str] | None = None,
                 threshold: float = DEFAULT_THRESHOLD, lang: str | None = None,
                 max_upload_bytes: int = MAX_UPLOAD_BYTES, wild_report: Mapping[str, Any] | None = None):
        import ipywidgets as w

        from .evaluation.wild_report import read_wild_json

        if not detectors:
            raise ValueError("ImageProbe needs at least one detector")
        self.detectors = dict(detectors)
        self.wild_report = wild_report if wild_report is not None else read_wild_json()
        sides = [decode_side_of(getattr(det, "transform", None)) for det in self.detectors.values()]
        # one decode serves every detector and the heatmap panel: the largest side any of them needs
        self.decode_side = None if None in sides else max([*sides, DISPLAY_SIDE])
        self.lang, self.max_upload_bytes = lang or get_language(), max_upload_bytes
        self.image: Image.Image | None = None
        self.image_name = ""
        self.p_ai: dict[str, float] = {}
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="Upload image")
        self.sample = w.Dropdown(options=[("(pick a dataset sample)", "")] + [(k, str(v)) for k, v in
                                                                             (samples or {}).items()],
                                 description="Sample")
        self.source = w.Text(placeholder="path or http(s) URL of an image, then Enter or Load",
                             description="Path / URL", continuous_update=False, layout=w.Layout(width="60%"))
        self.load_button = w.Button(description="Load")
        self.threshold = w.FloatSlider(value=threshold, min=0.0, max=1.0, step=0.01, readout_format=".2f",
                                       description="p(ai) ≥", continuous_update=False)
        self.heatmap_detector = w.Dropdown(options=list(self.detectors), description="Heatmap of")
        self.layer = w.Dropdown(options=self._layer_options(), description="Layer",
                                layout=w.Layout(width="60%"))
        self.message = w.HTML("Upload an image, pick a sample, or type a path / URL.")
        self.scores = w.HTML()
        self.caption = w.HTML()
        self.heatmap = w.Image(format="png")

        self.upload.observe(lambda change: self.load_upload(change["new"]), names="value")
        self.sample.observe(lambda change: self.load_sample(change["new"]), names="value")
        self.source.observe(lambda change: self.load_source(change["new"]), names="value")  # on Enter
        self.load_button.on_click(lambda _: self.load_source(self.source.value))
        self.threshold.observe(lambda _: self.render_scores(), names="value")
        self.heatmap_detector.observe(lambda _: self.choose_detector(), names="value")
        self.layer.observe(lambda _: self.render_heatmap(), names="value")
        self.widget = w.VBox([
            w.HBox([self.upload, self.sample]), w.HBox([self.source, self.load_button]), self.message,
            self.threshold, self.scores, w.HBox([self.heatmap_detector, self.layer]), self.heatmap, self.caption,
        ])

    # ------------------------------------------------------------------------------------------ inputs
    def _layer_options(self) -> list[str]:
        from .explain.cam import default_layer, suggested_layers

        backbone = self.detectors[self.heatmap_detector.value].cam_backbone
        layers = suggested_layers(backbone)
        default = default_layer(backbone)[0]
        return [default] + [name for name in layers if name != default]

    def show_message(self, text: str, error: bool = False) -> None:
        colour = "#b00020" if error else "inherit"
        self.message.value = f'<span style="color:{colour}">{html.escape(text)}</span>'

    @_shows_errors
    def load_upload(self, value: Any) -> None:
        """The upload box's callback (its ``value`` in either ipywidgets format)."""
        files = uploaded_files(value)
        if files:
            name, data = files[0]
            self.set_image(image_from_bytes(data, name, self.max_upload_bytes, self.decode_side), name)

    @_shows_errors
    def load_sample(self, path: str) -> None:
        """The sample dropdown's callback."""
        if path:
            self.set_image(load_image(path, self.decode_side), Path(path).name)

    @_shows_errors
    def load_source(self, source: str) -> None:
        """The path / URL box's callback."""
        if source.strip():
            self.set_image(image_from_source(source, self.max_upload_bytes, self.decode_side), source.strip())

    def set_image(self, image: Image.Image, name: str) -> None:
        """Score a new image with every detector, then draw the scores and the heatmap."""
        self.image, self.image_name = image, name
        self.p_ai = {label: float(det.score_images([image])[0]) for label, det in self.detectors.items()}
        self.show_message(f"{name}: {image.width} x {image.height} px")
        self.render_scores()
        self.render_heatmap()

    # ----------------------------------------------------------------------------------------- outputs
    def label(self, p_ai: float) -> str:
        """The class name at the slider's threshold, in the probe's language."""
        return class_label(predicted_class(p_ai, self.threshold.value), self.lang)

    @_shows_errors
    def render_scores(self) -> None:
        """One row per detector: p(ai), the CLIP head's score (2·p(real) − 1, > 0 real), the label, and what it
        was trained on; below, a warning when a detector has only ever seen the kit's own fakes."""
        if not self.p_ai:
            return
        from .evaluation.reports import training_data
        from .evaluation.wild_report import trust_line

        wild = {e["name"]: e for e in (self.wild_report or {}).get("detectors", [])}
        rows, unproven = [], []
        for name, p in self.p_ai.items():
            data = training_data(self.detectors[name])
            if data.real_world is not True:
                unproven.append(name)
            score = self.detectors[name].reference_score(p)
            clip = "–" if score is None else f"{score:+.3f}"
            rows.append(f"<tr><td>{html.escape(name)}</td><td>{p:.3f}</td><td>{clip}</td>"
                        f"<td><b>{html.escape(self.label(p))}</b></td><td>{html.escape(data.text)}</td>"
                        f"<td>{html.escape(trust_line(wild.get(name)))}</td></tr>")
        note = ""
        if unproven:
            note = ("<p><b>Not evidence:</b> " + html.escape(", ".join(unproven)) + " learned only from the kit's own "
                    "fakes (or the checkpoint does not say what it learned from). On a real-world photo or a "
                    "text-to-image output its score is a guess, however confident it looks: notebook 05 measures "
                    "it on WILD.</p>")
        self.scores.value = ("<table><tr><th>detector</th><th>p(ai)</th><th>CLIP score</th>"
                             f"<th>label at p(ai) ≥ {self.threshold.value:.2f}</th><th>trained on</th>"
                             "<th>how far to trust it (WILD v2, at its own threshold)</th></tr>"
                             f"{''.join(rows)}</table>{note}")

    @_shows_errors
    def choose_detector(self) -> None:
        """The heatmap detector changed: offer its layers (which redraws the heatmap)."""
        before = self.layer.value
        self.layer.options = self._layer_options()  # selects the default layer: a new value redraws by itself
        if self.layer.value == before:
            self.render_heatmap()

    @_shows_errors
    def render_heatmap(self) -> None:
        """Grad-CAM of the ``ai`` class for the chosen detector and layer, next to what the model saw."""
        if self.image is None or self.layer.value is None:
            return
        from .explain.cam import explain

        result = explain(self.detectors[self.heatmap_detector.value], self.image, layer=self.layer.value)
        self.heatmap.value = side_by_side(result.views[0], result.overlays()[0])
        self.caption.value = html.escape(f"Grad-CAM of the 'ai' score at {result.layer} "
                                         f"({self.heatmap_detector.value}); red = strongest evidence for AI")


def probe_samples(paths: Mapping[str, Sequence[Path]]) -> dict[str, Path]:
    """``{"GEN/val/ai/file.png": path, ...}`` for the sample dropdown, from ``explain.sample_images``."""
    return {"/".join(Path(path).parts[-4:]): Path(path) for group in paths.values() for path in group}
