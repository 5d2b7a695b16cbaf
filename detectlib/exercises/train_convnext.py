"""Exercises of lesson 02, training a ConvNeXt: swapping the head, the validation transform, freezing, picking the
best epoch, and the prediction read against the lesson's own run."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np

from ..training.loop import History
from .core import (
    Lesson,
    Measured,
    NotAttempted,
    Question,
    Wrong,
    _array,
    _code,
    _function,
    _given,
    _needs,
    _number,
    _prediction_question,
    _run,
    _torch_seeded,
)

if TYPE_CHECKING:
    import torch
    from PIL import Image


# ============================================================================ lesson 02 · train a ConvNeXt


def _imagenet_convnext(num_classes: int = 1000) -> torch.nn.Module:
    """The profile's ConvNeXt with random weights (the shapes are the lesson, not the weights)."""
    from ..config import get_profile
    from ..models.classifier import create_timm_model

    profile = get_profile()
    with _torch_seeded(0):
        return create_timm_model(profile.convnext_model, num_classes=num_classes, pretrained=False,
                                 **profile.convnext_kwargs)


def _check_swap_head(model: Any) -> str:
    import torch

    from ..config import CLASSES

    model = _given(model, "model")
    if not isinstance(model, torch.nn.Module):
        raise Wrong(f"`model` should be the ConvNeXt (a torch.nn.Module), but it is of type {type(model).__name__}.")
    fc = getattr(getattr(model, "head", None), "fc", None)
    if fc is None:
        raise Wrong(f"model.head is now {type(getattr(model, 'head', None)).__name__} without a .fc: did you "
                    "replace the whole head (pooling, norm and fc)? Replace only its last layer, model.head.fc.")
    if not isinstance(fc, torch.nn.Linear):
        raise Wrong(f"model.head.fc is a {type(fc).__name__}; it should be one torch.nn.Linear layer.")
    features = model.num_features  # timm's width of the pooled features, whatever fc is now
    if fc.out_features == 1000:
        raise NotAttempted("model.head.fc still has ImageNet's 1000 outputs: replace it in the TODO cell, then run "
                           "this check again.")
    if fc.out_features != len(CLASSES):
        raise Wrong(f"your new layer has {fc.out_features} output(s); the detector needs one per class, "
                    f"len(dl.CLASSES) = {len(CLASSES)} ({', '.join(CLASSES)}), for a softmax over them.")
    if fc.in_features != features:
        raise Wrong(f"your new layer takes {fc.in_features} inputs, but the pooled features have {features}: "
                    "use model.head.fc.in_features.")
    try:
        with torch.no_grad():
            out = model.eval()(torch.zeros(1, 3, 32, 32))
    except Exception as err:
        raise Wrong(f"running your model on a (1, 3, 32, 32) batch raised {type(err).__name__}: {err}") from None
    if tuple(out.shape) != (1, len(CLASSES)):
        raise Wrong(f"your model returns shape {tuple(out.shape)} for one image; expected (1, {len(CLASSES)}).")
    return (f"{features} pooled features -> {len(CLASSES)} class scores. Everything before fc keeps its "
            "(pretrained, in the reference) weights; only this layer starts from scratch.")


_TRANSFORM_SIZE = 32


def _transform_inputs() -> list[Image.Image]:
    """Seeded RGB PIL images: one to shrink (48 x 40) and one to enlarge (20 x 28), neither square."""
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(2)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).filter(ImageFilter.GaussianBlur(1))
            for w, h in ((48, 40), (20, 28))]


