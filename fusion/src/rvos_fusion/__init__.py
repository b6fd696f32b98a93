"""rvos_fusion: key frames, votes, recipes, split-pth import, submission packaging."""
