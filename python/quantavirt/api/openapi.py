"""The OpenAPI 3.0 document of the management API (served at /api/v1/openapi.json)."""

from __future__ import annotations

from typing import Any

from quantavirt import __version__

NAME_PARAM = {"name": "name", "in": "path", "required": True,
              "description": "VM name (1-64 characters of [a-zA-Z0-9._-])",
              "schema": {"type": "string"}}
SNAP_PARAM = {"name": "snap", "in": "path", "required": True, "schema": {"type": "string"}}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["error"],
    "properties": {"error": {
        "type": "object", "required": ["code", "name", "message", "detail", "subsystem"],
        "properties": {"code": {"type": "integer", "maximum": -1},
                       "name": {"type": "string"}, "message": {"type": "string"},
                       "detail": {"type": "string"}, "subsystem": {"type": "string"},
                       "path": {"type": "string"}}}}}

RECORD_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["name", "state"],
    "properties": {
        "name": {"type": "string"}, "uuid": {"type": "string", "nullable": True},
        "state": {"type": "string", "enum": ["CREATED", "RUNNING", "PAUSED", "STOPPED",
                                              "CRASHED", "DESTROYED"]},
        "pid": {"type": "integer", "nullable": True},
        "created_at": {"type": "string"}, "updated_at": {"type": "string"},
        "started_at": {"type": "string", "nullable": True},
        "stopped_at": {"type": "string", "nullable": True},
        "last_exit": {"type": "object", "nullable": True},
        "last_error": {"type": "object", "nullable": True}}}


_INT = {"type": "integer", "minimum": 0}
_DISK_COUNTERS = {k: _INT for k in (
    "read_bytes", "write_bytes", "read_ops", "write_ops", "flush_ops", "discard_ops",
    "write_zeroes_ops", "io_errors", "throttled")}
STATS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "state", "pid", "vcpus", "process", "exits", "console", "disk",
                 "network", "acpi", "resets"],
    "properties": {
        "name": {"type": "string"}, "state": {"type": "string"}, "pid": _INT,
        "vcpus": {"type": "array", "items": {"type": "object", "properties": {
            "index": _INT, "tid": _INT, "cpu_seconds": {"type": "number"}}}},
        "process": {"type": "object", "properties": {
            "rss_bytes": _INT, "cpu_seconds": {"type": "number"}}},
        "exits": {"type": "object", "properties": {
            "total": _INT, "by_reason": {"type": "object", "additionalProperties": _INT},
            "pio": _INT, "mmio": _INT, "completed_instructions": _INT}},
        "console": {"type": "object", "properties": {"bytes": _INT, "dropped": _INT}},
        "disk": {"type": "object", "description": "totals over the VM's virtio-blk devices",
                 "properties": {**_DISK_COUNTERS, "devices": {"type": "array", "items": {
                     "type": "object", "properties": {
                         "storage": _INT, "path": {"type": "string"},
                         "readonly": {"type": "boolean"}, **_DISK_COUNTERS}}}}},
        "network": {"type": "object", "properties": {
            "rx_bytes": _INT, "tx_bytes": _INT, "rx_packets": _INT, "tx_packets": _INT,
            "devices": {"type": "array", "items": {"type": "object"}},
            "note": {"type": "string"}}},
        "acpi": {"type": "object", "properties": {
            "pm1_status": _INT, "pm1_enable": _INT,
            "power_button": {"type": "object", "properties": {
                "presses": _INT, "enabled": {"type": "boolean"},
                "pending": {"type": "boolean"}}}}},
        "balloon": {"type": "object", "nullable": True},
        "resets": _INT}}


