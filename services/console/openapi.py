"""The console's OpenAPI document, built from the route table and the `schemas` models it answers with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from schemas.console import ApiError

_REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Parameter:
    name: str
    where: str  # "query", "path" or "header"
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


@dataclass(frozen=True)
class Operation:
    """One documented route: its path, what it answers with (a model, or a media type for a non-JSON body)."""

    path: str
    summary: str
    model: type[BaseModel] | None = None
    media_type: str = "application/json"
    parameters: tuple[Parameter, ...] = ()
    errors: tuple[int, ...] = ()
    secured: bool = True


def openapi_document(operations: list[Operation], *, secured: bool) -> dict[str, Any]:
    """OpenAPI 3.1: every operation (GET) with its parameters and its responses' schemas (`ApiError` for errors);
    with `secured`, the guarded ones require the bearer token."""
    models = {op.model for op in operations if op.model is not None} | {ApiError}
    _, top = models_json_schema([(model, "serialization") for model in sorted(models, key=lambda m: m.__name__)],
                                ref_template=_REF)
    paths: dict[str, Any] = {}
    for op in operations:
        if op.model is not None:
            ok: dict[str, Any] = {"schema": {"$ref": _REF.format(model=op.model.__name__)}}
        else:
            ok = {"schema": {"type": "string"}}
        responses: dict[str, Any] = {"200": {"description": op.summary, "content": {op.media_type: ok}}}
        errors = (*op.errors, 401) if secured and op.secured else op.errors
        for status in errors:
            responses[str(status)] = {"description": _REASONS.get(status, "error"),
                                      "content": {"application/json": {"schema": {"$ref": _REF.format(
                                          model=ApiError.__name__)}}}}
        operation: dict[str, Any] = {
            "summary": op.summary,
            "operationId": op.path.strip("/").replace("/", "_").replace("{", "").replace("}", "") or "page",
            "parameters": [{"name": p.name, "in": p.where, "description": p.description, "required": p.required,
                            "schema": p.schema} for p in op.parameters],
            "responses": responses,
        }
        if secured and op.secured:
            operation["security"] = [{"bearer": []}]
        paths.setdefault(op.path, {})["get"] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "livedesk console", "version": "1",
                 "description": "Incident state, feed health, deliveries and change events of livedesk."},
        "paths": paths,
        "components": {"schemas": top.get("$defs", {}),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


_REASONS = {400: "a query or path parameter is wrong (named in `parameter`)", 401: "the bearer token is missing or "
            "wrong", 404: "no such resource", 503: "Redis does not answer"}
