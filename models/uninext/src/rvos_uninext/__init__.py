"""UNINEXT (Yan et al., CVPR 2023) for referring video object segmentation: the RVOS inference path
of the ViT-H and ConvNeXt-L "video joint" models of the ICCV 2023 LSVOS winner."""
