"""models.memory: what training needs on a GPU, measured on the CPU, and the batch a GPU holds; training's
out-of-memory becomes one line. Exact byte counts on models whose saved tensors can be written down by hand."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from detectlib.models import memory
from detectlib.models.memory import GpuTooSmallError, MemoryNeed, batch_for_gpu, inference_need, training_need
from detectlib.training import convnext as convnext_training
from detectlib.training.loop import fit

SIDE = 4
PIXELS = 3 * SIDE * SIDE  # 48 inputs per image
GPU = 16 * 10**9


def probe() -> nn.Module:
    """Flatten, Linear(48 -> 5), Linear(5 -> 3): backward keeps each layer's input, and the second layer's weight
    (to carry the gradient back to the first); a weight kept in float32 is a parameter, counted once as such."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(PIXELS, 5), nn.Linear(5, 3))


WEIGHTS = (PIXELS * 5 + 5 + 5 * 3 + 3) * 4  # float32 bytes of both layers


def test_float32_training_keeps_each_layers_input_per_image_plus_gradients_and_two_adamw_states():
    need = training_need(probe(), SIDE, amp=False)
    assert need.per_image_bytes == (PIXELS + 5) * 4
    assert need.fixed_bytes == WEIGHTS + 3 * WEIGHTS  # + gradient, exp_avg, exp_avg_sq


def test_mixed_precision_halves_what_is_kept_and_adds_the_half_precision_weight_copy():
    need = training_need(probe(), SIDE, amp=True)
    assert need.per_image_bytes == (PIXELS + 5) * 2  # inputs cast to bfloat16, as CUDA autocast casts to 16 bits
    assert need.fixed_bytes == 4 * WEIGHTS + 5 * 3 * 2  # + the bfloat16 copy of the second weight matrix


def test_a_frozen_model_needs_no_gradients_or_optimizer_states():
    model = probe()
    model.requires_grad_(False)
    model[2].bias.requires_grad_(True)  # a head's bias alone trains: backward keeps nothing of the inputs
    need = training_need(model, SIDE, amp=False)
    assert need.fixed_bytes == WEIGHTS + 3 * 3 * 4 and need.per_image_bytes == 0


def test_a_convnext_keeps_exactly_fixed_plus_batch_times_per_image(one_thread):
    model = timm.create_model("convnext_atto", num_classes=2, depths=(1, 1, 2, 1), dims=(16, 32, 64, 128))
    need = training_need(model, 32, amp=True)
    weights = sum(p.numel() * 4 for p in model.parameters()) + sum(b.numel() * b.element_size()
                                                                   for b in model.buffers())
    kept = memory._saved_for_backward(model.train(), torch.zeros(5, 3, 32, 32), amp=True)
    assert kept == need.fixed_bytes - 4 * weights + 5 * need.per_image_bytes
    assert training_need(model, 32, amp=False).per_image_bytes > 1.5 * need.per_image_bytes
    assert model.training and not any(p.grad is not None for p in model.parameters())  # measured, not trained


def test_inference_holds_the_input_and_the_two_largest_activations_alive_at_once():
    need = inference_need(probe(), SIDE, amp=False)
    assert need.fixed_bytes == WEIGHTS  # nothing is kept for backward
    assert need.per_image_bytes == (PIXELS + 5 + 3) * 4  # the input, the first output while the second is made


def test_mixed_precision_inference_adds_the_half_precision_copy_of_the_input():
    need = inference_need(probe(), SIDE, amp=True)
    assert need.per_image_bytes == PIXELS * 4 + PIXELS * 2 + 5 * 2  # input, its bfloat16 cast, the first output
    assert need.fixed_bytes > WEIGHTS  # + autocast's cached bfloat16 copies of the weights


def test_inference_needs_far_less_than_training(one_thread):
    model = timm.create_model("convnext_atto", num_classes=2, depths=(1, 1, 2, 1), dims=(16, 32, 64, 128))
    assert inference_need(model, 64).per_image_bytes < training_need(model, 64).per_image_bytes / 3


def test_the_largest_batch_is_the_last_that_fits():
    need = MemoryNeed("x", fixed_bytes=10**9, per_image_bytes=50 * 10**6)
    largest = need.largest_batch(GPU)
    assert need.bytes_at(largest) <= GPU < need.bytes_at(largest + 1)
    assert MemoryNeed("x", 20 * 10**9, 1).largest_batch(GPU) == 0


def test_a_batch_that_fits_is_kept_silently():
    need = MemoryNeed("training", 10**9, 50 * 10**6)
    assert batch_for_gpu(need, 16, GPU, "Tesla T4", explicit=True) == (16, None)


def test_a_default_batch_too_large_drops_to_a_power_of_two_that_fits_and_says_so():
    need = MemoryNeed("training", 10**9, 50 * 10**6)
    batch, note = batch_for_gpu(need, 1024, GPU, "Tesla T4", explicit=False)
    assert batch == 128 and batch <= need.largest_batch(GPU) < 2 * batch
    assert "Tesla T4 has 16.0 GB" in note and "batch 128" in note


def test_an_explicit_batch_too_large_is_refused_with_the_largest_that_fits():
    need = MemoryNeed("training", 10**9, 50 * 10**6)
    with pytest.raises(GpuTooSmallError, match=rf"\(--batch_size {need.largest_batch(GPU)}\) or less"):
        batch_for_gpu(need, 1024, GPU, "Tesla T4", explicit=True)


def test_a_gpu_that_holds_no_image_names_the_way_out():
    with pytest.raises(GpuTooSmallError, match="even at batch 1 .* larger GPU runtime, or the demo profile"):
        batch_for_gpu(MemoryNeed("training", 20 * 10**9, 10**6), 16, GPU, "Tesla T4", explicit=False)


def test_train_convnext_asks_the_gpu_for_its_batch(monkeypatch, capsys, one_thread):
    """The CUDA-only step of ``train_convnext``, on the CPU: a GPU of 1 GB lowers the default
    batch of 64 at 224 px, and refuses it when asked for."""
    monkeypatch.setattr(convnext_training, "autocast_dtype", lambda device: torch.float16)
    monkeypatch.setattr(convnext_training, "gpu_memory_bytes", lambda device: 10**9)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "Small GPU")
    model = timm.create_model("convnext_atto", num_classes=2)
    batch = convnext_training._batch_for_this_gpu(model, 224, 64, explicit=False, local_rank=0, show=True)
    need = training_need(model, 224, amp=True)
    assert batch < 64 and need.bytes_at(batch) <= 10**9 < need.bytes_at(2 * batch)
    assert f"training at batch {batch} instead" in capsys.readouterr().out
    with pytest.raises(GpuTooSmallError, match="--batch_size"):
        convnext_training._batch_for_this_gpu(model, 224, 64, explicit=True, local_rank=0, show=True)


class _OutOfMemory(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(2, 2)

    def forward(self, x):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_running_out_of_memory_in_training_is_one_line_with_a_smaller_batch():
    data = torch.utils.data.TensorDataset(torch.zeros(8, 2), torch.zeros(8, dtype=torch.long))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    with pytest.raises(GpuTooSmallError, match=r"ran out of memory training at batch 8: .*--batch_size 4") as err:
        fit(_OutOfMemory(), loader, loader, epochs=1, lr=1e-3, progress=False)
    assert "\n" not in str(err.value) and err.value.__suppress_context__
