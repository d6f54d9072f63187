"""Event models, one per source, and the envelope that tells them apart.

COS records are validated one by one (a bad record fails alone, its
neighbours still go through); API Gateway and direct events are validated
whole. Models ignore fields they do not use: platforms add fields.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import InvalidEventError
from .request import field_errors

COS, APIGW, DIRECT = "cos", "apigw", "direct"

_LENIENT = ConfigDict(extra="ignore", hide_input_in_errors=True)


class CosObject(BaseModel):
    model_config = _LENIENT
    key: str = Field(min_length=1, max_length=16384)
    url: Optional[str] = Field(None, max_length=16384)
    size: Optional[int] = Field(None, ge=0)
    vid: Optional[str] = None
    meta: Dict[str, Any] = Field(default_factory=dict)

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:  # older events carry the size as a string
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
        if isinstance(value, bool):
            raise ValueError("must be an integer")
        return value

    @field_validator("meta", mode="before")
    @classmethod
    def _meta(cls, value: Any) -> Any:
        return {} if value is None else value


class CosBucket(BaseModel):
    model_config = _LENIENT
    name: str = Field(min_length=1, max_length=256)
    appid: Optional[Union[str, int]] = None
    region: Optional[str] = None


class CosInfo(BaseModel):
    model_config = _LENIENT
    cosObject: CosObject
    cosBucket: CosBucket


class CosEventInfo(BaseModel):
    model_config = _LENIENT
    eventName: str = Field(min_length=1, max_length=128)
    eventTime: Optional[Union[int, float, str]] = None


class CosRecord(BaseModel):
    """One record of a COS notification."""

    model_config = _LENIENT
    cos: CosInfo
    event: CosEventInfo

    @property
    def bucket(self) -> str:
        """The bucket's full name, ``name-appid``."""
        name, appid = self.cos.cosBucket.name, self.cos.cosBucket.appid
        if appid in (None, "") or name.endswith(f"-{appid}"):
            return name
        return f"{name}-{appid}"


def parse_cos_record(raw: Any) -> CosRecord:
    """Validate one record; raise InvalidEventError naming the bad fields."""
    if not isinstance(raw, dict):
        raise InvalidEventError("record must be a JSON object")
    try:
        return CosRecord.model_validate(raw)
    except ValidationError as exc:
        names = ", ".join(f"{f['field']} ({f['problem']})" for f in field_errors(exc))
        raise InvalidEventError(f"invalid COS record: {names}") from None


def record_key_hint(raw: Any) -> Optional[str]:
    """Best-effort object key of a raw record, for results of records that failed validation."""
    try:
        key = raw["cos"]["cosObject"]["key"]
        return key if isinstance(key, str) else None
    except (KeyError, TypeError, IndexError):
        return None


def detect(event: Any) -> str:
    """Tell which source sent the event: COS, APIGW or DIRECT; raise on anything else."""
    if not isinstance(event, dict):
        kind = "null" if event is None else type(event).__name__
        raise InvalidEventError(f"event must be a JSON object, got {kind}")
    if "Records" in event:
        records = event["Records"]
        if not isinstance(records, list):
            raise InvalidEventError("event.Records must be a list of COS records")
        if not records:
            raise InvalidEventError("event.Records is empty")
        return COS
    if "requestContext" in event and "httpMethod" in event:
        return APIGW
    if not event:
        raise InvalidEventError("event is empty: expected a COS notification, an API Gateway "
                                "request or redraw request fields")
    return DIRECT

