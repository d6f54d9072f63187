"""The VOD emulator's "redrawn" output: the input video with a visible filter and a corner label.

Uses an ffmpeg binary (``imageio-ffmpeg``'s, from the ``tools`` extra, else ``ffmpeg`` on PATH); none
is needed to import this module. The label is drawn from a built-in 5x7 bitmap font, so no font
file is needed either. The output is what a browser ``<video>`` plays: H.264 (yuv420p), AAC audio
when the input has audio, ``moov`` atom first (faststart).

Work is capped: at most ``MAX_SECONDS`` of the input (VOD takes inputs under 90 s), at most 1280
pixels wide, ``-preset veryfast``, and a wall-clock ``timeout``.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Optional, Tuple

__all__ = ["LABEL", "MAX_SECONDS", "MediaError", "find_ffmpeg", "label_pgm", "make_redrawn", "probe"]

LABEL = "REDRAWN BY LOCAL EMULATOR"
MAX_SECONDS = 90          # VOD: inputs shorter than 90 s
MAX_WIDTH = 1280
TIMEOUT_S = 120.0
#: hue turned and saturated, luma posterized: plainly not the input, and cheap (about 1.5 s per 10 s of 720p)
VIDEO_FILTER = r"hue=h=150:s=1.8,lutyuv=y=bitand(val\,224)"

# 5x7 glyphs, one string of 7 rows of 5 columns each ("#" = on)
_GLYPHS = {
    " ": "....." * 7,
    "A": ".###.#...##...#######...##...##...#",
    "B": "####.#...##...#####.#...##...#####.",
    "C": ".###.#...##....#....#....#...#.###.",
    "D": "####.#...##...##...##...##...#####.",
    "E": "######....#....####.#....#....#####",
    "L": "#....#....#....#....#....#....#####",
    "M": "#...###.###.#.##...##...##...##...#",
    "N": "#...###..##.#.##..###...##...##...#",
    "O": ".###.#...##...##...##...##...#.###.",
    "R": "####.#...##...#####.#.#..#..#.#...#",
    "T": "#####..#....#....#....#....#....#..",
    "U": "#...##...##...##...##...##...#.###.",
    "W": "#...##...##...##.#.##.#.##.#.#.#.#.",
    "Y": "#...##...#.#.#...#....#....#....#..",
}
_STREAM_RE = re.compile(r"Stream #\d+:\d+.*?: Video: .*?(\d{2,5})x(\d{2,5})")
_DURATION_RE = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")


class MediaError(Exception):
    """The input is not a video ffmpeg can read, or making the output failed."""


def find_ffmpeg() -> Optional[str]:
    """The ffmpeg binary to use: imageio-ffmpeg's, else ``ffmpeg`` on PATH; None when there is none."""
    try:
        import imageio_ffmpeg  # type: ignore[import-not-found,import-untyped]

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception:  # not installed, or no binary for this platform
        return shutil.which("ffmpeg")


def label_pgm(text: str = LABEL, scale: int = 2) -> bytes:
    """``text`` in white on a black box, as a binary PGM image (each font pixel ``scale`` pixels wide)."""
    chars = [c if c in _GLYPHS else " " for c in text.upper()]
    cols = 1 + 6 * len(chars)  # 1 column of margin, then 5 per glyph plus 1 between
    rows = 9
    pixels = bytearray(cols * rows)
    for i, char in enumerate(chars):
        glyph = _GLYPHS[char]
        for y in range(7):
            for x in range(5):
                if glyph[y * 5 + x] == "#":
                    pixels[(y + 1) * cols + 1 + 6 * i + x] = 255
    width, height = cols * scale, rows * scale
    out = bytearray()
    for y in range(height):
        row = pixels[(y // scale) * cols:(y // scale + 1) * cols]
        out += bytes(v for v in row for _ in range(scale))
    return b"P5 %d %d 255\n" % (width, height) + bytes(out)


def probe(ffmpeg: str, source: Path, timeout: float = 20.0) -> Tuple[int, int, float]:
    """(width, height, seconds) of the first video stream; MediaError when there is none."""
    try:
        run = subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-i", str(source)], capture_output=True,
                             timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MediaError(f"ffmpeg could not probe the input ({type(exc).__name__})") from None
    text = run.stderr.decode("utf-8", "replace")
    stream = _STREAM_RE.search(text)
    if stream is None:
        raise MediaError("the input has no video stream ffmpeg can read")
    duration = _DURATION_RE.search(text)
    seconds = 0.0
    if duration:
        hours, minutes, secs = duration.groups()
        seconds = int(hours) * 3600 + int(minutes) * 60 + float(secs)
    return int(stream.group(1)), int(stream.group(2)), seconds


def make_redrawn(source: Path, target: Path, *, ffmpeg: str, timeout: float = TIMEOUT_S,
                 label: str = LABEL) -> Path:
    """Write the redrawn version of ``source`` to ``target`` (an MP4); MediaError if it cannot be made."""
    width, height, _ = probe(ffmpeg, source)
    shown_width = min(width, MAX_WIDTH)
    scale = max(1, (shown_width * height // max(width, 1)) // 240)  # 720p: 3 (a 27 px tall label)
    margin = max(4, height * shown_width // max(width, 1) // 45)
    label_path = target.with_suffix(".label.pgm")
    label_path.write_bytes(label_pgm(label, scale))
    graph = (f"[0:v]scale=w='trunc(min(iw\\,{MAX_WIDTH})/2)*2':h=-2,{VIDEO_FILTER}[v];"
             f"[v][1:v]overlay={margin}:{margin},format=yuv420p[out]")
    command = [ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y", "-t", str(MAX_SECONDS), "-i", str(source),
               "-i", str(label_path), "-filter_complex", graph, "-map", "[out]", "-map", "0:a:0?",
               "-c:v", "libx264", "-preset", "veryfast", "-crf", "26", "-pix_fmt", "yuv420p",
               "-profile:v", "high", "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart",
               "-f", "mp4", str(target)]
    try:
        run = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise MediaError(f"making the output took more than {timeout:g} s") from None
    except OSError as exc:
        raise MediaError(f"ffmpeg could not run ({type(exc).__name__})") from None
    finally:
        label_path.unlink(missing_ok=True)
    if run.returncode != 0 or not target.is_file() or target.stat().st_size == 0:
        last = run.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        raise MediaError(f"ffmpeg failed ({run.returncode}): {last[0][:200]}")
    return target
