"""The naive baseline: an SCF COS-trigger handler written the way most samples write it.

Honest, not sabotaged: it validates the event with pydantic, logs one structlog
JSON line per record, builds the credential from the variables SCF injects and
calls ``VodClient.CreateAigcVideoRedrawTask`` through the product SDK
(``tencentcloud-sdk-python-vod``) once per record, sequentially. What it does
not do is what the project adds: lazy imports, no product-SDK models module,
a keep-alive client reused across invocations, SessionId deduplication,
retries, a rate limiter and concurrency.

Environment: TENCENTCLOUD_SECRETID / SECRETKEY / SESSIONTOKEN / REGION (SCF),
VOD_SUB_APP_ID, VOD_ENDPOINT (host, or http://host:port for the emulator).
"""
import json
import os
from typing import List, Optional

import structlog
from pydantic import BaseModel
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.vod.v20180717 import models, vod_client

structlog.configure(processors=[
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.JSONRenderer(),
])
log = structlog.get_logger()


class CosObject(BaseModel):
    key: str
    url: str
    size: Optional[int] = None


class CosBucket(BaseModel):
    name: str
    appid: str
    region: Optional[str] = None


class Cos(BaseModel):
    cosObject: CosObject
    cosBucket: CosBucket


class CosEventInfo(BaseModel):
    eventName: str


class CosRecord(BaseModel):
    cos: Cos
    event: CosEventInfo


class CosEvent(BaseModel):
    Records: List[CosRecord]


def make_client() -> vod_client.VodClient:
    cred = credential.Credential(os.environ["TENCENTCLOUD_SECRETID"],
                                 os.environ["TENCENTCLOUD_SECRETKEY"],
                                 os.environ.get("TENCENTCLOUD_SESSIONTOKEN"))
    endpoint = os.environ.get("VOD_ENDPOINT", "vod.tencentcloudapi.com")
    protocol = "https"
    if "://" in endpoint:
        protocol, endpoint = endpoint.split("://", 1)
    http_profile = HttpProfile(endpoint=endpoint.rstrip("/"), protocol=protocol)
    return vod_client.VodClient(cred, os.environ.get("TENCENTCLOUD_REGION", ""),
                                ClientProfile(httpProfile=http_profile))


def main_handler(event, context):
    cos_event = CosEvent.model_validate(event)
    client = make_client()
    sub_app_id = int(os.environ["VOD_SUB_APP_ID"])
    results = []
    for record in cos_event.Records:
        obj = record.cos.cosObject
        req = models.CreateAigcVideoRedrawTaskRequest()
        req.from_json_string(json.dumps({
            "SubAppId": sub_app_id,
            "FileInfo": {"Type": "Url", "Url": obj.url},
            "SessionContext": json.dumps({"bucket": record.cos.cosBucket.name, "key": obj.key}),
        }))
        try:
            resp = client.CreateAigcVideoRedrawTask(req)
        except TencentCloudSDKException as err:
            log.error("redraw.failed", key=obj.key, code=err.get_code(), message=err.get_message())
            results.append({"key": obj.key, "error": err.get_code()})
            continue
        log.info("redraw.submitted", key=obj.key, task_id=resp.TaskId, request_id=resp.RequestId)
        results.append({"key": obj.key, "TaskId": resp.TaskId, "RequestId": resp.RequestId})
    return results
