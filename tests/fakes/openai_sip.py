"""A local fake of OpenAI's Realtime SIP side: signed webhooks, the calls REST API, the sideband.

What it plays is the OpenAI project a SIP trunk sends calls to:

- :meth:`FakeOpenAISip.ring` announces an incoming call: a ``realtime.call.incoming`` event
  (checked against the SDK's own ``RealtimeCallIncomingWebhookEvent``) POSTed to the app's
  webhook URL, signed with the Standard Webhooks scheme the SDK's ``client.webhooks.unwrap``
  verifies (``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256
  of "id.timestamp.body">`` keyed by the ``whsec_`` secret).
- ``POST /v1/realtime/calls/{call_id}/accept|reject|refer|hangup`` (served by uvicorn) with a
  Bearer key; bodies are validated with the SDK's param types (``CallAcceptParams`` etc.) plus
  the session model's unknown-field walk, so a misspelled field is a violation, as in
  :mod:`tests.fakes.realtime_server`. Accepting twice, or a call that is not ringing, is a 4xx.
- The sideband ``/v1/realtime?call_id=…`` (the existing Realtime fake's websocket server, each
  client event validated with ``RealtimeClientEvent``). Unlike a Media Streams session, a SIP
  call's session outlives its sideband: a dropped sideband reconnects to the same conversation.
  The audio is between the carrier and OpenAI, so the sideband gets no audio deltas; it gets
  ``output_audio_buffer.started`` / ``stopped`` when the caller starts / stops hearing a
  response (``stopped`` after the audio's real duration times ``audio_pace``), and
  ``output_audio_buffer.cleared`` on barge-in or the client's ``output_audio_buffer.clear``.
- The caller is simulated: after the model has finished speaking, the next :class:`UserTurn` of
  the script is "said" (speech started/stopped, committed, transcribed, answered by server
  VAD), :class:`CallerPresses` sends a DTMF digit, :class:`CallerHangsUp` ends the call. When the
  call ends (hang-up by either side, or a REFER that OpenAI carried out) the sideband is closed
  with code 1000.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import uvicorn
from openai.types.realtime import RealtimeSessionCreateRequest
from openai.types.realtime.call_accept_params import CallAcceptParams
from openai.types.realtime.call_refer_params import CallReferParams
from openai.types.realtime.call_reject_params import CallRejectParams
from openai.types.webhooks import RealtimeCallIncomingWebhookEvent
from pydantic import TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as WsRequest
from websockets.http11 import Response as WsResponse

from tests.fakes.realtime_script import Step, UserTurn
from tests.fakes.realtime_server import (
    FakeRealtimeServer,
    FakeRealtimeSession,
    ResponseRecord,
    _deep_merge,
)
from tests.fakes.realtime_validation import unknown_fields, validate_server_event

__all__ = [
    "CallerHangsUp",
    "CallerPresses",
    "Delivery",
    "FakeOpenAISip",
    "FakeSipCall",
    "sign_delivery",
]

CALL_STATES = ("ringing", "accepted", "rejected", "ended")
_ACCEPT = TypeAdapter(CallAcceptParams)
_REFER = TypeAdapter(CallReferParams)
_REJECT = TypeAdapter(CallRejectParams)
_INCOMING = TypeAdapter(RealtimeCallIncomingWebhookEvent)


@dataclass(frozen=True, slots=True)
class CallerPresses:
    """The caller presses a key (``input_audio_buffer.dtmf_event_received``)."""

    digit: str


@dataclass(frozen=True, slots=True)
class CallerHangsUp:
    """The caller hangs up: the call ends and the sideband closes."""


@dataclass(frozen=True)
class Delivery:
    """One signed webhook delivery, kept so a test can send it again (a replay)."""

    body: bytes
    headers: dict[str, str]


def sign_delivery(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks signature header value (what OpenAI sends)."""
    key = (
        base64.b64decode(secret.removeprefix("whsec_"))
        if secret.startswith("whsec_")
        else (secret.encode())
    )
    signed = f"{webhook_id}.{timestamp}.{body.decode()}".encode()
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


@dataclass
class FakeSipCall:
    """One call at the fake project: its state, what the app did with it, its session."""

    call_id: str
    sip_headers: list[tuple[str, str]]
    state: str = "ringing"
    accept_config: dict[str, Any] | None = None
    reject_status: int | None = None
    refer_targets: list[str] = field(default_factory=list)
    hangups: int = 0
    hung_up_by: str | None = None
    accepted_at: float | None = None
    ended_at: float | None = None
    session: FakeSipSession | None = None
    sidebands: int = 0
    audio_stopped_at: list[float] = field(default_factory=list)


