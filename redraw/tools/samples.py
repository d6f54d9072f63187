"""Realistic sample events, encoded the way the platform encodes them.

Used by ``redraw generate-event``, the tests and the benchmarks.
"""
from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any, List, Optional
from urllib.parse import quote

DEFAULT_BUCKET = "media-1250000000"
DEFAULT_REGION = "ap-guangzhou"
_SHORT_REGIONS = {"ap-guangzhou": "gz", "ap-shanghai": "sh", "ap-beijing": "bj", "ap-chengdu": "cd",
                  "ap-chongqing": "cq", "ap-nanjing": "nj", "ap-hongkong": "hk", "ap-singapore": "sg"}


def split_bucket(bucket: str) -> tuple:
    """``name-appid`` → ``(name, appid)``."""
    name, _, appid = bucket.rpartition("-")
    if not name or not appid.isdigit():
        raise ValueError("bucket must look like NAME-APPID, e.g. media-1250000000")
    return name, appid


def cos_record(key: str, *, bucket: str = DEFAULT_BUCKET, region: str = DEFAULT_REGION,
               size: int = 7340032, event_name: str = "cos:ObjectCreated:Put",
               request_id: Optional[str] = None, event_time: Optional[int] = None,
               etag: Optional[str] = None, content_type: Optional[str] = None,
               source_ip: str = "203.0.113.7", meta: Optional[dict] = None) -> dict:
    """One COS notification record for an object key (given decoded).

    ``etag``: the object's MD5 in hex; ``meta.ETag`` carries it quoted, as COS's ETag header does.
    ``meta``: the uploader's ``x-cos-meta-*`` headers, carried in ``cosObject.meta`` as COS does.
    """
    name, appid = split_bucket(bucket)
    encoded = quote(key, safe="/-_.~")
    headers = {"x-cos-request-id": request_id or base64.b64encode(uuid.uuid4().bytes).decode(),
            "Content-Type": content_type if content_type is not None else
            "video/mp4" if key.lower().endswith(".mp4") else ""}
    if etag is not None:
        headers["ETag"] = f'"{etag}"'
    headers.update(meta or {})
    return {
        "cos": {
            "cosSchemaVersion": "1.0",
            "cosObject": {
                "url": f"http://{bucket}.cos.{region}.myqcloud.com/{encoded}",
                "meta": headers,
                "vid": "",
                "key": f"/{appid}/{name}/{encoded}",
                "size": size,
            },
            "cosBucket": {"region": _SHORT_REGIONS.get(region, region), "name": name, "appid": appid},
            "cosNotificationId": "unkown",
        },
        "event": {
            "eventName": event_name, "eventVersion": "1.0",
            "eventTime": int(time.time()) if event_time is None else event_time,
            "eventSource": "qcs::cos",
            "requestParameters": {
                "requestSourceIP": source_ip,
                "requestHeaders": {"Authorization": "q-sign-algorithm=sha1&q-ak=AKIDEXAMPLE&q-signature=example"},
            },
            "eventQueue": f"qcs:0:scf:{_SHORT_REGIONS.get(region, region)}:appid/{appid}:default.redraw.$LATEST",
            "reservedInfo": "", "reqid": 179398952,
        },
    }


def cos_event(keys: List[str], **kwargs: Any) -> dict:
    return {"Records": [cos_record(k, **kwargs) for k in keys]}


def timer_event(message: str = "sweep", trigger: str = "redraw-sweep", when: Optional[float] = None) -> dict:
    """The SCF timer trigger's event: the trigger's name, the UTC time it fired, its argument as Message."""
    fired = time.gmtime(time.time() if when is None else when)
    return {"Type": "Timer", "TriggerName": trigger, "Time": time.strftime("%Y-%m-%dT%H:%M:%SZ", fired),
            "Message": message}


def redraw_body(url: str = f"https://{DEFAULT_BUCKET}.cos.{DEFAULT_REGION}.myqcloud.com/uploads/clip.mp4",
                **fields: Any) -> dict:
    return {"FileInfo": {"Type": "Url", "Url": url}, **fields}


def apigw_event(body: Any = None, *, method: str = "POST", path: str = "/redraw",
                base64_body: bool = False, path_parameters: Optional[dict] = None) -> dict:
    """An API Gateway (integrated response) event."""
    raw = body if isinstance(body, str) or body is None else json.dumps(body, ensure_ascii=False)
    if base64_body and raw is not None:
        raw = base64.b64encode(raw.encode("utf-8")).decode("ascii")
    return {
        "requestContext": {"serviceId": "service-f94sy04v", "path": path, "httpMethod": method,
                           "requestId": str(uuid.uuid4()), "identity": {}, "sourceIp": "203.0.113.8",
                           "stage": "release"},
        "headers": {"content-type": "application/json",
                    "host": "service-f94sy04v-1250000000.gz.apigw.tencentcs.com"},
        "body": raw, "pathParameters": path_parameters or {}, "queryStringParameters": {},
        "headerParameters": {}, "stageVariables": {"stage": "release"}, "path": path,
        "queryString": {}, "httpMethod": method, "isBase64Encoded": "true" if base64_body else False,
    }


def url_event(body: Any = None, *, method: str = "POST", path: str = "/redraw",
              region: str = DEFAULT_REGION) -> dict:
    """A function URL event (event function): API-Gateway-like, without requestContext or isBase64Encoded."""
    raw = body if isinstance(body, str) or body is None else json.dumps(body, ensure_ascii=False)
    return {
        "body": raw if raw is not None else "",
        "headers": {"accept": "*/*", "content-type": "application/json",
                    "host": f"1250000000-abcd1234ef.{region}.tencentscf.com",
                    "user-agent": "curl/8.5.0", "x-scf-remote-addr": "203.0.113.9"},
        "httpMethod": method,
        "path": path,
        "queryString": {},
    }


def ckafka_event(bodies: List[Any], *, topic: str = "redraw-requests", partition: int = 0,
                 first_offset: int = 36) -> dict:
    """A CKafka trigger event: one message per body (a dict is sent as JSON text)."""
    return {"Records": [
        {"Ckafka": {"topic": topic, "partition": partition, "offset": first_offset + i,
                    "msgKey": "None",
                    "msgBody": body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)}}
        for i, body in enumerate(bodies)]}
