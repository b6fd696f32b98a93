"""What AOT and DeAOT share: the configuration, and a network base class around the propagation
layers (encoder, projection, identity bank, position embedding, decoder).

Papers: Yang et al., "Associating Objects with Transformers for Video Object Segmentation"
(NeurIPS 2021); Yang & Yang, "Decoupling Features in Hierarchical Propagation for Video Object
Segmentation" (NeurIPS 2022). Upstream: ``networks/models/{aot,deaot}.py`` of yoxu515/aot-benchmark
@ 75e46fe and of its competition copy RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d (``soc_test/AOT``).

The networks are stateless: a ``Session`` (``rvos_vos.session``) owns the memory and calls
``encode`` / ``id_embedding`` / ``propagate`` / ``memorize`` / ``decode``. Memory entries are
per-layer tuples of sequence-first tensors whose layout is private to each model.
Differences from upstream: only ``MODEL_ALIGN_CORNERS = False`` (every Swin model); dropout and
drop-path rates are 0 until ``rvos_vos.training`` sets them (the training forward and its id
shuffling are there too, through ``embed_ids``); upstream's weight initialisation is
``rvos_vos.training.init``, not the constructors'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rvos_core.errors import ConfigError
from rvos_vos.layers import FPNDecoder, map_to_seq, sine_position_embedding
from rvos_vos.swin2d import SwinConfig, SwinTransformer2D

# A memory entry: for every propagation layer, a tuple of [tokens, N, C] tensors.
Entries = list[tuple[Tensor, ...]]

# Identity bank patch: the id masks are embedded by a 16x16 stride-16 convolution.
ID_STRIDE = 16


@dataclass(frozen=True)
class NetConfig:
    """Hyperparameters both propagators have (upstream ``MODEL_*`` names in comments).

    Attributes:
        swin: the 2-D Swin encoder.
        encoder_dims: channels of the encoder maps at /4, /8, /16, /16 (MODEL_ENCODER_DIM).
        d_model: propagation width (MODEL_ENCODER_EMBEDDING_DIM).
        num_layers: propagation layers (MODEL_LSTT_NUM).
        self_heads / att_heads: heads of self- and memory attention (MODEL_SELF_HEADS / _ATT_HEADS).
        max_obj_num: identities besides background (MODEL_MAX_OBJ_NUM).
        decoder_intermediate: the decoder sees every layer's output (MODEL_DECODER_INTERMEDIATE_LSTT).
        long_term_gap: frames between long-term memory entries at test time (TEST_LONG_TERM_MEM_GAP).
    """

    vos: ClassVar[str] = ""

    swin: SwinConfig = field(default_factory=SwinConfig)
    encoder_dims: tuple[int, ...] = (192, 384, 768, 768)
    d_model: int = 256
    num_layers: int = 3
    self_heads: int = 8
    att_heads: int = 8
    max_obj_num: int = 10
    decoder_intermediate: bool = True
    long_term_gap: int = 5

    def __post_init__(self) -> None:
        expected = tuple(self.swin.stage_dim(i) for i in self.swin.out_indices)
        if len(self.encoder_dims) != 4 or self.encoder_dims[:3] != expected:
            raise ConfigError(f"encoder_dims {self.encoder_dims} do not fit the encoder {expected}")
        if self.encoder_dims[3] != self.encoder_dims[2]:
            raise ConfigError("encoder_dims: the last two entries (both /16) must be equal")
        if self.long_term_gap < 1:
            raise ConfigError("long_term_gap must be >= 1")

    @property
    def num_ids(self) -> int:
        return self.max_obj_num + 1

    @classmethod
    def from_upstream(cls, cfg: Mapping[str, Any]) -> Self:
        """From upstream config names (``MODEL_*``, ``TEST_LONG_TERM_MEM_GAP``) plus ``swin``:
        the encoder's constructor arguments (the layout of ``keys_full.json``'s ``config``)."""
        vos = cfg.get("MODEL_VOS", cls.vos)
        if vos != cls.vos:
            raise ConfigError(f"config is for MODEL_VOS={vos!r}, not {cls.vos!r}")
        if cfg.get("MODEL_ALIGN_CORNERS", False):
            raise ConfigError("MODEL_ALIGN_CORNERS=True is not supported (Swin models use False)")
        if "swin" not in cfg:
            raise ConfigError("config needs 'swin': the encoder's constructor arguments")
        defaults = cls()
        values = {
            "swin": SwinConfig.from_upstream(cfg["swin"]),
            "encoder_dims": tuple(int(d) for d in cfg["MODEL_ENCODER_DIM"]),
            "d_model": int(cfg.get("MODEL_ENCODER_EMBEDDING_DIM", defaults.d_model)),
            "num_layers": int(cfg.get("MODEL_LSTT_NUM", defaults.num_layers)),
            "self_heads": int(cfg.get("MODEL_SELF_HEADS", defaults.self_heads)),
            "att_heads": int(cfg.get("MODEL_ATT_HEADS", defaults.att_heads)),
            "max_obj_num": int(cfg.get("MODEL_MAX_OBJ_NUM", defaults.max_obj_num)),
            "decoder_intermediate": bool(
                cfg.get("MODEL_DECODER_INTERMEDIATE_LSTT", defaults.decoder_intermediate)
            ),
            "long_term_gap": int(cfg.get("TEST_LONG_TERM_MEM_GAP", defaults.long_term_gap)),
        }
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for run.json."""
        out: dict[str, Any] = {"vos": self.vos}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.__dict__ if isinstance(value, SwinConfig) else value
        return out


