"""The optimised inference path: the network compiled for a small fixed set of static shapes, cached on disk.

Every batch is padded up to a *shape bucket* (rows: powers of 4 up to the batch size, plus the batch size;
tokens: multiples of 8 up to 32, then 48, 64, then multiples of 32 up to ``max_length``). Padding rows are
copies of row 0 and padding columns are masked pad tokens, so the real rows' outputs do not change (right
padding, causal attention, masked pooling); the caller keeps the first rows. Each bucket is one static graph
(``torch.compile(dynamic=False)``), so inductor specialises every kernel to its sizes and dynamo never meets
a shape it has not compiled for: at most ``len(row buckets) x len(token buckets)`` graphs per process, ever.

Compilation is paid once per machine, not once per process: inductor's FX graph cache and AOT autograd cache
live under ``<model cache dir>/inductor`` (``TORCHINDUCTOR_CACHE_DIR``, unless already set), so one-shot
commands (``finpulse classify``, ``evaluate``, ``alerts backtest``, ``bench events``) reuse what the worker
or an earlier run compiled. A bucket is compiled when it is first needed (``hot_rows=0``: the worker and
``compile=on``) or once ``hot_rows`` texts have gone through it eagerly (``compile=auto`` in one-shot commands, so a
command that classifies a handful of texts never waits for a compiler).

If compiling or running a compiled graph fails (no C++ compiler, no triton, an inductor bug), the network
logs why once and runs eagerly from then on: same answers, reference speed.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def row_buckets(batch_size: int) -> tuple[int, ...]:
    """Batch sizes compiled for: 4, 16, 64, ... below ``batch_size``, and ``batch_size`` itself."""
    sizes, n = set(), 4
    while n < batch_size:
        sizes.add(n)
        n *= 4
    return tuple(sorted(sizes | {batch_size}))


def token_buckets(max_length: int) -> tuple[int, ...]:
    """Sequence lengths compiled for: 8, 16, 24, 32, 48, 64, 96, 128, ... capped at ``max_length``."""
    sizes = [8, 16, 24, 32, 48, 64]
    while sizes[-1] < max_length:
        sizes.append(sizes[-1] + 32)
    return tuple(sorted({min(s, max_length) for s in sizes}))


def bucket(n: int, buckets: tuple[int, ...]) -> int:
    """The smallest bucket that holds ``n`` (``n`` never exceeds the largest: callers cap it)."""
    return next(b for b in buckets if b >= n)


def pad_to_shape(
    x: torch.Tensor, mask: torch.Tensor, rows: int, cols: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Grow a (B, T) batch to (rows, cols): masked pad columns, then copies of row 0."""
    import torch

    b, t = x.shape
    if t < cols:
        x = torch.cat([x, x.new_zeros(b, cols - t)], dim=1)
        mask = torch.cat([mask, mask.new_zeros(b, cols - t)], dim=1)
    if b < rows:
        x = torch.cat([x, x[:1].expand(rows - b, -1)])
        mask = torch.cat([mask, mask[:1].expand(rows - b, -1)])
    return x, mask


