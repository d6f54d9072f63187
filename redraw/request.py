"""The CreateAigcVideoRedrawTask request, as pydantic models (HTTP and direct paths only).

Field names are the API's own. ``RedrawRequest`` is what API and direct
callers send (SubAppId optional, taken from configuration); ``to_params``
gives the exact JSON parameters for VOD.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal, Optional
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import InvalidRequestError
from .validation import field_errors

_STRICT = ConfigDict(extra="forbid", strict=True, hide_input_in_errors=True)
_HOST = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$|^[0-9a-f:.]+$")
_INT64_MAX = 2 ** 63 - 1  # the API's Integer
_ISO_8601 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")


def check_http_url(url: str) -> str:
    """http(s) with a host and no credentials; raises ValueError without echoing the URL."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise ValueError("must be a valid http or https URL") from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise ValueError("must be an http or https URL with a host")
    if not _HOST.match(host):
        raise ValueError("must name its host plainly (letters, digits, dots, hyphens or an IP address)")
    if parts.username or parts.password:
        raise ValueError("must not carry user credentials")
    if any(c.isspace() for c in url):
        raise ValueError("must not contain whitespace (percent-encode it)")
    return url


class InputFileInfo(BaseModel):
    """AigcVideoRedrawTaskInputFileInfo: a VOD FileId or a URL VOD can fetch."""

    model_config = _STRICT
    Type: Literal["File", "Url"]
    FileId: Optional[str] = Field(None, min_length=1, max_length=1024)
    Url: Optional[str] = Field(None, min_length=1, max_length=8192)

    @field_validator("Url")
    @classmethod
    def _url(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else check_http_url(value)

    @model_validator(mode="after")
    def _needs_source(self) -> "InputFileInfo":
        """Type decides which source VOD uses: that one is required, the other must be absent."""
        if self.Type == "File" and not self.FileId:
            raise ValueError("FileId: required when Type is File")
        if self.Type == "Url" and not self.Url:
            raise ValueError("Url: required when Type is Url")
        if self.Type == "File" and self.Url is not None:
            raise ValueError("Url: must not be set when Type is File")
        if self.Type == "Url" and self.FileId is not None:
            raise ValueError("FileId: must not be set when Type is Url")
        return self


class RedrawTaskInfo(BaseModel):
    """AigcVideoRedrawTaskInfo."""

    model_config = _STRICT
    Style: Optional[str] = Field(None, max_length=50)


class RedrawOutputConfig(BaseModel):
    """AigcVideoRedrawOutputConfig."""

    model_config = _STRICT
    StorageMode: Optional[Literal["Permanent", "Temporary"]] = None
    MediaName: Optional[str] = Field(None, max_length=64)
    ClassId: Optional[int] = Field(None, ge=0, le=_INT64_MAX)
    ExpireTime: Optional[str] = Field(None, max_length=40)

    @field_validator("ExpireTime")
    @classmethod
    def _iso(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return value
        if not _ISO_8601.match(value):
            raise ValueError("must be an ISO 8601 time such as 2025-12-28T00:35:00Z")
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("must be a valid ISO 8601 date and time") from None
        return value


class RedrawRequest(BaseModel):
    """CreateAigcVideoRedrawTaskRequest, as received from API or direct callers."""

    model_config = _STRICT
    SubAppId: Optional[int] = Field(None, ge=1, le=_INT64_MAX)
    FileInfo: InputFileInfo
    TaskInfo: Optional[RedrawTaskInfo] = None
    OutputConfig: Optional[RedrawOutputConfig] = None
    SessionId: Optional[str] = Field(None, max_length=50)
    SessionContext: Optional[str] = Field(None, max_length=1000)
    TasksPriority: Optional[int] = Field(None, ge=-10, le=10)
    ExtInfo: Optional[str] = None
    #: redraw's own field, never sent to VOD: a URL told of this task's end (docs/webhooks.md)
    Webhook: Optional[str] = Field(None, min_length=1, max_length=2048)

    def to_params(self, sub_app_id: int) -> dict:
        """The VOD request parameters, with the SubAppId decided by the caller (``Webhook`` is not one)."""
        params = self.model_dump(exclude_none=True, exclude={"Webhook"})
        params["SubAppId"] = sub_app_id
        for name in ("TaskInfo", "OutputConfig"):
            if params.get(name) == {}:
                del params[name]
        return params


def parse_request(data: Any) -> RedrawRequest:
    """Validate request fields; raise InvalidRequestError naming each bad field."""
    if not isinstance(data, dict):
        raise InvalidRequestError("the request must be a JSON object",
                                  [{"field": "(body)", "problem": "must be a JSON object"}])
    try:
        return RedrawRequest.model_validate(data)
    except ValidationError as exc:
        fields = field_errors(exc)
        names = ", ".join(sorted({f["field"] for f in fields}))
        raise InvalidRequestError(f"invalid request fields: {names}", fields) from None
