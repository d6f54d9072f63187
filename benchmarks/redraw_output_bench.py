"""What the VOD emulator's redrawn output costs: ffmpeg's filter + label + H.264 encode of a clip, alone
and end to end (task created -> input read from the COS emulator through a presigned URL -> output made).

    python benchmarks/redraw_output_bench.py              # 10 s and 90 s 720p clips, 3 runs each
    python benchmarks/redraw_output_bench.py --smoke      # a 2 s 320x240 clip, 1 run, writes nothing

Clips are ffmpeg test patterns (testsrc2, lots of motion and detail) with a 440 Hz tone: a harder
encode than most phone clips. Table on stdout and in benchmarks/redraw-output-results.md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from _support import machine_lines, markdown_table  # noqa: E402
from media import make_clip  # noqa: E402
from qcloud_cos import CosConfig, CosS3Client  # noqa: E402
from tencentcloud.common.common_client import CommonClient  # noqa: E402
from tencentcloud.common.credential import Credential  # noqa: E402
from tencentcloud.common.profile.client_profile import ClientProfile  # noqa: E402
from tencentcloud.common.profile.http_profile import HttpProfile  # noqa: E402

from redraw.tools.cos_emulator import CosEmulator  # noqa: E402
from redraw.tools.emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, VodEmulator  # noqa: E402
from redraw.tools.redraw_output import find_ffmpeg, make_redrawn  # noqa: E402
from redraw.tools.vod_input import InputRoutes  # noqa: E402

BUCKET = "media-1250000000"
HOST = f"{BUCKET}.cos.ap-guangzhou.myqcloud.com"
OUT = ROOT / "benchmarks" / "redraw-output-results.md"


def end_to_end(clip: Path, folder: Path) -> float:
    """Seconds from CreateAigcVideoRedrawTask's answer to the task's output made (its work done)."""
    with CosEmulator(root=folder / "cos") as cos:
        bucket = cos.add_bucket(BUCKET)
        (bucket / "uploads").mkdir(exist_ok=True)
        (bucket / "uploads" / clip.name).write_bytes(clip.read_bytes())
        url = CosS3Client(CosConfig(Domain=HOST, Scheme="https", SecretId=DEFAULT_SECRET_ID,
                                    SecretKey=DEFAULT_SECRET_KEY, Region="ap-guangzhou")).get_presigned_url(
            Bucket=BUCKET, Key=f"uploads/{clip.name}", Method="GET", Expired=600)
        with VodEmulator(task_duration=0.0, input_routes=InputRoutes().add_cos(cos)) as vod:
            client = CommonClient("vod", "2018-07-17", Credential(DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY),
                                  "ap-guangzhou", ClientProfile(httpProfile=HttpProfile(
                                      endpoint=vod.endpoint, protocol="http")))
            answer = client.call_json("CreateAigcVideoRedrawTask", {
                "SubAppId": 221073, "FileInfo": {"Type": "Url", "Url": url}})["Response"]
            started = time.perf_counter()
            job = vod.tasks[answer["TaskId"]]["work"]
            assert job.wait(600), "the task's work did not end"
            took = time.perf_counter() - started
            assert job.error is None and job.output is not None, (job.error, job.note)
            return took


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="one tiny clip, one run, no file written")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    ffmpeg = find_ffmpeg()
    if not ffmpeg:
        print("no ffmpeg: pip install imageio-ffmpeg (requirements-dev.txt)", file=sys.stderr)
        return 2
    cases = [(2.0, "320x240")] if args.smoke else [(10.0, "1280x720"), (90.0, "1280x720")]
    runs = 1 if args.smoke else args.runs
    rows = []
    with tempfile.TemporaryDirectory(prefix="redraw-output-bench-") as tmp:
        folder = Path(tmp)
        for seconds, size in cases:
            clip = make_clip(folder / f"clip-{seconds:g}s-{size}.mp4", ffmpeg, seconds=seconds, size=size)
            made = []
            for i in range(runs):
                out = folder / f"out-{i}.mp4"
                started = time.perf_counter()
                make_redrawn(clip, out, ffmpeg=ffmpeg)
                made.append(time.perf_counter() - started)
            whole = [end_to_end(clip, folder / f"e2e-{i}") for i in range(runs)]
            rows.append([f"{seconds:g} s {size}", f"{clip.stat().st_size / 1e6:.1f} MB",
                         f"{statistics.median(made):.2f} s", f"{max(made):.2f} s",
                         f"{statistics.median(whole):.2f} s", f"{out.stat().st_size / 1e6:.1f} MB",
                         f"{seconds / statistics.median(made):.1f}x"])
    table = markdown_table(["clip", "input", "make output (median)", "(max)", "created -> output ready (median)",
                            "output", "speed (clip s / wall s)"], rows)
    text = "\n".join(["# The VOD emulator's redrawn output", "",
                      f"`python benchmarks/redraw_output_bench.py` ({runs} runs per clip; ffmpeg {Path(ffmpeg).name}; "
                      f"{os.cpu_count()} cores).", "", *machine_lines(), "", table, ""])
    print(text)
    if not args.smoke:
        OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