def _err(desc: str) -> dict[str, Any]:
    return {"description": desc,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _ok(desc: str, ref: str = "Record", status: str = "200") -> dict[str, Any]:
    return {status: {"description": desc, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{ref}"}}}}}


COMMON_ERRORS = {"400": _err("malformed request (QV_ERR_INVAL)"),
                 "401": _err("missing or wrong bearer token"),
                 "404": _err("no such VM (QV_ERR_NOENT)")}
STATE_ERROR = {"409": _err("wrong state for this operation (QV_ERR_STATE) or busy")}
NOT_IMPLEMENTED = {"501": _err("the feature has not landed yet (QV_ERR_NOTSUP)")}
TIMEOUT = {"504": _err("the guest did not power off in time (QV_ERR_TIMEOUT)")}
HOST_UNABLE = {"503": _err("the host cannot run the VM now (QV_ERR_NOVMX, QV_ERR_NODEV, "
                           "QV_ERR_NOMEM)")}
EMPTY_BODY = {"required": False, "content": {"application/json": {"schema": {
    "type": "object"}}}}


def _action(summary: str, extra: dict[str, Any] | None = None,
            body: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"post": {"summary": summary, "parameters": [NAME_PARAM],
                     "requestBody": body or EMPTY_BODY,
                     "responses": {**_ok(summary), **COMMON_ERRORS, **STATE_ERROR,
                                   **(extra or {})}}}


def _not_implemented(summary: str, params: list[dict[str, Any]], method: str = "post"
                     ) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary + " (not implemented yet: 501 QV_ERR_NOTSUP)",
                          "parameters": params,
                          "responses": {**COMMON_ERRORS, **NOT_IMPLEMENTED}}
    if method == "post":
        op["requestBody"] = EMPTY_BODY
    return {method: op}


def document() -> dict[str, Any]:
    stop_body = {"required": False, "content": {"application/json": {"schema": {
        "type": "object", "properties": {
            "force": {"type": "boolean", "default": False},
            "timeout": {"type": "number", "minimum": 0, "maximum": 3600, "default": 30}}}}}}
    snapshots = {**_not_implemented("snapshots of a VM", [NAME_PARAM], "get"),
                 **_not_implemented("take a snapshot", [NAME_PARAM])}
    return {
        "openapi": "3.0.3",
        "info": {"title": "QuantaVirt management API", "version": __version__},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR_SCHEMA, "Record": RECORD_SCHEMA,
                        "VMList": {"type": "object", "required": ["vms"], "properties": {
                            "vms": {"type": "array",
                                    "items": {"$ref": "#/components/schemas/Record"}}}},
                        "Stats": STATS_SCHEMA,
                        "Config": {"type": "object", "description":
                                   "a VM config, schema 1.0 (quantavirt schema export)"}}},
        "paths": {
            "/vms": {
                "get": {"summary": "list VMs",
                        "responses": {**_ok("the VMs", "VMList"),
                                      "401": COMMON_ERRORS["401"]}},
                "post": {"summary": "create a VM (CREATED) from a config",
                         "requestBody": {"required": True, "content": {"application/json": {
                             "schema": {"$ref": "#/components/schemas/Config"}}}},
                         "responses": {**_ok("the new VM's record", status="201"),
                                       "400": _err("invalid config: every problem"),
                                       "401": COMMON_ERRORS["401"],
                                       "409": _err("name in use (QV_ERR_EXIST)")}}},
            "/vms/{name}": {
                "get": {"summary": "a VM's record and effective config",
                        "parameters": [NAME_PARAM],
                        "responses": {**_ok("record and config"), **COMMON_ERRORS}},
                "patch": {"summary": "change a stopped VM's config (JSON merge patch)",
                          "parameters": [NAME_PARAM],
                          "requestBody": {"required": True, "content": {"application/json": {
                              "schema": {"type": "object"}}}},
                          "responses": {**_ok("the record"), **COMMON_ERRORS, **STATE_ERROR}},
                "delete": {"summary": "destroy a VM (any state -> DESTROYED)",
                           "parameters": [NAME_PARAM],
                           "responses": {**_ok("the final record"), **COMMON_ERRORS}}},
            "/vms/{name}/start": _action("start (CREATED/STOPPED/CRASHED -> RUNNING)",
                                         {**HOST_UNABLE, **NOT_IMPLEMENTED}),
            "/vms/{name}/stop": _action("stop: ACPI power button, or teardown with force",
                                        TIMEOUT, stop_body),
            "/vms/{name}/pause": _action("pause (RUNNING -> PAUSED)"),
            "/vms/{name}/resume": _action("resume (PAUSED -> RUNNING)"),
            "/vms/{name}/reset": _action("reset (the VM restarts from its config)"),
            "/vms/{name}/migrate": _not_implemented("live migration", [NAME_PARAM]),
            "/vms/{name}/clone": _not_implemented("clone a VM", [NAME_PARAM]),
            "/vms/{name}/attest": _not_implemented("signed attestation report", [NAME_PARAM]),
            "/vms/{name}/stats": {"get": {
                "summary": "per-vCPU CPU time, exits by reason, RSS, disk and network I/O",
                "parameters": [NAME_PARAM],
                "responses": {**_ok("statistics", "Stats"), **COMMON_ERRORS, **STATE_ERROR}}},
            "/vms/{name}/snapshots": snapshots,
            "/vms/{name}/snapshots/{snap}/restore":
                _not_implemented("restore a snapshot", [NAME_PARAM, SNAP_PARAM]),
            "/vms/{name}/snapshots/{snap}":
                _not_implemented("delete a snapshot", [NAME_PARAM, SNAP_PARAM], "delete"),
            "/openapi.json": {"get": {"summary": "this document",
                                      "responses": {"200": {"description": "OpenAPI 3.0"},
                                                    "401": COMMON_ERRORS["401"]}}},
        },
    }
