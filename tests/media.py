"""Video checks for the tests: make a short clip, read a frame, tell a redrawn output from its input."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Tuple

import pytest

from redraw.tools.redraw_output import find_ffmpeg, label_pgm, probe


def ffmpeg_or_skip() -> str:
    """The ffmpeg the emulator uses; CI must have it (requirements-dev.txt installs imageio-ffmpeg)."""
    found = find_ffmpeg()
    if not found:
        if os.environ.get("CI"):
            pytest.fail("no ffmpeg: requirements-dev.txt installs imageio-ffmpeg, which ships one")
        pytest.skip("NO FFMPEG: install requirements-dev.txt (imageio-ffmpeg ships one)")
    return found


def make_clip(path: Path, ffmpeg: str, *, seconds: float = 1.0, size: str = "160x120", audio: bool = True) -> Path:
    """A test-pattern clip (H.264, AAC) of ``seconds`` at ``size``."""
    command = [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25"]
    if audio:
        command += ["-f", "lavfi", "-i", "sine=frequency=440"]
    command += ["-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    command += ["-c:a", "aac", "-shortest"] if audio else []
    subprocess.run(command + [str(path)], check=True, capture_output=True, timeout=60)
    return path


def frame_gray(path: Path, ffmpeg: str, at: float = 0.5) -> Tuple[int, int, bytes]:
    """(width, height, 8-bit gray pixels) of the frame at ``at`` seconds."""
    width, height, _ = probe(ffmpeg, path)
    run = subprocess.run([ffmpeg, "-v", "error", "-ss", str(at), "-i", str(path), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True, check=True, timeout=30)
    assert len(run.stdout) == width * height
    return width, height, run.stdout


def top_level_boxes(data: bytes) -> list:
    """The MP4's top-level box types, in order."""
    boxes, pos = [], 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8].decode("latin-1")
        if size == 1:
            size = int.from_bytes(data[pos + 8:pos + 16], "big")
        boxes.append(kind)
        if size < 8:
            break
        pos += size
    return boxes


def assert_browser_playable(path: Path, ffmpeg: str) -> None:
    """H.264 in yuv420p, ``moov`` before ``mdat`` (faststart)."""
    text = subprocess.run([ffmpeg, "-hide_banner", "-i", str(path)], capture_output=True,
                          timeout=30).stderr.decode("utf-8", "replace")
    assert re.search(r"Video: h264 .*yuv420p", text), text
    boxes = top_level_boxes(path.read_bytes())
    assert "moov" in boxes and "mdat" in boxes and boxes.index("moov") < boxes.index("mdat"), boxes


def assert_redrawn(output: Path, source: Path, ffmpeg: str) -> None:
    """``output`` is ``source`` redrawn by the emulator: same size and length, a browser-playable MP4,
    the emulator's label in the top-left corner, and pixels that differ from the input's."""
    assert_browser_playable(output, ffmpeg)
    out_w, out_h, out_s = probe(ffmpeg, output)
    in_w, in_h, in_s = probe(ffmpeg, source)
    assert (out_w, out_h) == (in_w, in_h) and abs(out_s - in_s) < 0.2
    width, height, pixels = frame_gray(output, ffmpeg)
    scale = max(1, height // 240)
    margin = max(4, height // 45)
    label = label_pgm(scale=scale)
    header, raster = label.split(b"\n", 1)
    lw, lh = (int(x) for x in header.split()[1:3])
    diffs = [abs(pixels[(margin + y) * width + margin + x] - raster[y * lw + x])
             for y in range(min(lh, height - margin)) for x in range(min(lw, width - margin))]
    assert sum(diffs) / len(diffs) < 40, "the label is not in the corner"
    _, _, before = frame_gray(source, ffmpeg)
    changed = sum(abs(a - b) > 8 for a, b in zip(pixels, before)) / len(pixels)
    assert changed > 0.3, f"only {changed:.0%} of the pixels differ from the input's"
