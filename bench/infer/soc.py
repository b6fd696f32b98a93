"""SOC at competition size: full model (random weights unless --checkpoint), 720p frames (the
model sees 360 x 640 after RandomResize([360], max_size=640)), 36 frames per video (a typical
Ref-YouTube-VOS validation video), 2 expressions per video, the whole video in one forward.

    python bench/infer/soc.py [--videos 2] [--frames 36] [--device cuda --precision bf16] ...

Any option of run.py given after these figures overrides them (e.g. --frames 8 on a small CPU).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import main

FIGURES = ["--variant", "full", "--frames", "36", "--size", "720x1280", "--expressions", "2"]

if __name__ == "__main__":
    sys.exit(main(["soc", *FIGURES, *sys.argv[1:]]))
