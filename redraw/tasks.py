"""Task status: DescribeTaskDetail for a redraw task, reduced to what a user needs."""
from __future__ import annotations

import re
from typing import Any, Optional

from .errors import InvalidRequestError, NotFoundError, UpstreamError
from .vod import DESCRIBE_ACTION, VodApi

TASK_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
FINAL_STATES = ("FINISH", "ABORTED")
NOT_FOUND_CODES = ("ResourceNotFound", "InvalidParameterValue.TaskId", "InvalidParameter.TaskId",
                    "InvalidParameterValue.TaskIdNotExist", "FailedOperation.TaskNotExist")


def check_task_id(task_id: Any) -> str:
    if not isinstance(task_id, str) or not TASK_ID_RE.match(task_id):
        raise InvalidRequestError("invalid task id", [{"field": "TaskId",
                                                       "problem": "must be a VOD task id"}])
    return task_id


def _str(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value else None


def summarize(task_id: str, response: dict) -> dict:
    """The fields the CLI and ``GET /tasks/{TaskId}`` show (an output URL without its signature: the
    follow-up delivers the file itself, see docs/followup.md)."""
    detail = response.get("AigcVideoRedrawTask")
    if not isinstance(detail, dict) or not (response.get("TaskType") or detail):
        raise NotFoundError("task not found: no redraw task with this TaskId")
    output = detail.get("Output")
    output = output if isinstance(output, dict) else {}
    file_info = output.get("FileInfo")
    file_info = file_info if isinstance(file_info, dict) else {}
    err_code = detail.get("ErrCode")
    if isinstance(file_info.get("FileUrl"), str):  # a signed temporary URL: its query is the signature
        file_info = {**file_info, "FileUrl": file_info["FileUrl"].split("?", 1)[0].split("#", 1)[0]}
    return {
        "TaskId": _str(detail.get("TaskId")) or task_id,
        "Status": _str(detail.get("Status")) or _str(response.get("Status")) or "UNKNOWN",
        "Progress": detail.get("Progress") if isinstance(detail.get("Progress"), int) else None,
        "ErrCode": err_code if isinstance(err_code, int) else None,
        "Message": _str(detail.get("Message")),
        "Output": {k: file_info.get(k) for k in ("FileId", "FileUrl", "FileType", "StorageMode",
                                                 "MediaName", "ExpireTime") if file_info.get(k)} or None,
        "SessionId": _str(detail.get("SessionId")),
        "SessionContext": _str(detail.get("SessionContext")),
        "CreateTime": _str(response.get("CreateTime")),
        "FinishTime": _str(response.get("FinishTime")),
        "RequestId": _str(response.get("RequestId")),
    }


def describe(api: VodApi, sub_app_id: int, task_id: str, timeout: float) -> dict:
    """Status of one task; NotFoundError for unknown ids, UpstreamError for failures."""
    check_task_id(task_id)
    try:
        response = api.call(DESCRIBE_ACTION, {"TaskId": task_id, "SubAppId": sub_app_id}, timeout)
    except UpstreamError as exc:
        if exc.vod_code.startswith(NOT_FOUND_CODES):
            raise NotFoundError("task not found: no task with this TaskId") from None
        raise
    return summarize(task_id, response)