def _check_val_transform(val_transform: Any) -> str:
    from ..data.transforms import build_transforms

    fn = _function(val_transform, "val_transform")
    size = _TRANSFORM_SIZE
    kit = build_transforms(size)["val"]
    for image in _transform_inputs():
        on = f"a {image.width} x {image.height} RGB image"
        with _torch_seeded(0):
            outs = [_run(fn, "val_transform", on, image.copy()) for _ in range(6)]
        if type(outs[0]).__module__.startswith("PIL"):
            raise Wrong("val_transform returns a PIL image: add transforms.ToTensor() after the resize.")
        arrays = [_array(out, "val_transform's output") for out in outs]
        got, expected = arrays[0], kit(image).numpy()
        if any(a.shape != got.shape or not np.array_equal(a, got) for a in arrays[1:]):
            raise Wrong("six calls on the same image gave different tensors: the val transform must be "
                        "deterministic. Random flips belong to the train transform only.")
        if got.shape != expected.shape:
            if got.shape == expected.shape[1:] + expected.shape[:1]:
                hint = "channels come last: torch wants (3, H, W), which ToTensor gives."
            elif got.ndim == 3 and size in got.shape[1:] and got.shape[1] != got.shape[2]:
                hint = (f"did you resize both sides? transforms.Resize({size}) only sets the shorter side; "
                        f"Resize(({size}, {size})) sets both.")
            else:
                hint = "resize to (IMG_SIZE, IMG_SIZE) and convert to a tensor."
            raise Wrong(f"on {on} your transform returns shape {got.shape}; expected {expected.shape}: {hint}")
        gap = float(np.abs(got - expected).max())
        if gap <= 0.05:  # PIL's and torch's antialiased resizes differ by about one grey level
            continue
        if np.abs(got - expected[:, :, ::-1]).max() <= 0.05:
            raise Wrong("your output is the kit's flipped left to right: the val transform has no flip.")
        if got.min() >= 0 and got.max() <= 1.0 + 1e-6:
            raise Wrong("your values lie in [0, 1]: add transforms.Normalize(mean, std) with ImageNet's "
                        "dl.data.IMAGENET_MEAN and dl.data.IMAGENET_STD.")
        if got.max() > 2.7:
            raise Wrong(f"your values reach {got.max():.0f}: scale pixels to [0, 1] (ToTensor) before "
                        "normalising.")
        raise Wrong(f"on {on} your values differ from dl.data.build_transforms({size})['val'] by up to {gap:.2f}: "
                    "check the mean and std (ImageNet's) and their order, mean first.")
    return "it matches dl.data.build_transforms(...)['val'], the transform that notebooks 02, 04 and 05 use."


def _partly_frozen_models() -> list[torch.nn.Module]:
    """Small networks the learner never saw, widths drawn from a seed, each with part of its layers frozen."""
    from torch import nn

    rng = np.random.default_rng(17)
    width, hidden = (int(w) for w in rng.integers(3, 9, 2))
    with _torch_seeded(17):
        models = [nn.Sequential(nn.Conv2d(3, width, 3), nn.BatchNorm2d(width), nn.Flatten(), nn.Linear(width, 2)),
                  nn.Sequential(nn.Linear(5, hidden), nn.ReLU(), nn.Linear(hidden, 3, bias=False))]
    for model, frozen in zip(models, ("0.", "2."), strict=True):
        for name, p in model.named_parameters():
            p.requires_grad = not name.startswith(frozen)
    return models


def _check_frozen(model: torch.nn.Module) -> None:
    """Raise ``Wrong`` unless exactly the parameters of ``model.head.fc`` train."""
    params = dict(model.named_parameters())
    training = sorted(name for name, p in params.items() if p.requires_grad)
    head = sorted(name for name in params if name.startswith("head.fc."))
    if not training:
        raise Wrong("nothing trains any more: the new model.head.fc must keep requires_grad = True.")
    if len(training) == len(params):
        raise Wrong(f"every parameter still trains ({sum(p.numel() for p in params.values()):,} numbers): set "
                    "requires_grad = False on all parameters except those of model.head.fc.")
    extra, frozen_head = sorted(set(training) - set(head)), sorted(set(head) - set(training))
    if frozen_head:
        raise Wrong(f"{frozen_head[0]} is frozen, but the new layer is what we train: keep head.fc trainable.")
    if extra:
        raise Wrong(f"{len(extra)} backbone tensor(s) still train, e.g. {extra[0]}: only head.fc should.")


def _count_feedback(got: float, model: torch.nn.Module, on: str) -> None:
    """Raise ``Wrong`` naming the slip when ``got`` is not the number of trainable numbers of ``model``."""
    params = [(name, p) for name, p in model.named_parameters()]
    trainable = [(name, p) for name, p in params if p.requires_grad]
    if got == sum(p.numel() for _, p in trainable):
        return
    if got == len(trainable):
        raise Wrong(f"on {on} you return {got:g}, the number of trainable *tensors*; count the numbers in them.")
    if got == sum(p.numel() for _, p in params):
        raise Wrong(f"on {on} you return {got:,.0f}, every parameter; count only those with requires_grad.")
    if got == sum(p.numel() for name, p in trainable if name.endswith("weight")):
        raise Wrong(f"on {on} you count the weights only; the biases train too.")
    raise Wrong(f"on {on} count_trainable returns {got:,g}, not the count of numbers with requires_grad.")


