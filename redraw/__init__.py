"""redraw: COS uploads and HTTP requests to Tencent Cloud VOD AIGC video-redraw tasks."""

__version__ = "0.1.0"