class FakeSipSession(FakeRealtimeSession):
    """The OpenAI session of one SIP call; sideband websockets attach to it and detach."""

    def __init__(self, server: FakeSipRealtime, call: FakeSipCall, config: dict[str, Any]) -> None:
        super().__init__(server, _Detached(), str(config.get("model", "gpt-realtime")))  # type: ignore[arg-type]
        self.sip_server = server
        self.call = call
        self.config = _deep_merge(self.config, config)
        self._ws: ServerConnection | None = None  # type: ignore[assignment]
        self._playing: str | None = None  # the response the caller is hearing
        self._playout_until = 0.0
        self._stop_task: asyncio.Task[None] | None = None
        self._caller_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ the sideband

    async def attach(self, ws: ServerConnection) -> None:
        self._ws = ws
        self.dropped = False
        self.call.sidebands += 1
        await self.send({"type": "session.created", "session": self.config})
        try:
            async for raw in ws:
                if isinstance(raw, bytes):
                    self._violation("binary frame received; the API expects JSON text frames")
                    continue
                self.received_count += 1
                await self._on_raw(raw)
                if self._drop_at_event is not None and self.received_count >= self._drop_at_event:
                    self._drop_at_event = None
                    self.drop()
                    return
        except ConnectionClosed:
            pass
        finally:
            if self._ws is ws:
                self._ws = None

    async def send(self, event: dict[str, Any]) -> None:
        """Validated and recorded always; sent only while a sideband is attached."""
        if self._ws is None:
            event = {"event_id": self._id("event"), **event}
            if self._server.keep_history:
                self.server_events.append(event)
            self._after_send(event)
            return
        await super().send(event)
        self._after_send(event)

    async def _send_unstamped(self, event: dict[str, Any]) -> None:
        """An event whose model has no ``event_id`` (the DTMF event): validated, sent as is."""
        problem = validate_server_event(event)
        if problem is not None:
            self._violation(f"fake sent an invalid {event['type']}: {problem.message}")
        if self._server.keep_history:
            self.server_events.append(event)
        if self._ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._ws.send(json.dumps(event))

    def _after_send(self, event: dict[str, Any]) -> None:
        if event["type"] == "response.done" and self.call.state != "ended":
            response = event["response"]
            if self._playing == response["id"]:  # what was generated is played out
                self._stop_task = asyncio.create_task(self._stop_after_playout(response["id"]))
            elif self._playing is None:
                self._schedule_caller()

    async def end_call(self, by: str) -> None:
        """The call is over: stop everything and close the sideband normally."""
        if self.call.state == "ended":
            return
        self.call.state = "ended"
        self.call.hung_up_by = by
        self.call.ended_at = time.monotonic()
        for task in (self._stop_task, self._caller_task, self._active_task):
            if task is not None and not task.done() and task is not asyncio.current_task():
                task.cancel()
        self.closed = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close(1000, "call ended")

    # ------------------------------------------------------- audio the caller hears

    async def _speak(
        self, record: ResponseRecord, output_index: int, transcript: str, audio_ms: int
    ) -> dict[str, Any]:
        """Like the Media Streams fake, minus the audio deltas (they go to the carrier)."""
        item_id = self._id("item")
        record.item_ids.append(item_id)
        self._item_audio_bytes[item_id] = audio_ms * 8
        record.audio_bytes += audio_ms * 8
        if record.out_of_band:
            self._out_of_band_items.add(item_id)
        indexed = {
            "response_id": record.response_id,
            "item_id": item_id,
            "output_index": output_index,
            "content_index": 0,
        }
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        head = {"response_id": record.response_id, "output_index": output_index}
        await self.send({"type": "response.output_item.added", **head, "item": item})
        await self.send(
            {"type": "conversation.item.added", "item": item, "previous_item_id": self._last_item}
        )
        self._last_item = item_id
        part = {"type": "audio", "transcript": ""}
        await self.send({"type": "response.content_part.added", **indexed, "part": part})
        if self._playing != record.response_id:
            self._playing = record.response_id
            await self.send(
                {"type": "output_audio_buffer.started", "response_id": record.response_id}
            )
        now = time.monotonic()
        self._playout_until = (
            max(now, self._playout_until) + audio_ms / 1000 * self._server.audio_pace
        )
        await self.send(
            {"type": "response.output_audio_transcript.delta", **indexed, "delta": transcript}
        )
        await asyncio.sleep(0)
        status = "incomplete" if self._cancelled() else "completed"
        await self.send({"type": "response.output_audio.done", **indexed})
        await self.send(
            {"type": "response.output_audio_transcript.done", **indexed, "transcript": transcript}
        )
        done_part = {"type": "audio", "transcript": transcript}
        await self.send({"type": "response.content_part.done", **indexed, "part": done_part})
        done_item = {
            **item,
            "status": status,
            "content": [{"type": "output_audio", "transcript": transcript}],
        }
        await self.send({"type": "response.output_item.done", **head, "item": done_item})
        await self.send({"type": "conversation.item.done", "item": done_item})
        return done_item

    async def _stop_after_playout(self, response_id: str) -> None:
        await asyncio.sleep(max(0.0, self._playout_until - time.monotonic()))
        if self._playing != response_id:
            return
        self._playing = None
        self.call.audio_stopped_at.append(time.monotonic())
        await self.send({"type": "output_audio_buffer.stopped", "response_id": response_id})
        self._schedule_caller()

    async def _clear_playout(self) -> None:
        if self._playing is None:
            return
        response_id, self._playing = self._playing, None
        if self._stop_task is not None and self._stop_task is not asyncio.current_task():
            self._stop_task.cancel()
        self._playout_until = time.monotonic()
        await self.send({"type": "output_audio_buffer.cleared", "response_id": response_id})

    async def _speech_started(self, audio_start_ms: int) -> None:
        await super()._speech_started(audio_start_ms)
        await self._clear_playout()  # the caller talks over the model: OpenAI stops the audio

    async def _on_output_audio_buffer_clear(self, event: Any) -> None:
        await self._clear_playout()  # WebRTC/SIP only, and this is SIP

    # --------------------------------------------------------------- the caller

    def _schedule_caller(self) -> None:
        step = self._peek()
        if not isinstance(step, UserTurn | CallerPresses | CallerHangsUp):
            return
        if self._caller_task is not None and not self._caller_task.done():
            return
        self._caller_task = asyncio.create_task(self._caller_step())

    async def _caller_step(self) -> None:
        await asyncio.sleep(self.sip_server.caller_pause)
        if self._active is not None or self._playing is not None or self.call.state == "ended":
            return
        step = self._peek()
        if isinstance(step, UserTurn):
            self._ms += 400
            await self._speech_started(self._ms)
            self._ms += 1200
            await self._speech_stopped(self._ms)  # commit, transcript (next UserTurn), response
        elif isinstance(step, CallerPresses):
            self._cursor += 1
            await self._send_unstamped(
                {
                    "type": "input_audio_buffer.dtmf_event_received",
                    "event": step.digit,
                    "received_at": int(time.time()),
                }
            )
            self._schedule_caller()
        elif isinstance(step, CallerHangsUp):
            self._cursor += 1
            await self.end_call("caller")

    _ms = 0