def _check_freeze(model: Any, count_trainable: Any) -> str:
    import torch

    model = _given(model, "model")
    if not isinstance(model, torch.nn.Module):
        raise Wrong(f"`model` should be the ConvNeXt (a torch.nn.Module), but it is of type {type(model).__name__}.")
    if all(p.requires_grad for p in model.parameters()):
        raise NotAttempted("every parameter of `model` still trains: freeze all but model.head.fc in the TODO cell, "
                           "then run this check again.")
    _check_frozen(model)
    fn = _function(count_trainable, "count_trainable")
    for on, net in (("your frozen ConvNeXt", model),
                    *((f"a small network you have not seen ({i})", m) for i, m in enumerate(_partly_frozen_models(), 1))):
        _count_feedback(_number(_run(fn, "count_trainable", on, net), "count_trainable(...)"), net, on)
    head = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return (f"{head:,} of {total:,} numbers train ({head / total:.2%}): an epoch only updates the head, which is "
            "why a frozen backbone (linear probing, lesson 03) trains so fast.")


def _history(val_loss: list[float], val_correct: list[int], n_val: int = 40) -> History:
    """A ``dl.training.History`` as ``fit`` returns it, from validation losses and counts (training loss falls)."""
    from ..training.loop import History

    return History([
        {"epoch": e + 1, "train_loss": round(0.69 * 0.75 ** e, 3), "train_acc": min(1.0, 0.5 + e * 0.07),
         "val_loss": vl, "val_acc": vc / n_val, "val_images": n_val}
        for e, (vl, vc) in enumerate(zip(val_loss, val_correct, strict=True))
    ])


def _overfit_history() -> History:
    """8 epochs that over-fit, two of them tied on validation accuracy: the input of question 4."""
    return _history([0.68, 0.60, 0.52, 0.47, 0.49, 0.48, 0.56, 0.63], [22, 27, 31, 33, 35, 35, 34, 33])


def _other_histories() -> list[History]:
    """Histories the learner never saw: a clear best, a three-way tie on accuracy, and two drawn from seeds."""
    return [_history([0.70, 0.55, 0.41, 0.44, 0.52], [20, 28, 34, 31, 30]),
            _history([0.69, 0.50, 0.45, 0.46, 0.43, 0.47], [21, 30, 32, 32, 32, 29]),
            *(_random_history(seed) for seed in (51, 52))]


def _random_history(seed: int, epochs: int = 7) -> History:
    """A seeded history whose validation loss falls, then rises at least once; accuracies from a narrow range, so
    ties are likely."""
    rng = np.random.default_rng(seed)
    steps = rng.uniform(-0.12, 0.06, epochs - 1)
    steps[int(rng.integers(2, epochs - 1))] = abs(steps.max()) + 0.02  # one rise, at least
    val_loss = np.round(0.7 + np.concatenate([[0.0], np.cumsum(steps)]), 3)
    return _history([float(v) for v in val_loss], [int(c) for c in rng.integers(27, 33, epochs)])


def _overfit_start(history: History) -> int:
    """The first epoch whose validation loss rises above the epoch before while the training loss still falls."""
    rows = history.epochs
    return next(b["epoch"] for a, b in itertools.pairwise(rows) if b["val_loss"] > a["val_loss"]
                and b["train_loss"] < a["train_loss"])


def _pick_feedback(got: float, history: History, on: str) -> None:
    """Raise ``Wrong`` naming the slip when ``got`` is not the epoch ``History.best`` picks."""
    rows = {row["epoch"]: row for row in history.epochs}
    best = history.best()
    if got == best["epoch"]:
        return
    if got not in rows:
        raise Wrong(f"on {on} pick_best returns {got:g}, but the epochs run from 1 to {len(rows)}; return "
                    "row['epoch'], not a position in the list.")
    row = rows[int(got)]
    by = {key: min(rows.values(), key=lambda r: r[key])["epoch"] for key in ("train_loss", "val_loss")}
    if got == by["train_loss"] and got != by["val_loss"]:
        raise Wrong(f"on {on} you pick epoch {got:g}, the lowest *training* loss, which over-fits most: best.pth "
                    "is chosen on the validation accuracy.")
    if row["val_acc"] == best["val_acc"]:
        raise Wrong(f"on {on} epochs {got:g} and {best['epoch']} tie on validation accuracy "
                    f"({row['val_acc']:.3f}); a tie goes to the lower validation loss.")
    if got == by["val_loss"]:
        raise Wrong(f"on {on} you pick epoch {got:g}, the lowest validation loss, but best.pth is chosen by the "
                    "highest validation *accuracy*; the validation loss only breaks ties.")
    raise Wrong(f"on {on} epoch {got:g} has val acc {row['val_acc']:.3f}; another epoch has a higher one.")


