"""The plainer naive baseline (the harder bar): the sample handler with no pydantic models of its own.

As many samples are written: ``VodClient`` and the SDK's models module, ``import pydantic`` and
structlog at the top, the event read as plain dicts, one ``CreateAigcVideoRedrawTask`` per record,
sequentially, a new client per invocation. It pays for the imports but not for building any
pydantic schema, so it starts faster than ``naive_handler.py``.

Environment: as ``naive_handler.py``.
"""
import json
import os

import pydantic  # noqa: F401  (imported at the top, as the samples do)
import structlog
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
    client = make_client()
    sub_app_id = int(os.environ["VOD_SUB_APP_ID"])
    results = []
    for record in event["Records"]:
        obj, bucket = record["cos"]["cosObject"], record["cos"]["cosBucket"]
        req = models.CreateAigcVideoRedrawTaskRequest()
        req.from_json_string(json.dumps({
            "SubAppId": sub_app_id,
            "FileInfo": {"Type": "Url", "Url": obj["url"]},
            "SessionContext": json.dumps({"bucket": bucket["name"], "key": obj["key"]}),
        }))
        try:
            resp = client.CreateAigcVideoRedrawTask(req)
        except TencentCloudSDKException as err:
            log.error("redraw.failed", key=obj["key"], code=err.get_code(), message=err.get_message())
            results.append({"key": obj["key"], "error": err.get_code()})
            continue
        log.info("redraw.submitted", key=obj["key"], task_id=resp.TaskId, request_id=resp.RequestId)
        results.append({"key": obj["key"], "TaskId": resp.TaskId, "RequestId": resp.RequestId})
    return results
