"""Device keys (admin): create (the secret is shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from api.auth import caller, requires
from api.decode import body_operation, decode_json
from api.schemas import DeviceCreate, DeviceKeyCreated
from service import devices
from service.devices import DeviceKey
from service.infra import db

_decode_create = msgspec.json.Decoder(DeviceCreate)


class DevicesController(Controller):
    path = "/v1/devices"
    tags = ["devices"]  # noqa: RUF012 (Controller declares it as a plain attribute)

    @post(
        operation_id="createDeviceKey",
        opt=requires("admin"),
        status_code=201,
        operation_class=body_operation(DeviceCreate, "The device and the sites it may post to"),
    )
    async def create(
        self, request: Request[Any, Any, Any], pool: NamedDependency[asyncpg.Pool]
    ) -> Response[DeviceKeyCreated]:
        data = await decode_json(request, _decode_create)
        async with db.connection(pool) as conn:
            device, secret = await devices.create_device_key(
                conn,
                device_id=data.device_id,
                site_ids=data.site_ids,
                name=data.name,
                actor=caller(request),
            )
        return Response(
            DeviceKeyCreated(key=secret, device=device),
            status_code=201,
            headers={"Location": f"/v1/devices/{device.id}"},
        )

    @get(operation_id="listDeviceKeys", opt=requires("admin"))
    async def list_keys(
        self,
        pool: NamedDependency[asyncpg.Pool],
        site_id: Annotated[int | None, QueryParameter(ge=1, le=db.MAX_ID)] = None,
    ) -> list[DeviceKey]:
        async with db.connection(pool) as conn:
            return await devices.list_device_keys(conn, site_id=site_id)

    @delete("/{key_id:int}", operation_id="revokeDeviceKey", status_code=200, opt=requires("admin"))
    async def revoke(
        self,
        key_id: FromPath[int],
        request: Request[Any, Any, Any],
        pool: NamedDependency[asyncpg.Pool],
    ) -> DeviceKey:
        async with db.connection(pool) as conn:
            return await devices.revoke_device_key(
                conn,
                key_id=key_id,
                actor=caller(request),
                cache=request.app.state.ingest.keys,
            )