def _start_feedback(got: float, history: History, on: str) -> None:
    """Raise ``Wrong`` naming the slip when ``got`` is not the first epoch whose validation loss rises."""
    start, rows = _overfit_start(history), history.epochs
    if got == start:
        return
    later = [e for e in range(start + 1, len(rows) + 1) if rows[e - 1]["val_loss"] > rows[e - 2]["val_loss"]]
    if got in later:
        raise Wrong(f"on {on} the validation loss rises at epoch {got:g}, but it rose earlier already; look for "
                    "the first epoch whose validation loss is above the one before.")
    if got == history.best()["epoch"]:
        raise Wrong(f"on {on} epoch {got:g} is the best checkpoint, not where over-fitting starts: compare each "
                    "epoch's validation loss with the epoch before.")
    raise Wrong(f"on {on} at epoch {got:g} the validation loss does not rise above the epoch before while the "
                "training loss falls.")


def _check_best_epoch(pick_best: Any, overfit_start: Any) -> str:
    picker = _function(pick_best, "pick_best")
    histories = (_overfit_history(), *_other_histories())
    for i, history in enumerate(histories):
        on = "question 4's history" if i == 0 else f"a history of {len(history.epochs)} epochs you have not seen"
        got = _number(_run(picker, "pick_best", on, [dict(r) for r in history.epochs]), "pick_best(...)")
        _pick_feedback(got, history, on)
    starter = _function(overfit_start, "overfit_start")
    for i, history in enumerate(histories):
        on = "question 4's history" if i == 0 else f"a history of {len(history.epochs)} epochs you have not seen"
        got = _number(_run(starter, "overfit_start", on, [dict(r) for r in history.epochs]), "overfit_start(...)")
        _start_feedback(got, history, on)
    history = histories[0]
    start, best = _overfit_start(history), history.best()
    return (f"best.pth is epoch {best['epoch']} (val acc {best['val_acc']:.3f}), chosen by the same rule as "
            f"History.best(); the validation loss already rose at epoch {start}. Accuracy can still tie or climb "
            "while the loss worsens: the model grows over-confident on the images it gets wrong.")


def _measure_fit() -> Measured:
    """Lesson 02: under-, over- or good fit of the ConvNeXt the lesson trained, from its last epoch's checkpoint
    (``best.pth`` holds the history only up to the best epoch; the lesson's verdict reads every epoch)."""
    from ..config import get_paths
    from ..models.checkpoints import latest_checkpoint, load_checkpoint
    from ..training.convnext import fit_kind, fit_verdict
    from ..training.loop import History

    models = get_paths().models
    ckpt = load_checkpoint(latest_checkpoint(models) or _needs(models / "epoch_1.pth", "02_train_convnext"))
    history = History(list(ckpt["history"]))
    return Measured(fit_kind(history), fit_verdict(history))


