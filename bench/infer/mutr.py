"""MUTR at competition size: full model (random weights unless --checkpoint), 720p frames (the
model sees 360 x 640 with the default short side 360, the recipe's; pass --option short_side=432
for upstream's Annotations size, 432 x 768), 36 frames per video (the longest Ref-YouTube-VOS valid videos),
2 expressions per video, the whole video in one forward; modes reuse (one backbone pass per
video) and separate (one full forward per expression).

    python bench/infer/mutr.py [--videos 2] [--frames 36] [--device cuda --precision bf16] ...

Any option of run.py given after these figures overrides them (e.g. --frames 8 on a small CPU).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import main

FIGURES = ["--variant", "full", "--frames", "36", "--size", "720x1280", "--expressions", "2"]
FIGURES += ["--modes", "reuse,separate"]

if __name__ == "__main__":
    sys.exit(main(["mutr", *FIGURES, *sys.argv[1:]]))
