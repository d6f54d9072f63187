"""SCF entry point: ``handler.main_handler`` (see serverless.yml)."""
from redraw.app import handle


def main_handler(event, context):
    """Turn a COS upload, an API Gateway request or a direct invocation into a redraw task."""
    return handle(event, context)
