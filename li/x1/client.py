"""The ADMF's X1 client: X1 requests over HTTPS with a client certificate (asyncio).

Each call builds one ``X1Request`` (header with a fresh transaction ID and the current time),
POSTs it and decodes the ``X1Response``. An ``ErrorResponse`` or a top-level error raises
:class:`X1ErrorResponse` carrying the X1 error code, so callers see e.g. 2010 "XID already
exists" as an exception with ``.code == 2010``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import uuid
from collections.abc import Callable

from ims.errors import ImsError
from li.x1.model import (
    DestinationDetails,
    MessageType,
    TaskDetails,
    TopLevelError,
    X1Header,
    X1Request,
    X1Response,
)
from li.x1.server import HttpError, read_http_message
from li.x1.xml import decode_response, encode_request, x1_timestamp


class X1ErrorResponse(ImsError):
    """The NE refused the request; ``code`` is the X1 error code."""

    def __init__(self, code: int, description: str, *, top_level: bool = False) -> None:
        super().__init__(f"X1 error {code}: {description}")
        self.code = code
        self.description = description
        self.top_level = top_level


class X1TransportError(ImsError):
    """No usable HTTP answer from the NE."""


class X1Client:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl: ssl.SSLContext | None,
        admf_id: str,
        ne_id: str,
        server_hostname: str | None = None,
        path: str = "/X1/NE",
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host, self.port = host, port
        self.ssl = ssl
        self.admf_id, self.ne_id = admf_id, ne_id
        self.server_hostname = server_hostname
        self.path = path
        self.timeout = timeout
        self.clock = clock

    def header(self) -> X1Header:
        return X1Header(
            admf_id=self.admf_id,
            ne_id=self.ne_id,
            timestamp=x1_timestamp(self.clock()),
            transaction_id=uuid.uuid4(),
        )

    async def post(self, body: bytes) -> bytes:
        """POST one document and return the response body (HTTP 200 only)."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                self.host,
                self.port,
                ssl=self.ssl,
                server_hostname=(self.server_hostname or self.host) if self.ssl else None,
            ),
            self.timeout,
        )
        try:
            head = (
                f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                "Content-Type: text/xml\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("ascii") + body)
            await writer.drain()
            try:
                msg = await read_http_message(reader, timeout=self.timeout)
            except HttpError as exc:
                raise X1TransportError(f"bad HTTP response: {exc.reason}") from exc
            if msg is None:
                raise X1TransportError("connection closed without a response")
            start, _, payload = msg
            parts = start.split(maxsplit=2)
            if len(parts) < 2 or parts[1] != "200":
                raise X1TransportError(f"HTTP status {start!r}")
            return payload
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def request(self, req: X1Request) -> X1Response:
        result = decode_response(await self.post(encode_request(req)))
        if isinstance(result, TopLevelError):
            raise X1ErrorResponse(result.error.code, result.error.description, top_level=True)
        if len(result) != 1:
            raise X1TransportError(f"expected one response message, got {len(result)}")
        resp = result[0]
        if resp.error is not None:
            raise X1ErrorResponse(resp.error.code, resp.error.description)
        return resp

    async def _simple(self, mtype: MessageType, **kw: object) -> X1Response:
        return await self.request(X1Request(message_type=mtype, header=self.header(), **kw))  # type: ignore[arg-type]

    async def activate_task(self, task: TaskDetails) -> X1Response:
        return await self._simple(MessageType.ACTIVATE_TASK, task=task)

    async def modify_task(self, task: TaskDetails) -> X1Response:
        return await self._simple(MessageType.MODIFY_TASK, task=task)

    async def deactivate_task(self, xid: uuid.UUID) -> X1Response:
        return await self._simple(MessageType.DEACTIVATE_TASK, xid=xid)

    async def deactivate_all_tasks(self) -> X1Response:
        return await self._simple(MessageType.DEACTIVATE_ALL_TASKS)

    async def get_task_details(self, xid: uuid.UUID) -> X1Response:
        return await self._simple(MessageType.GET_TASK_DETAILS, xid=xid)

    async def create_destination(self, dest: DestinationDetails) -> X1Response:
        return await self._simple(MessageType.CREATE_DESTINATION, destination=dest)

    async def modify_destination(self, dest: DestinationDetails) -> X1Response:
        return await self._simple(MessageType.MODIFY_DESTINATION, destination=dest)

    async def remove_destination(self, did: uuid.UUID) -> X1Response:
        return await self._simple(MessageType.REMOVE_DESTINATION, did=did)

    async def remove_all_destinations(self) -> X1Response:
        return await self._simple(MessageType.REMOVE_ALL_DESTINATIONS)

    async def get_destination_details(self, did: uuid.UUID) -> X1Response:
        return await self._simple(MessageType.GET_DESTINATION_DETAILS, did=did)

    async def get_all_details(self) -> X1Response:
        return await self._simple(MessageType.GET_ALL_DETAILS)

    async def list_all_details(self) -> X1Response:
        return await self._simple(MessageType.LIST_ALL_DETAILS)

    async def ping(self) -> X1Response:
        return await self._simple(MessageType.PING)

    async def keepalive(self) -> X1Response:
        return await self._simple(MessageType.KEEPALIVE)
