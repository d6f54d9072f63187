"""The VOD adapter: the official SDK's CommonClient behind a small interface.

``VodClient.call`` signs and sends one request through
``tencentcloud-sdk-python-common`` and returns the ``Response`` object, or
raises ``UpstreamError`` carrying the VOD error code and the policy decision.
One client (and its keep-alive connection pool) lives per warm container.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Optional, Protocol

from . import policy
from .config import Settings
from .errors import UpstreamError
from .logs import redact

SERVICE, VERSION = "vod", "2018-07-17"
CREATE_ACTION = "CreateAigcVideoRedrawTask"
DESCRIBE_ACTION = "DescribeTaskDetail"

# The SDK logs whole requests (Authorization and X-TC-Token included) at DEBUG:
# never let those records reach a handler, whatever the runtime configures.
_sdk_logger = logging.getLogger("tencentcloud_sdk_common")
_sdk_logger.setLevel(logging.WARNING)
_sdk_logger.propagate = False


class VodApi(Protocol):
    """What the core needs from VOD."""

    def call(self, action: str, params: dict, timeout: float) -> dict: ...


class _DeadlineConnection:
    """Stands in for the SDK's ProxyConnection so each call has its own timeout.

    The SDK keeps one timeout per client; concurrent calls with different
    remaining budgets need one per thread.
    """

    def __init__(self, inner: Any, pool_size: int) -> None:
        from requests.adapters import HTTPAdapter

        self._inner = inner
        self._local = threading.local()
        self.request_length = 0
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
        inner._session.mount("https://", adapter)
        inner._session.mount("http://", adapter)

    def set_timeout(self, timeout: float) -> None:
        self._local.timeout = timeout

    def request(self, method: str, url: str, body: Any = None, headers: Optional[dict] = None) -> Any:
        inner = self._inner
        headers = headers if headers is not None else {}
        headers.setdefault("Host", inner.request_host)
        return inner._session.request(
            method=method, url=url, data=body, headers=headers, proxies=inner.proxy,
            verify=inner.certification, timeout=getattr(self._local, "timeout", inner.timeout),
            stream=True)


def _transport_code(message: str) -> str:
    lowered = message.lower()
    return policy.TIMEOUT if ("timed out" in lowered or "timeout" in lowered) else policy.TRANSPORT_ERROR


class VodClient:
    """VodApi over the SDK's CommonClient (TC3 signing, keep-alive HTTP)."""

    def __init__(self, settings: Settings) -> None:
        from tencentcloud.common.common_client import CommonClient
        from tencentcloud.common.credential import Credential
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile

        http = HttpProfile(endpoint=settings.endpoint.host, protocol=settings.endpoint.scheme,
                           reqTimeout=settings.http_timeout, keepAlive=True)
        profile = ClientProfile(httpProfile=http, language="en-US", request_client="redraw")
        credential = Credential(settings.secret_id, settings.secret_key, settings.session_token)
        self._client = CommonClient(SERVICE, VERSION, credential, settings.region, profile)
        self._conn = _DeadlineConnection(self._client.request.conn, settings.max_concurrency + 2)
        self._client.request.conn = self._conn

    def call(self, action: str, params: dict, timeout: float) -> dict:
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

        self._conn.set_timeout(max(0.05, timeout))
        try:
            body = self._client.call_json(action, params)
        except TencentCloudSDKException as exc:
            code, message = exc.get_code() or "", str(exc.get_message() or "")
            if code == "ClientNetworkError":
                code = _transport_code(message)
                raise UpstreamError(code, f"could not reach VOD ({code})",
                                    decision=policy.decide(code).kind) from None
            if code == "ServerNetworkError":
                raise UpstreamError(policy.HTTP_ERROR, "VOD answered with an HTTP error status",
                                    decision=policy.RETRY) from None
            raise UpstreamError(code, policy.describe(code), decision=policy.decide(code).kind,
                                request_id=exc.get_request_id(), vod_message=redact(message[:300])) from None
        except (ValueError, TypeError, KeyError):  # json.JSONDecodeError is a ValueError
            raise UpstreamError(policy.MALFORMED_RESPONSE, "VOD answered with a body that is not JSON",
                                decision=policy.RETRY) from None
        except Exception as exc:  # anything else the transport throws
            code = _transport_code(str(exc))
            raise UpstreamError(code, f"could not reach VOD ({code})", decision=policy.RETRY) from None
        return unwrap(body)


def unwrap(body: Any) -> dict:
    """The ``Response`` object of a VOD answer; errors become UpstreamError."""
    response = body.get("Response") if isinstance(body, dict) else None
    if not isinstance(response, dict):
        raise UpstreamError(policy.MALFORMED_RESPONSE, "VOD answer has no Response object",
                            decision=policy.RETRY)
    error = response.get("Error")
    if error is not None:
        code = str(error.get("Code", "")) if isinstance(error, dict) else ""
        message = str(error.get("Message", "")) if isinstance(error, dict) else ""
        request_id = response.get("RequestId")
        code = code or "UnknownError"
        raise UpstreamError(code, policy.describe(code), decision=policy.decide(code).kind,
                            request_id=request_id if isinstance(request_id, str) else None,
                            vod_message=redact(message[:300]))
    return response

