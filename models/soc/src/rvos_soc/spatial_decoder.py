"""SOC's FPN-like spatial decoder: mask features at stride 4 from the encoder memory.

Paper: Botach et al., "End-to-End Referring Video Object Segmentation with Multimodal
Transformers" (MTTR), CVPR 2022, reused by SOC (Luo et al., NeurIPS 2023). Upstream:
``FPNSpatialDecoder`` in ``soc_test/models/segmentation.py`` of RobertLuo1/iccv2023_RVOS_Challenge
@ c538b0dca85da0719b32ea45253f8b3077defea6. Keys: ``lay1..lay5``, ``gn1..gn5``, ``adapter1..3``,
``out_lay``. Only the three-skip form SOC builds (``len(fpn_dims) == 3``) is written; upstream's
Kaiming initialisation (training only) is not reproduced.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn


class FPNSpatialDecoder(nn.Module):
    """Context map -> (3x3 conv, GroupNorm(8), ReLU) x 2, then per skip map: 1x1 adapter + nearest
    upsampled running map -> 3x3 conv, GroupNorm(8), ReLU; ``out_lay`` 3x3 -> mask features.

    Widths: context_dim, /2, /4, /8, /16 (so ``context_dim`` must be a multiple of 128).
    """

    def __init__(self, *, context_dim: int, fpn_dims: Sequence[int], mask_kernels_dim: int = 8):
        super().__init__()
        if len(fpn_dims) != 3:
            raise ValueError(f"SOC's spatial decoder takes three skip maps, got {len(fpn_dims)}")
        dims = [context_dim // 2**i for i in range(5)]
        self.lay1 = nn.Conv2d(context_dim, dims[0], 3, padding=1)
        self.gn1 = nn.GroupNorm(8, dims[0])
        self.lay2 = nn.Conv2d(dims[0], dims[1], 3, padding=1)
        self.gn2 = nn.GroupNorm(8, dims[1])
        self.lay3 = nn.Conv2d(dims[1], dims[2], 3, padding=1)
        self.gn3 = nn.GroupNorm(8, dims[2])
        self.lay4 = nn.Conv2d(dims[2], dims[3], 3, padding=1)
        self.gn4 = nn.GroupNorm(8, dims[3])
        self.adapter1 = nn.Conv2d(fpn_dims[0], dims[1], 1)
        self.adapter2 = nn.Conv2d(fpn_dims[1], dims[2], 1)
        self.adapter3 = nn.Conv2d(fpn_dims[2], dims[3], 1)
        self.lay5 = nn.Conv2d(dims[3], dims[4], 3, padding=1)
        self.gn5 = nn.GroupNorm(8, dims[4])
        self.out_lay = nn.Conv2d(dims[4], mask_kernels_dim, 3, padding=1)

    def forward(self, x: Tensor, skips: Sequence[Tensor]) -> Tensor:
        """x: [N, context_dim, h, w] (coarsest); skips: three maps [N, fpn_dims[i], h_i, w_i],
        coarse to fine. Returns [N, mask_kernels_dim, h_2, w_2] at the finest skip's size."""
        x = F.relu(self.gn1(self.lay1(x)))
        x = F.relu(self.gn2(self.lay2(x)))
        steps = (
            (self.adapter1, self.lay3, self.gn3),
            (self.adapter2, self.lay4, self.gn4),
            (self.adapter3, self.lay5, self.gn5),
        )
        for (adapter, conv, norm), skip in zip(steps, skips, strict=True):
            lateral = adapter(skip)
            x = lateral + F.interpolate(x, size=lateral.shape[-2:], mode="nearest")
            x = F.relu(norm(conv(x)))
        return self.out_lay(x)
