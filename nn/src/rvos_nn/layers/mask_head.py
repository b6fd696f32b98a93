"""CondInst-style dynamic mask head: per-query 1x1 conv weights applied to shared mask features.

Paper: Tian et al., "Conditional Convolutions for Instance Segmentation", ECCV 2020. Upstream:
``dynamic_mask_with_coords``, ``mask_heads_forward``, ``parse_dynamic_params``,
``aligned_bilinear``, ``compute_locations`` in ``ReferFormer/models/referformer.py`` of
RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d (same code in MUTR and SOC; UNINEXT composes the same
pieces differently and can use the functions directly).

The parameters come from a ``controller`` MLP owned by the model (its keys live there); this
module has none. Parameter layout per query: [w_0, ..., w_{n-1}, b_0, ..., b_{n-1}] with w_0 of
(in + 2) x channels (features then relative coordinates (x, y)), hidden layers channels x channels
and the output layer channels x 1.

Difference: upstream repeats the mask features for every query and runs one grouped convolution
over the concatenation [features, coordinates]; here the first layer is split into a shared
product with the features (one einsum per frame) plus the coordinate part, which gives the same
values (~1e-6) without the [T, Q, C, h, w] copy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def dynamic_param_counts(
    *, in_channels: int, channels: int, num_layers: int, rel_coord: bool
) -> tuple[list[int], list[int]]:
    """Numbers of weights and biases per dynamic layer (input ``in_channels`` (+2 coordinates),
    hidden ``channels``, output 1)."""
    weights, biases = [], []
    for layer in range(num_layers):
        fan_in = (in_channels + 2 if rel_coord else in_channels) if layer == 0 else channels
        fan_out = 1 if layer == num_layers - 1 else channels
        weights.append(fan_in * fan_out)
        biases.append(fan_out)
    return weights, biases


def parse_dynamic_params(
    params: Tensor, channels: int, weight_nums: list[int], bias_nums: list[int]
) -> tuple[list[Tensor], list[Tensor]]:
    """[K, P] -> per layer weights [K * out, in, 1, 1] and biases [K * out] (grouped-conv form)."""
    num_insts, num_layers = params.shape[0], len(weight_nums)
    splits = list(torch.split_with_sizes(params, weight_nums + bias_nums, dim=1))
    weights, biases = splits[:num_layers], splits[num_layers:]
    for layer in range(num_layers):
        out = 1 if layer == num_layers - 1 else channels
        weights[layer] = weights[layer].reshape(num_insts * out, -1, 1, 1)
        biases[layer] = biases[layer].reshape(num_insts * out)
    return weights, biases


def compute_locations(h: int, w: int, stride: int, device: torch.device) -> Tensor:
    """Pixel centres of a stride-``stride`` grid: [h * w, 2] (x, y) = (stride * j + stride // 2, ...)."""
    shifts_x = torch.arange(0, w * stride, step=stride, dtype=torch.float32, device=device)
    shifts_y = torch.arange(0, h * stride, step=stride, dtype=torch.float32, device=device)
    shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
    return torch.stack((shift_x.reshape(-1), shift_y.reshape(-1)), dim=1) + stride // 2


def aligned_bilinear(tensor: Tensor, factor: int) -> Tensor:
    """CondInst's corner-aligned x``factor`` upsampling of [N, C, h, w] -> [N, C, factor*h, factor*w]."""
    if factor < 1 or int(factor) != factor:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    if factor == 1:
        return tensor
    h, w = tensor.shape[2:]
    tensor = F.pad(tensor, pad=(0, 1, 0, 1), mode="replicate")
    oh, ow = factor * h + 1, factor * w + 1
    tensor = F.interpolate(tensor, size=(oh, ow), mode="bilinear", align_corners=True)
    tensor = F.pad(tensor, pad=(factor // 2, 0, factor // 2, 0), mode="replicate")
    return tensor[:, :, : oh - 1, : ow - 1]


class DynamicMaskHead(nn.Module):
    """Mask logits from mask features, per-query dynamic parameters and reference points.

    Args:
        in_channels: mask feature channels.
        channels: hidden channels of the dynamic convs (``dynamic_mask_channels``).
        num_layers: dynamic conv layers (``controller_layers``).
        rel_coord: append the query-relative pixel coordinates (reference * image size - location).
        mask_feat_stride, mask_out_stride: stride of the features and of the output
            (upsampled by ``aligned_bilinear`` with their ratio).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        channels: int = 8,
        num_layers: int = 3,
        rel_coord: bool = True,
        mask_feat_stride: int = 4,
        mask_out_stride: int = 4,
    ):
        super().__init__()
        if num_layers < 2:
            raise ValueError("the dynamic mask head needs at least 2 layers")
        if mask_feat_stride % mask_out_stride != 0:
            raise ValueError("mask_feat_stride must be a multiple of mask_out_stride")
        self.in_channels = in_channels
        self.channels = channels
        self.rel_coord = rel_coord
        self.mask_feat_stride = mask_feat_stride
        self.upsample = mask_feat_stride // mask_out_stride
        self.weight_nums, self.bias_nums = dynamic_param_counts(
            in_channels=in_channels, channels=channels, num_layers=num_layers, rel_coord=rel_coord
        )
        self.num_gen_params = sum(self.weight_nums) + sum(self.bias_nums)

    def forward(
        self, mask_features: Tensor, params: Tensor, reference_points: Tensor, image_size: Tensor
    ) -> Tensor:
        """Run every query's dynamic convs on its frame's features.

        Args:
            mask_features: [B, T, C, h, w].
            params: [B, T, Q, num_gen_params] from the controller.
            reference_points: [B, T, Q, 2] (x, y) normalised to the model input.
            image_size: [B, 2] (H, W) of the model input (the unpadded size of each video).

        Returns:
            mask logits [B, T, Q, h * upsample, w * upsample].
        """
        b, t, _, h, w = mask_features.shape
        q = params.shape[2]
        weights, biases = parse_dynamic_params(
            params.flatten(0, 2), self.channels, self.weight_nums, self.bias_nums
        )
        x = self._first_layer(mask_features, weights[0], biases[0], reference_points, image_size)
        x = x.reshape(1, -1, h, w)
        groups = b * t * q
        for weight, bias in zip(weights[1:], biases[1:], strict=True):
            x = F.conv2d(F.relu(x), weight, bias=bias, groups=groups)
        logits = aligned_bilinear(x.reshape(-1, 1, h, w), self.upsample)
        return logits.reshape(b, t, q, *logits.shape[-2:])

    def _first_layer(
        self, features: Tensor, weight: Tensor, bias: Tensor, reference: Tensor, image_size: Tensor
    ) -> Tensor:
        """Layer 0 of every query: [B, T, Q, channels, h, w]."""
        b, t, c, h, w = features.shape
        q = reference.shape[2]
        weight = weight.view(b, t, q, self.channels, -1)
        out = torch.einsum("btqoc,btchw->btqohw", weight[..., :c], features)
        out = out + bias.view(b, t, q, self.channels, 1, 1)
        if not self.rel_coord:
            return out
        scale = image_size.flip(-1).to(reference.dtype)  # (W, H)
        points = reference * scale[:, None, None, :]
        locations = compute_locations(h, w, self.mask_feat_stride, features.device).view(h, w, 2)
        rel = points[:, :, :, None, None, :] - locations  # [B, T, Q, h, w, 2]
        coord_weight = weight[..., c:].to(rel.dtype)  # [B, T, Q, channels, 2]
        return out + torch.einsum("btqok,btqhwk->btqohw", coord_weight, rel).to(out.dtype)