lesson02 = Lesson("02_train_convnext", "Train a ConvNeXt detector", [
    Question(
        "q1", "Swap the head", ("model",), _check_swap_head,
        hints=("Keep everything the network has learnt and replace only the very last layer, the one that maps "
               "features to ImageNet's classes, by one that maps them to ours.",
               "print(model.head) names its layers; torch.nn.Linear's docs give its two sizes, the old layer keeps "
               "its input size as an attribute, and dl.CLASSES lists our classes. A submodule is replaced by plain "
               "attribute assignment."),
        setup=_code("""
            model = ex.q1.data()  # the profile's ConvNeXt with ImageNet's 1000-class head (random weights)
            print(model.head)
        """),
        todo=_code("""
            import torch

            ...  # TODO: replace the last layer, model.head.fc, by one with an output per class (dl.CLASSES)
        """),
        solution_code=_code("""
            import torch

            model.head.fc = torch.nn.Linear(model.head.fc.in_features, len(dl.CLASSES))
        """),
        data_fn=_imagenet_convnext,
    ),
    Question(
        "q2", "The validation transform", ("val_transform",), _check_val_transform,
        hints=("Three steps, always the same for one image: give it the network's size, turn it into numbers, and "
               "scale those numbers the way the pretrained network saw them. Nothing random.",
               "torchvision's transforms docs: Compose chains steps; read what Resize does with one number and with "
               "a pair, what ToTensor returns, and which two constants Normalize takes (the kit's are "
               "dl.data.IMAGENET_MEAN and dl.data.IMAGENET_STD)."),
        setup=f"IMG_SIZE = {_TRANSFORM_SIZE}  # the reference uses 224",
        todo=_code("""
            from torchvision import transforms

            val_transform = ...  # TODO: PIL image -> (3, IMG_SIZE, IMG_SIZE) float tensor, ImageNet-normalised
        """),
        solution_code=_code("""
            from torchvision import transforms

            val_transform = transforms.Compose([
                transforms.Resize((IMG_SIZE, IMG_SIZE)),
                transforms.ToTensor(),
                transforms.Normalize(dl.data.IMAGENET_MEAN, dl.data.IMAGENET_STD),
            ])
        """),
        forbidden=("detectlib.data.transforms.*",),
    ),
    Question(
        "q3", "Freeze the backbone", ("model", "count_trainable"), _check_freeze,
        hints=("The optimiser only changes parameters that ask for a gradient; switch that off everywhere but in "
               "the new layer, then count numbers, not tensors.",
               "model.named_parameters() yields (name, tensor) pairs, and every tensor has a requires_grad flag you "
               "can set; the new layer's names start with 'head.fc.'. Tensor.numel() counts the numbers in one "
               "tensor."),
        setup=_code("""
            model = ex.q3.data()  # a fresh 2-class ConvNeXt
            print(f"{sum(p.numel() for p in model.parameters()):,} numbers in all")
        """),
        todo=_code('''
            ...  # TODO: freeze every parameter of model except those of model.head.fc

            def count_trainable(model):
                """How many numbers the optimiser will still change in any torch model."""
                ...  # TODO
        '''),
        solution_code=_code('''
            for name, p in model.named_parameters():
                p.requires_grad = name.startswith("head.fc.")

            def count_trainable(model):
                """How many numbers the optimiser will still change in any torch model."""
                return sum(p.numel() for p in model.parameters() if p.requires_grad)
        '''),
        data_fn=lambda: _imagenet_convnext(num_classes=2),
    ),
    Question(
        "q4", "Which epoch becomes best.pth, and when does over-fitting start?", ("pick_best", "overfit_start"),
        _check_best_epoch,
        hints=("best.pth is chosen by one number measured on images the model does not train on; a second number "
               "breaks ties. Over-fitting shows first in the validation *loss*, while the training loss still falls.",
               "Python's max() takes a key function, and a key may be a tuple, compared item by item (so its second "
               "item breaks ties; negate a number to prefer it small). zip(rows, rows[1:]) walks neighbouring "
               "epochs; next() takes the first item of a generator."),
        setup=_code("""
            history = ex.q4.data()  # what dl.training.fit returned after 8 epochs
            for row in history.epochs:
                print(f"epoch {row['epoch']}: train loss {row['train_loss']:.2f}   val loss {row['val_loss']:.2f}   "
                      f"val acc {row['val_acc']:.3f}")
        """),
        todo=_code('''
            def pick_best(epochs):
                """The epoch number dl.training.fit saves as best.pth, from a list of rows like history.epochs."""
                ...  # TODO

            def overfit_start(epochs):
                """The first epoch whose val loss rises above the epoch before (the train loss falls throughout)."""
                ...  # TODO
        '''),
        solution_code=_code('''
            def pick_best(epochs):
                """The epoch number dl.training.fit saves as best.pth, from a list of rows like history.epochs."""
                return max(epochs, key=lambda row: (row["val_acc"], -row["val_loss"]))["epoch"]

            def overfit_start(epochs):
                """The first epoch whose val loss rises above the epoch before (the train loss falls throughout)."""
                return next(b["epoch"] for a, b in zip(epochs, epochs[1:]) if b["val_loss"] > a["val_loss"])
        '''),
        data_fn=_overfit_history,
        forbidden=("detectlib.training.loop.*", "detectlib.training.convnext.*"),
    ),
    _prediction_question(
        "q5", "Predict, then read the training curves",
        {"under-fits": "it does not even get its training images right",
         "over-fits": "training accuracy well above validation",
         "fits": "training and validation accuracy both high and close"}, _measure_fit,
        hints=("Ask what the network starts from (random weights or pretrained?) and how many images it sees. Few "
               "images and a big network over-fit; a task it cannot yet see under-fits.",
               "help(dl.training.fit_kind) states the rule the check applies to the run. Reason from the profile's "
               "settings (dl.get_profile(): epochs, images per class) rather than from the curves."),
        todo='prediction = ...  # TODO: "under-fits", "over-fits" or "fits", written down before you run the check',
        solution_code=_code("""
            # From scratch on a few hundred small images, a ConvNeXt usually cannot yet tell these fakes apart: its
            # training accuracy stays low, close to validation (under-fitting), rather than memorising the images.
            prediction = ex.q5.measured()  # what this run measured: the check reads it
        """),
    ),
])