class PropagationNet(nn.Module):
    """Base of AOT and DeAOT: everything but the propagation layers (``self.LSTT``).

    Subclasses set ``self.LSTT`` (a module with ``layers``, each having ``fuse(entry, id_emb)``,
    and ``forward(x, long, short, id_emb, pos, size) -> (embs, entries)``) and ``decoder_in_dim``.
    """

    def __init__(self, *, config: NetConfig, lstt: nn.Module, decoder_in_dim: int) -> None:
        super().__init__()
        self.config = config
        self.encoder = SwinTransformer2D(config=config.swin)
        self.encoder_projector = nn.Conv2d(config.encoder_dims[-1], config.d_model, 1)
        self.LSTT = lstt
        self.decoder = FPNDecoder(
            in_dim=decoder_in_dim,
            out_dim=config.num_ids,
            hidden=config.d_model,
            shortcut_dims=config.encoder_dims,
            concat_inputs=config.decoder_intermediate,
        )
        self.patch_wise_id_bank = nn.Conv2d(
            config.num_ids, config.d_model, kernel_size=ID_STRIDE, stride=ID_STRIDE
        )

    def encode(self, image: Tensor) -> list[Tensor]:
        """image [N, 3, H, W] normalised -> 4 maps: /4, /8, /16 and the projected /16 map."""
        maps = self.encoder(image)
        return [*maps, self.encoder_projector(maps[-1])]

    def id_embedding(self, labels: Tensor) -> Tensor:
        """labels: int [N, 1, H, W] with ids 0..max_obj_num -> [h·w, N, d_model] at /16."""
        one_hot = one_hot_ids(labels, self.config.num_ids)
        return self.embed_ids(one_hot.to(self.patch_wise_id_bank.weight.dtype))

    def embed_ids(self, one_hot: Tensor) -> Tensor:
        """one_hot: [N, num_ids, H, W] (soft or permuted ids allowed) -> [h·w, N, d_model] at /16."""
        return map_to_seq(self.patch_wise_id_bank(one_hot))

    def position_embedding(self, feature: Tensor) -> Tensor:
        """[h·w, N, d_model] for a /16 map [N, C, h, w]."""
        n, _, h, w = feature.shape
        pos = sine_position_embedding(h, w, self.config.d_model, feature.device)
        return pos.expand(-1, n, -1)

    def propagate(
        self,
        features: Sequence[Tensor],
        long_memory: Entries | None,
        short_memory: Entries | None,
        id_emb: Tensor | None,
        pos: Tensor,
    ) -> tuple[list[Tensor], Entries]:
        """Run the propagation layers on a frame.

        With ``id_emb`` (a reference frame) the frame attends to itself and the returned entries
        are its memory (fused with the identities); without, it attends to the memories and the
        entries are raw, to be fused by ``memorize`` once its label is known.
        Returns (per-layer outputs [h·w, N, C] for the decoder, entries).
        """
        size = tuple(features[-1].shape[-2:])
        return self.LSTT(map_to_seq(features[-1]), long_memory, short_memory, id_emb, pos, size)

    def memorize(self, entries: Entries, id_emb: Tensor) -> Entries:
        """Fuse the raw entries of a propagated frame with the identities of its label."""
        return [layer.fuse(e, id_emb) for layer, e in zip(self.LSTT.layers, entries, strict=True)]

    def decode(self, embs: Sequence[Tensor], features: Sequence[Tensor]) -> Tensor:
        """Id logits [N, num_ids, H/4, W/4] from the layer outputs and the encoder maps."""
        n, _, h, w = features[-1].shape
        maps = [e.reshape(h, w, n, -1).permute(2, 3, 0, 1) for e in embs]
        return self.decoder([features[-1], *maps], list(features))


def one_hot_ids(labels: Tensor, num_ids: int) -> Tensor:
    """labels: int [N, 1, H, W] -> bool [N, num_ids, H, W]; ids outside 0..num_ids-1 (the ignore
    label 255) give all-False."""
    ids = torch.arange(num_ids, device=labels.device).view(1, -1, 1, 1)
    return labels == ids


def upsample_logits(logits: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear (align_corners False) resize of [N, C, h, w] logits to ``size``, in float32."""
    return F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)