class _Detached:
    """Stands in for a websocket before the first sideband attaches."""

    request = None


class FakeSipRealtime(FakeRealtimeServer):
    """The sideband side: ``/v1/realtime?call_id=…`` attaches to that call's session."""

    def __init__(self, fake: FakeOpenAISip, script: Sequence[Step | CallerPresses | CallerHangsUp],
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(script, **kwargs)  # type: ignore[arg-type]
        self.fake = fake
        self.caller_pause = 0.02
        self.max_sidebands: int | None = None  # refuse a call's sidebands beyond this many

    def _process_request(
        self, connection: ServerConnection, request: WsRequest
    ) -> WsResponse | None:
        refused = super()._process_request(connection, request)
        if refused is not None:
            return refused
        call_id = parse_qs(urlsplit(request.path).query).get("call_id", [""])[0]
        call = self.fake.calls.get(call_id)
        if (
            self.max_sidebands is not None
            and call is not None
            and call.sidebands >= self.max_sidebands
        ):
            self.rejected.append(f"sideband for {call_id!r} (refused)")
            return connection.respond(503, "Service unavailable\n")
        if call is None or call.state != "accepted" or call.session is None:
            self.rejected.append(f"sideband for {call_id!r} ({call.state if call else 'unknown'})")
            return connection.respond(404, "No such active call\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        call_id = parse_qs(urlsplit(ws.request.path).query)["call_id"][0]
        call = self.fake.calls[call_id]
        assert call.session is not None
        session = call.session
        if self._drop is not None and self._drop.remaining > 0:
            self._drop.remaining -= 1
            session.arm_drop(self._drop.events, self._drop.seconds)
        await session.attach(ws)


class FakeOpenAISip:
    """The fake project: REST on one port, the sideband on another, webhooks to the app."""

    def __init__(
        self,
        script: Sequence[Step | CallerPresses | CallerHangsUp] = (),
        *,
        api_key: str = "test",
        audio_pace: float = 0.02,
        keep_history: bool = True,
        validate_outgoing: bool = True,
    ) -> None:
        self.api_key = api_key
        self.webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.realtime = FakeSipRealtime(
            self,
            script,
            api_key=api_key,
            audio_pace=audio_pace,
            keep_history=keep_history,
            validate_outgoing=validate_outgoing,
        )
        self.calls: dict[str, FakeSipCall] = {}
        self.violations_rest: list[str] = []
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.deliveries: list[Delivery] = []
        self.refuse_accept: int | None = None  # answer accept with this HTTP status
        self._ids = itertools.count(1)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.rest_port = 0
        self.accept_latencies: list[float] = []
        self._http: httpx.AsyncClient | None = None
        self._rung_at: dict[str, float] = {}

    # ---------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> FakeOpenAISip:
        await self.realtime.start()
        app = Starlette(
            routes=[Route("/v1/realtime/calls/{call_id}/{action}", self._rest, methods=["POST"])]
        )
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.rest_port = sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()
        for call in self.calls.values():
            if call.session is not None:
                await call.session.end_call("test-end")
        if self._server is not None:
            self._server.should_exit = True
            assert self._task is not None
            await asyncio.wait_for(self._task, 10)
        await self.realtime.stop()

    @property
    def base_url(self) -> str:
        """``OPENAI_BASE_URL`` for the app (REST)."""
        return f"http://127.0.0.1:{self.rest_port}/v1"

    @property
    def websocket_base_url(self) -> str:
        """The sideband's base (``websocket_base_url`` of the SDK client)."""
        return self.realtime.websocket_base_url

    @property
    def violations(self) -> list[str]:
        return self.violations_rest + self.realtime.violations

    def call(self, call_id: str) -> FakeSipCall:
        return self.calls[call_id]

    # ----------------------------------------------------------------- webhooks

    def incoming_event(self, call_id: str, sip_headers: list[tuple[str, str]]) -> bytes:
        event = {
            "id": f"evt_{next(self._ids):06d}{secrets.token_hex(4)}",
            "object": "event",
            "created_at": int(time.time()),
            "type": "realtime.call.incoming",
            "data": {
                "call_id": call_id,
                "sip_headers": [{"name": n, "value": v} for n, v in sip_headers],
            },
        }
        model = _INCOMING.validate_python(event)
        extras = list(unknown_fields(model))
        assert not extras, f"the fake built an invalid webhook event: {extras}"
        return json.dumps(event).encode()

    def signed(
        self, body: bytes, *, timestamp: int | None = None, secret: str | None = None
    ) -> Delivery:
        webhook_id = f"wh_{secrets.token_hex(12)}"
        stamp = int(time.time()) if timestamp is None else timestamp
        headers = {
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign_delivery(
                secret or self.webhook_secret, webhook_id, stamp, body
            ),
        }
        return Delivery(body, headers)

    async def deliver(self, url: str, delivery: Delivery) -> httpx.Response:
        """POST one delivery (one HTTP client for the fake's life, as a webhook sender keeps)."""
        self.deliveries.append(delivery)
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=30)
        call_id = json.loads(delivery.body)["data"]["call_id"]
        self._rung_at.setdefault(call_id, time.perf_counter())
        return await self._http.post(url, content=delivery.body, headers=delivery.headers)

    async def ring(
        self,
        url: str,
        sip_headers: list[tuple[str, str]],
        *,
        call_id: str | None = None,
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> tuple[str, httpx.Response]:
        """A call arrives at the project: the call exists, the webhook is POSTed to ``url``."""
        call_id = call_id or f"rtc_{secrets.token_hex(16)}"
        self.calls.setdefault(call_id, FakeSipCall(call_id, list(sip_headers)))
        body = self.incoming_event(call_id, sip_headers)
        response = await self.deliver(url, self.signed(body, timestamp=timestamp, secret=secret))
        return call_id, response

    async def caller_hangs_up(self, call_id: str) -> None:
        session = self.calls[call_id].session
        if session is not None:
            await session.end_call("caller")

    # --------------------------------------------------------------------- REST

    async def _rest(self, request: Request) -> Response:
        call_id = request.path_params["call_id"]
        action = request.path_params["action"]
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "invalid_api_key", "Incorrect API key provided.")
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            self.violations_rest.append(f"{action}: body is not JSON")
            return _error(400, "invalid_json", "We could not parse the JSON body of your request.")
        self.requests.append((action, call_id, body))
        call = self.calls.get(call_id)
        if call is None:
            return _error(404, "call_not_found", f"Call {call_id} not found.")
        handler = getattr(self, f"_{action}", None)
        if handler is None:
            return _error(404, "not_found", f"Unknown action {action}.")
        problem = _validate(action, body)
        if problem is not None:
            self.violations_rest.append(f"{action}: {problem}")
            return _error(400, "invalid_request_error", problem)
        return await handler(call, body)  # type: ignore[no-any-return]

    async def _accept(self, call: FakeSipCall, body: dict[str, Any]) -> Response:
        if self.refuse_accept is not None:
            return _error(self.refuse_accept, "server_error", "The server had an error.")
        if call.state != "ringing":
            return _error(409, "call_not_ringing", f"Call is {call.state}, not ringing.")
        call.state = "accepted"
        call.accept_config = body
        call.accepted_at = time.monotonic()
        if call.call_id in self._rung_at:
            self.accept_latencies.append(time.perf_counter() - self._rung_at.pop(call.call_id))
        call.session = FakeSipSession(self.realtime, call, body)
        self.realtime.sessions.append(call.session)
        return Response(status_code=200)

    async def _reject(self, call: FakeSipCall, body: dict[str, Any]) -> Response:
        if call.state != "ringing":
            return _error(409, "call_not_ringing", f"Call is {call.state}, not ringing.")
        call.state = "rejected"
        call.reject_status = int(body.get("status_code", 603))
        return Response(status_code=200)

    async def _refer(self, call: FakeSipCall, body: dict[str, Any]) -> Response:
        if call.state != "accepted":
            return _error(409, "call_not_active", f"Call is {call.state}.")
        call.refer_targets.append(body["target_uri"])
        if call.session is not None:  # the carrier took the REFER: the call leaves OpenAI
            asyncio.get_running_loop().call_later(
                0.05,
                lambda: asyncio.ensure_future(call.session.end_call("refer")),  # type: ignore[union-attr]
            )
        return Response(status_code=200)

    async def _hangup(self, call: FakeSipCall, body: dict[str, Any]) -> Response:
        if call.state not in ("accepted", "ended"):
            return _error(409, "call_not_active", f"Call is {call.state}.")
        call.hangups += 1
        if call.session is not None:
            await call.session.end_call("app")
        return Response(status_code=200)


def _validate(action: str, body: dict[str, Any]) -> str | None:
    """Check a control body with the SDK's param types (and, for accept, the session model)."""
    try:
        if action == "accept":
            _ACCEPT.validate_python(body)
            model = RealtimeSessionCreateRequest.model_validate(body)
            extras = list(unknown_fields(model))
            if extras:
                return f"Unknown parameter: '{extras[0]}'."
            if body.get("type") != "realtime":
                return "type must be 'realtime'"
        elif action == "refer":
            _REFER.validate_python(body)
            if set(body) - {"target_uri"} or not str(body.get("target_uri", "")).startswith(
                ("tel:", "sip:", "sips:")
            ):
                return f"bad refer body: {sorted(body)}"
        elif action == "reject":
            _REJECT.validate_python(body)
            if set(body) - {"status_code"}:
                return f"bad reject body: {sorted(body)}"
        elif body:
            return f"{action} takes no body"
    except ValidationError as exc:
        return f"Invalid body: {exc.errors(include_url=False)[0]['msg']}"
    return None


def _error(status: int, code: str, message: str) -> JSONResponse:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    return JSONResponse({"error": error}, status_code=status)
