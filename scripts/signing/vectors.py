"""Signs a table of requests with the official Python SDK's SDK-HMAC-SHA256 signer
(huaweicloudsdkcore) and prints what it produced as JSON: the vectors the gateway's own
signer (src/cloud/signing.rs) is tested against. Run through scripts/signing-vectors."""

import json

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

ACCESS_KEY = "HPUAEXAMPLEACCESSKEY"
SECRET_KEY = "secretKeyExample/With+Symbols=0123456789"
SDK_DATE = "20261202T101530Z"
PROJECT = "0a1b2c3d4e5f40718293a4b5c6d7e8f9"
TARGET = "40dc4c5729f14aad893e2dcd5baf6a15in07"
HOST = "gaussdb.cn-north-4.myhuaweicloud.com"
CREATE_BODY = json.dumps(
    {
        "name": "sr-analytics-01",
        "engine": {"type": "star-rocks", "version": "3.3"},
        "tags_info": {"sys_tags": [{"key": "_sys_enterprise_project_id", "value": "0"}]},
    },
    separators=(",", ":"),
)

CASES = [
    {
        "name": "list the HTAP instances of a target",
        "method": "GET",
        "path": f"/v3/{PROJECT}/instances/{TARGET}/htap",
        "query": [],
        "headers": {"X-Project-Id": PROJECT},
        "body": "",
    },
    {
        "name": "flavors with a query",
        "method": "GET",
        "path": f"/v3/{PROJECT}/htap/flavors/star-rocks",
        "query": [["availability_zone_mode", "single"]],
        "headers": {"X-Project-Id": PROJECT, "X-Language": "en-us"},
        "body": "",
    },
    {
        "name": "create with a JSON body",
        "method": "POST",
        "path": f"/v3/{PROJECT}/instances/{TARGET}/starrocks",
        "query": [],
        "headers": {
            "Content-Type": "application/json",
            "X-Project-Id": PROJECT,
            "X-Request-Id": "7f0c2a9e-5b1d-4c3e-9a8f-2d6b1e0c4f37",
        },
        "body": CREATE_BODY,
    },
    {
        "name": "delete one instance",
        "method": "DELETE",
        "path": f"/v3/{PROJECT}/instances/{TARGET}/starrocks/2f9a7e1c3b5d4e6f8a0b1c2d3e4f5a6bin17",
        "query": [],
        "headers": {"X-Project-Id": PROJECT},
        "body": "",
    },
    {
        "name": "query keys and values sorted, repeated keys kept",
        "method": "GET",
        "path": f"/v3/{PROJECT}/jobs",
        "query": [["id", "b-job"], ["limit", "10"], ["id", "a-job"], ["Offset", "0"]],
        "headers": {},
        "body": "",
    },
    {
        "name": "query values with reserved and non-ASCII characters",
        "method": "GET",
        "path": f"/v3/{PROJECT}/instances",
        "query": [["name", "sr analytics/01+x~y"], ["tag", "Zürich=1&2"], ["empty", ""]],
        "headers": {},
        "body": "",
    },
    {
        "name": "path segments percent-encoded the SDK's way",
        "method": "GET",
        "path": "/v3/a b/Zürich/x~y_z.-(1)",
        "query": [],
        "headers": {},
        "body": "",
    },
    {
        "name": "the root path",
        "method": "GET",
        "path": "/",
        "query": [],
        "headers": {},
        "body": "",
    },
    {
        "name": "header values trimmed, names with underscores unsigned",
        "method": "GET",
        "path": f"/v3/{PROJECT}/instances/{TARGET}/htap",
        "query": [],
        "headers": {"X-Language": "  en-us  ", "X_Custom_Thing": "left out", "X-Request-Id": "r-1"},
        "body": "",
    },
    {
        "name": "a non-JSON body is not hashed",
        "method": "PUT",
        "path": "/v3/upload",
        "query": [],
        "headers": {"Content-Type": "application/octet-stream"},
        "body": "raw bytes",
    },
    {
        "name": "a host with a port",
        "host": "127.0.0.1:18443",
        "method": "POST",
        "path": f"/v3/{PROJECT}/instances/{TARGET}/starrocks",
        "query": [],
        "headers": {"Content-Type": "application/json;charset=UTF-8"},
        "body": "{}",
    },
]


def sign(case):
    headers = dict(case["headers"])
    headers["X-Sdk-Date"] = SDK_DATE
    request = SdkRequest(
        method=case["method"],
        schema="https",
        host=case.get("host", HOST),
        resource_path=case["path"],
        query_params=[tuple(pair) for pair in case["query"]],
        header_params=headers,
        body=case["body"],
    )
    signed = Signer(BasicCredentials(ACCESS_KEY, SECRET_KEY)).sign(request)
    return {
        **case,
        "host": case.get("host", HOST),
        "authorization": signed.header_params["Authorization"],
        "uri": signed.uri,
    }


print(
    json.dumps(
        {
            "generator": "huaweicloudsdkcore Signer (SDK-HMAC-SHA256); scripts/signing-vectors",
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "sdk_date": SDK_DATE,
            "cases": [sign(case) for case in CASES],
        },
        indent=2,
        ensure_ascii=False,
    )
)
