"""How much GPU memory a model needs to train or to embed, measured on the CPU, and the batch a GPU holds.

Why it can be measured here: what a training step keeps for backward is the same set of tensors on any device.
Under CPU bfloat16 autocast they have the sizes CUDA autocast gives them (2 bytes where a convolution or a matmul
ran in half precision, 4 where autocast keeps float32), so a laptop can say what batch a T4 holds before anyone
rents one. Counted: weights, gradients and AdamW's two states (float32), and the tensors saved for backward, split
into a part per image and a fixed part (autocast's half-precision copies of the weights). Not counted, so added on
top as stated assumptions: the CUDA context and library handles (``CONTEXT_BYTES``) and the caching allocator's
fragmentation and cuDNN workspaces (``HEADROOM``). ``make gpu-check`` measures the real peak on a lent GPU and
records this estimate beside it.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ..config import BadInputError

CONTEXT_BYTES = 600 * 2**20  # CUDA context, cuBLAS and cuDNN handles: ~0.3-0.6 GB on recent drivers; the top end
HEADROOM = 1.2  # the caching allocator's fragmentation and convolution workspaces, on top of what tensors hold
GB = 1e9


class GpuTooSmallError(RuntimeError, BadInputError):
    """A GPU that cannot hold even one image of the job: the message names the GPU, the need and the way out."""


@dataclass(frozen=True)
class MemoryNeed:
    """Bytes a job holds on the GPU: ``fixed_bytes`` whatever the batch, plus ``per_image_bytes`` for each image."""

    what: str
    fixed_bytes: int
    per_image_bytes: int

    def bytes_at(self, batch_size: int) -> int:
        """Estimated peak on a GPU at ``batch_size``, context and headroom included."""
        return int(CONTEXT_BYTES + HEADROOM * (self.fixed_bytes + batch_size * self.per_image_bytes))

    def largest_batch(self, gpu_bytes: int) -> int:
        """The largest batch whose estimated peak fits in ``gpu_bytes`` (0 when not even one image does)."""
        room = (gpu_bytes - CONTEXT_BYTES) / HEADROOM - self.fixed_bytes
        return max(0, math.floor(room / self.per_image_bytes)) if self.per_image_bytes else 0


def _bytes_of(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _saved_for_backward(model: nn.Module, inputs: torch.Tensor, amp: bool) -> int:
    """Bytes of the distinct storages autograd saves for backward in one forward of ``model`` (the parameters
    themselves excluded: they are counted once, as weights)."""
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), \
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        model(inputs)
    return sum(saved.values())


def _fixed_and_per_image(model: nn.Module, image_size: int, measure, *, training: bool) -> tuple[int, int]:
    """(fixed, per image) bytes of ``measure(model, images)`` from batches of one and of two images, with the
    model in training or eval mode for the measurement and back in its own mode after."""
    was_training = model.training
    model.train(training)
    try:
        one, two = (measure(model, torch.zeros(n, 3, image_size, image_size)) for n in (1, 2))
    finally:
        model.train(was_training)
    return max(0, 2 * one - two), two - one


def training_need(model: nn.Module, image_size: int, *, amp: bool = True, what: str = "training") -> MemoryNeed:
    """What training ``model`` on ``image_size`` px images with AdamW holds on a GPU: float32 weights and buffers,
    a gradient and two AdamW states per trainable weight, and what backward needs (half precision with ``amp``,
    as ``training.loop.autocast_dtype`` trains on a GPU)."""
    trainable = _bytes_of(p for p in model.parameters() if p.requires_grad)
    weights = _bytes_of(model.parameters()) + _bytes_of(model.buffers())
    fixed, per_image = _fixed_and_per_image(model, image_size, lambda m, x: _saved_for_backward(m, x, amp),
                                            training=True)
    return MemoryNeed(what, weights + 3 * trainable + fixed, per_image)


class _LiveBytes(TorchDispatchMode):
    """Bytes of the tensors alive at once during a forward: every operator's outputs are tracked by storage until
    the last tensor on it is freed (``skip``: storages counted elsewhere, the weights and the input)."""

    def __init__(self, skip: set[int]):
        super().__init__()
        self.skip, self.refs, self.sizes = skip, {}, {}
        self.now = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor):
                self._track(tensor)
        return out

    def _track(self, tensor: torch.Tensor) -> None:
        key = tensor.untyped_storage().data_ptr()
        if key in self.skip or key == 0:
            return
        if key not in self.refs:
            self.refs[key], self.sizes[key] = 0, tensor.untyped_storage().nbytes()
            self.now += self.sizes[key]
            self.peak = max(self.peak, self.now)
        self.refs[key] += 1
        weakref.finalize(tensor, self._release, key)

    def _release(self, key: int) -> None:
        self.refs[key] -= 1
        if not self.refs[key]:
            self.now -= self.sizes.pop(key)
            del self.refs[key]


def _inference_peak(model: nn.Module, inputs: torch.Tensor, amp: bool) -> int:
    """The largest total of tensors alive at once in one inference forward of ``model``, the input included."""
    skip = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers(), inputs)}
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp), _LiveBytes(skip) as live:
        model(inputs)
    return live.peak + _bytes_of([inputs])


def inference_need(model: nn.Module, image_size: int, *, amp: bool = True, what: str = "embedding") -> MemoryNeed:
    """What a frozen encoder's forward holds on a GPU (embedding, scoring): its float32 weights, and the largest
    set of activations alive at once, measured per image from forwards of one and of two images (half precision
    with ``amp``; the fixed part is autocast's half-precision copies of the weights)."""
    weights = _bytes_of(model.parameters()) + _bytes_of(model.buffers())
    fixed, per_image = _fixed_and_per_image(model, image_size, lambda m, x: _inference_peak(m, x, amp),
                                            training=False)
    return MemoryNeed(what, weights + fixed, per_image)


def gpu_memory_bytes(device: torch.device) -> int:
    """The GPU's total memory (a T4 reports about 15.6 GB of its 16)."""
    return torch.cuda.get_device_properties(device).total_memory


def batch_for_gpu(need: MemoryNeed, wanted: int, gpu_bytes: int, gpu_name: str, *,
                  explicit: bool) -> tuple[int, str | None]:
    """The batch to run ``need`` at on a GPU of ``gpu_bytes``, and a note when it is not ``wanted``.

    A batch the user asked for (``explicit``) is kept when it fits and refused otherwise, with the largest that
    fits in the message; a default batch that does not fit is lowered to the largest power of two that does.
    Raises ``GpuTooSmallError`` when not even one image fits."""
    largest = need.largest_batch(gpu_bytes)
    if need.bytes_at(wanted) <= gpu_bytes:
        return wanted, None
    needs = f"{need.what} at batch {wanted} needs about {need.bytes_at(wanted) / GB:.1f} GB"
    has = f"{gpu_name} has {gpu_bytes / GB:.1f} GB"
    if largest < 1:
        raise GpuTooSmallError(f"{need.what} needs about {need.bytes_at(1) / GB:.1f} GB even at batch 1 and "
                               f"{has}: choose a larger GPU runtime, or the demo profile (DETECTLIB_PROFILE=demo)")
    if explicit:
        raise GpuTooSmallError(f"{needs} and {has}: pass batch_size={largest} (--batch_size {largest}) or less")
    batch = 2 ** int(math.log2(largest))
    return batch, f"{needs} and {has}: training at batch {batch} instead (set batch_size to choose)"
