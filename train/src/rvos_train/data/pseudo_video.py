"""An image made into a clip: the image itself plus num_frames - 1 randomly warped copies, shuffled.

Upstream: github:RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85da0719b32ea45253f8b3077defea6,
soc_test/datasets/coco/ref2seq.py and MUTR/datasets/refexp2seq.py (ModulatedDetection.__getitem__,
apply_random_sequence_shuffle) with soc_test/datasets/coco/image_to_seq_augmenter.py (from
SeqFormer / STEm-Seg, imgaug), configured in both as: brightness added in [-40, 40]; a perspective
transform of scale 0.08; an affine map with rotation in [-20, 20] degrees, translation in [-0.1,
0.1] of each side, no scaling, bilinear, black outside; then, with probability 0.25, a motion blur
of kernel 9 or 11 (imgaug's hue/saturation argument is accepted but unused upstream).
Known differences: imgaug is replaced by OpenCV with the same distributions, not the same pixels:
the perspective and affine maps are composed into one warp (imgaug warps twice, and warps its
perspective output to a rectangle of the jittered quad's size before resizing it back), and
imgaug's seeding from the wall clock is replaced by the caller's generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class SeqAugmenter:
    """The random warp of one pseudo-frame.

    Attributes:
        brightness: added to every channel, uniform in [-brightness, brightness].
        perspective: sigma of the corners' inward jitter, as a fraction of the side (imgaug's scale).
        rotation: degrees, uniform in [-rotation, rotation] about the centre.
        translate: fraction of each side, uniform in [-translate, translate], per axis.
        blur_p: probability of a motion blur; its kernel size is drawn from ``blur_kernels``, its
            angle uniform in [0, 360) and its direction uniform in [-1, 1].
    """

    brightness: float = 40.0
    perspective: float = 0.08
    rotation: float = 20.0
    translate: float = 0.1
    blur_p: float = 0.25
    blur_kernels: tuple[int, ...] = (9, 11)

    def __call__(
        self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """image uint8 [H, W, 3] and mask bool [H, W] -> their warped copies (same shapes)."""
        height, width = mask.shape
        shift = round(rng.uniform(-self.brightness, self.brightness))
        shifted = np.clip(image.astype(np.int16) + shift, 0, 255).astype(np.uint8)
        warp = self._affine(height, width, rng) @ self._perspective(height, width, rng)
        frame = _warp(shifted, warp, cv2.INTER_LINEAR)
        moved = _warp(mask.astype(np.uint8), warp, cv2.INTER_NEAREST) > 0
        if rng.random() < self.blur_p:
            size = int(self.blur_kernels[rng.integers(len(self.blur_kernels))])
            kernel = motion_kernel(size, rng.uniform(0, 360), rng.uniform(-1, 1))
            frame = cv2.filter2D(frame, -1, kernel)
        return frame, moved

    def _perspective(self, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
        """[3, 3]: the quad of corners jittered inward by |N(0, perspective)| mapped onto the frame."""
        corners = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
        quad = np.abs(corners - np.abs(rng.normal(0, self.perspective, (4, 2))))
        scale = np.array([width, height], np.float32)
        return cv2.getPerspectiveTransform((quad * scale).astype(np.float32), corners * scale)

    def _affine(self, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
        """[3, 3]: rotation about the centre, then translation."""
        angle = rng.uniform(-self.rotation, self.rotation)
        shift = rng.uniform(-self.translate, self.translate, 2) * (width, height)
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
        matrix[:, 2] += shift
        return np.vstack([matrix, [0.0, 0.0, 1.0]])


def _warp(image: np.ndarray, matrix: np.ndarray, interpolation: int) -> np.ndarray:
    height, width = image.shape[:2]
    return cv2.warpPerspective(
        image, matrix, (width, height), flags=interpolation, borderMode=cv2.BORDER_CONSTANT
    )


def motion_kernel(size: int, angle: float, direction: float) -> np.ndarray:
    """float32 [size, size], sums to 1: imgaug's MotionBlur kernel, a vertical line whose weights
    run linearly from (direction + 1) / 2 to (1 - direction) / 2, rotated by ``angle`` degrees."""
    kernel = np.zeros((size, size), np.float32)
    start = (direction + 1) / 2
    kernel[:, size // 2] = np.linspace(start, 1 - start, size)
    centre = ((size - 1) / 2, (size - 1) / 2)
    rotated = cv2.warpAffine(kernel, cv2.getRotationMatrix2D(centre, angle, 1.0), (size, size))
    return rotated / rotated.sum()


def pseudo_clip(
    image: np.ndarray,
    mask: np.ndarray,
    num_frames: int,
    augmenter: SeqAugmenter,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [T, H, W, 3] and bool [T, H, W]: the image and num_frames - 1 warped copies, in a
    random order (the original is one of the frames, anywhere)."""
    frames, masks = [image], [mask]
    for _ in range(num_frames - 1):
        frame, moved = augmenter(image, mask, rng)
        frames.append(frame)
        masks.append(moved)
    order = rng.permutation(num_frames)
    return np.stack(frames)[order], np.stack(masks)[order]