def use_persistent_cache(cache_dir: str) -> Path:
    """Point inductor's on-disk caches at ``<cache_dir>/inductor``, unless the user chose a folder.

    Importing inductor fills ``TORCHINDUCTOR_CACHE_DIR`` with its default (a temporary folder, lost on reboot),
    and inductor reads the variable each time it looks a graph up, so the default is replaced here."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    chosen = os.environ.get(CACHE_ENV)
    if chosen is None or os.path.abspath(chosen) == os.path.abspath(default_cache_dir()):
        os.environ[CACHE_ENV] = str(Path(cache_dir).expanduser() / "inductor")
    import torch._inductor.config as inductor

    folder = Path(os.environ[CACHE_ENV])
    folder.mkdir(parents=True, exist_ok=True)
    inductor.fx_graph_cache = True
    return folder


def store_linear_weights_in_bf16(net: nn.Module) -> int:
    """Keep every ``nn.Linear``'s weight (and bias) in bf16; returns how many were converted.

    Under bf16 autocast a linear layer casts its fp32 weight to bf16 on *every* call (a full copy of the
    weights per batch, a third of a CPU forward pass in the profile); stored in bf16 it is used as it is.
    The results are bit-identical: autocast would round the weights to exactly these values. Only for a
    network that always runs under bf16 autocast (norms, embeddings and pooling stay fp32)."""
    import torch
    from torch import nn

    converted = 0
    for module in net.modules():
        if isinstance(module, nn.Linear) and module.weight.dtype == torch.float32:
            module.to(torch.bfloat16)
            converted += 1
    return converted


class BucketedNetwork:
    """``net(x, mask)`` with the same results, run through one static compiled graph per shape bucket."""

    def __init__(
        self, net: nn.Module, batch_size: int, max_length: int, hot_rows: int = 0, cuda_graphs: bool = False
    ) -> None:
        import torch
        import torch._dynamo.config as dynamo

        self.net = net
        self.rows, self.cols = row_buckets(batch_size), token_buckets(max_length)
        # Each bucket is one cache entry of the network's forward frame, which every network of this class in
        # the process shares: each BucketedNetwork adds room for all of its buckets.
        dynamo.recompile_limit += len(self.rows) * len(self.cols)
        # On CUDA, "reduce-overhead" replays each bucket as a CUDA graph (no per-kernel launch cost).
        self.compiled: Any = torch.compile(
            net, dynamic=False, mode="reduce-overhead" if cuda_graphs else None
        )
        self.hot_rows = hot_rows
        self.seen: Counter[tuple[int, int]] = Counter()
        self.ready: set[tuple[int, int]] = set()
        self.failed: str | None = None

    def shape_for(self, batch: int, tokens: int) -> tuple[int, int]:
        return bucket(min(batch, self.rows[-1]), self.rows), bucket(min(tokens, self.cols[-1]), self.cols)

    def __call__(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.failed is not None or x.shape[0] > self.rows[-1] or x.shape[1] > self.cols[-1]:
            return self.net(x, mask)  # type: ignore[no-any-return]
        shape = self.shape_for(*x.shape)
        if shape not in self.ready and self.seen[shape] < self.hot_rows:
            self.seen[shape] += x.shape[0]
            return self.net(x, mask)  # type: ignore[no-any-return]
        return self.run_compiled(shape, x, mask)

    def run_compiled(
        self, shape: tuple[int, int], x: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        xp, mp = pad_to_shape(x, mask, *shape)
        try:
            started = time.perf_counter()
            topic, sent = self.compiled(xp, mp)
        except Exception as exc:  # noqa: BLE001 - inductor/compiler errors are many; eager always works
            self.failed = f"{type(exc).__name__}: {str(exc)[:300]}"
            log.warning("compiled inference failed (%s); running eagerly", self.failed)
            return self.net(x, mask)  # type: ignore[no-any-return]
        if shape not in self.ready:
            self.ready.add(shape)
            log.info("shape %d x %d ready in %.1f s", *shape, time.perf_counter() - started)
        return topic[: x.shape[0]], sent[: x.shape[0]]

    def all_shapes(self) -> list[tuple[int, int]]:
        return [(r, c) for r in self.rows for c in self.cols]

    def warm(self, shapes: list[tuple[int, int]], device: str, bf16: bool) -> bool:
        """Compile (or load from the cache) these buckets now; False if compiling does not work here."""
        import torch

        device_type = "cuda" if device.startswith("cuda") else "cpu"
        with torch.inference_mode(), torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            for rows, cols in shapes:
                x = torch.zeros(rows, cols, dtype=torch.long, device=device)
                self.run_compiled((rows, cols), x, torch.ones_like(x))
                if self.failed is not None:
                    return False
        return True


__all__ = [
    "BucketedNetwork",
    "bucket",
    "pad_to_shape",
    "row_buckets",
    "token_buckets",
    "use_persistent_cache",
]
