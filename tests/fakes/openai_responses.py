"""A local fake of OpenAI's Responses API (``POST /v1/responses``) that checks what the SDK sends.

Every request is validated with the SDK's own param types (``responses_validation``), and
against what the real API enforces beyond types: strict function schemas (every property
required, closed objects), parameters the model family refuses (``reasoning`` on ``gpt-4.1``,
``temperature`` on ``gpt-5``), a ``previous_response_id`` that must name a stored response,
every function call of the chain answered by a ``function_call_output`` and no output without
its call. A refused request gets the API's 400 body; the problem is also kept in ``problems``.

Answers come from ``script``: each step is an answer, or a function of the request body that
returns one. ``Say`` and ``Call`` are streamed as the real event sequence (``response.created``,
``response.in_progress``, ``response.output_item.added``, ``response.content_part.added``,
``response.output_text.delta`` …, ``response.function_call_arguments.delta/done``,
``response.output_item.done``, ``response.completed``), each event checked against the SDK's
``ResponseStreamEvent`` models; ``Fail`` answers an HTTP error, ``Stall`` stops after
``response.created`` (the client's timeout), ``Cut`` breaks the stream before the end and
``Refuse`` streams ``response.failed``. A ``gate`` (a ``threading.Event``) holds the stream
after its first text delta until a test lets it go; a ``hold`` holds it before it begins.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

from tests.fakes.http_fake import LocalHttpFake, read_body, write_response
from tests.fakes.responses_validation import event_problem, request_problem, warm_up

CALL_CONTROL = {"end_call", "transfer_to_staff"}
CREATED_AT = 1_800_000_000


@dataclass
class Say:
    """A streamed text answer, in ``chunks`` deltas."""

    text: str
    chunks: int = 3
    gate: threading.Event | None = None
    hold: threading.Event | None = None
    """Held before the stream begins until set (the client waits on the model)."""


@dataclass
class Call:
    """Function calls (name, arguments) in one response, optionally after a text preamble."""

    calls: list[tuple[str, dict[str, Any]]]
    text: str = ""
    gate: threading.Event | None = None
    hold: threading.Event | None = None


@dataclass
class Fail:
    status: int = 500


@dataclass
class Stall:
    """``response.created``, then nothing until the client gives up."""


@dataclass
class Cut:
    """``response.created`` and a delta, then the connection breaks (``abort``) or the stream
    ends cleanly without ``response.completed``."""

    abort: bool = True


@dataclass
class Refuse:
    """A streamed ``response.failed`` (the model errored server-side)."""


Answer = Say | Call | Fail | Stall | Cut | Refuse
Step = Answer | Callable[[dict[str, Any]], Answer]


@dataclass(frozen=True)
class Family:
    efforts: frozenset[str] = frozenset()
    verbosity: bool = False
    temperature: bool = True


FAMILIES = {
    "gpt-4.1": Family(),
    "gpt-5": Family(frozenset({"minimal", "low", "medium", "high"}), True, temperature=False),
}
"""What the real API lets each family take (its 400 "Unsupported parameter" otherwise)."""


@dataclass
class _Stored:
    store: bool
    open_calls: set[str] = field(default_factory=set)
    """Function calls of the chain still waiting for their output."""
    known_calls: set[str] = field(default_factory=set)


class FakeOpenAIResponses(LocalHttpFake):
    methods: ClassVar[tuple[str, ...]] = ("GET", "POST")

    def __init__(self, model: str, api_key: str = "sk-test") -> None:
        super().__init__()
        self.model = model
        self.api_key = api_key
        self.script: list[Step] = []
        self.requests: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.extra_models: list[str] = ["gpt-realtime"]
        self._responses: dict[str, _Stored] = {}
        self._ids = 0
        self._closing = threading.Event()
        self._server.handle_error = _quiet  # type: ignore[method-assign]
        self.transcripts: list[str | Fail] = []
        """Scripted answers of ``POST /v1/audio/transcriptions``, in order."""
        self.transcribed: list[dict[str, Any]] = []
        """What each transcription request carried (model, language, file name, type, bytes)."""
        warm_up()

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        super().__exit__(*exc)

    def forget_responses(self) -> None:
        """As after OpenAI's 30-day retention: stored responses are gone."""
        with self.lock:
            self._responses.clear()

    # HTTP ------------------------------------------------------------------------------------

    def _serve(self, request: BaseHTTPRequestHandler, method: str) -> None:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            with self.lock:
                self.problems.append("missing or wrong bearer token")
            return self._error(request, 401, "Incorrect API key provided", "invalid_api_key")
        if method == "GET" and request.path == "/v1/models":
            return self._models(request)
        if method == "POST" and request.path == "/v1/responses":
            return self._create(request)
        if method == "POST" and request.path == "/v1/audio/transcriptions":
            return self._transcribe(request)
        return self._error(request, 404, f"no route {method} {request.path}", "not_found")

    def _transcribe(self, request: BaseHTTPRequestHandler) -> None:
        """The Transcriptions API: a multipart form with ``model`` and ``file`` (and an optional
        ISO-639-1 ``language``), answered ``{"text": ...}``; anything else is the API's 400."""
        fields = _multipart(request.headers.get("Content-Type", ""), read_body(request))
        upload = fields.get("file")
        problem = None
        if not isinstance(fields.get("model"), str) or not fields["model"]:
            problem = "model is required"
        elif not isinstance(upload, tuple) or not upload[2]:
            problem = "file is required"
        elif fields.get("language") not in (None, "pt", "en", "ru"):
            problem = f"language {fields.get('language')!r} is not ISO-639-1"
        elif fields.get("response_format") not in (None, "json"):
            problem = "only json answers are scripted"
        with self.lock:
            if problem is not None:
                self.problems.append(problem)
                return self._error(request, 400, problem, "invalid_request_error")
            assert isinstance(upload, tuple)
            self.transcribed.append(
                {"model": fields["model"], "language": fields.get("language"), "name": upload[0],
                 "type": upload[1], "bytes": upload[2]}
            )  # fmt: skip
            if not self.transcripts:
                self.problems.append("transcription beyond the script")
                return self._error(request, 500, "no script left", "server_error")
            answer = self.transcripts.pop(0)
        if isinstance(answer, Fail):
            return self._error(request, answer.status, "scripted failure", "server_error")
        write_response(request, 200, json.dumps({"text": answer}).encode(), "application/json")

    def _models(self, request: BaseHTTPRequestHandler) -> None:
        data = [
            {"id": name, "object": "model", "created": CREATED_AT, "owned_by": "openai"}
            for name in (self.model, *self.extra_models)
        ]
        body = json.dumps({"object": "list", "data": data}).encode()
        write_response(request, 200, body, "application/json")

    def _error(
        self,
        request: BaseHTTPRequestHandler,
        status: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        kind = "server_error" if status >= 500 else "invalid_request_error"
        error = {"message": message, "type": kind, "param": param, "code": code}
        write_response(request, status, json.dumps({"error": error}).encode(), "application/json")

    def _create(self, request: BaseHTTPRequestHandler) -> None:
        try:
            body = json.loads(read_body(request))
        except ValueError:
            return self._error(request, 400, "We could not parse the JSON body")
        with self.lock:
            self.requests.append(body)
            refusal = self._refusal(body)
            if refusal is not None:
                status, message, code, param = refusal
                self.problems.append(message)
                return self._error(request, status, message, code, param)
            if not self.script:
                self.problems.append("request beyond the script")
                return self._error(request, 500, "no script left", "server_error")
            step = self.script.pop(0)
            answer = step(body) if callable(step) else step
        if isinstance(answer, Fail):
            return self._error(request, answer.status, "scripted failure", "server_error")
        self._stream(request, body, answer)

    # Checks ----------------------------------------------------------------------------------

    def _refusal(self, body: dict[str, Any]) -> tuple[int, str, str | None, str | None] | None:
        problem = request_problem(body)
        if problem is not None:
            return 400, problem, "invalid_request", None
        if body.get("model") != self.model:
            return 400, f"model {body.get('model')!r} is not {self.model!r}", None, "model"
        if not body.get("stream"):
            return 400, "the text channel is expected to stream", None, "stream"
        if not body.get("instructions"):
            return 400, "no instructions (the receptionist prompt)", None, "instructions"
        unsupported = self._unsupported(body)
        if unsupported is not None:
            return 400, f"Unsupported parameter: '{unsupported}'", "unsupported_parameter", None
        for tool in body.get("tools", []):
            problem = _strict_problem(tool)
            if problem is not None:
                return 400, problem, "invalid_function_parameters", "tools"
        return self._chain_refusal(body)

    def _unsupported(self, body: dict[str, Any]) -> str | None:
        family = next(
            (f for prefix, f in FAMILIES.items() if self.model.startswith(prefix)), Family()
        )
        effort = (body.get("reasoning") or {}).get("effort")
        if effort is not None and effort not in family.efforts:
            return "reasoning.effort"
        if (body.get("text") or {}).get("verbosity") is not None and not family.verbosity:
            return "text.verbosity"
        if body.get("temperature") is not None and not family.temperature:
            return "temperature"
        if "reasoning.encrypted_content" in (body.get("include") or []) and body.get("store", True):
            return "include (encrypted reasoning is for store=false)"
        return None

    def _chain_refusal(
        self, body: dict[str, Any]
    ) -> tuple[int, str, str | None, str | None] | None:
        previous = body.get("previous_response_id")
        open_calls: set[str] = set()
        known: set[str] = set()
        if previous is not None:
            stored = self._responses.get(previous)
            if stored is None or not stored.store:
                message = f"Previous response with id '{previous}' not found."
                return 400, message, "previous_response_not_found", "previous_response_id"
            open_calls, known = set(stored.open_calls), set(stored.known_calls)
        for item in body.get("input", []):
            kind = item.get("type", "message")
            if kind == "function_call":
                open_calls.add(item["call_id"])
                known.add(item["call_id"])
                json.loads(item["arguments"])
            elif kind == "function_call_output":
                if item["call_id"] not in known:
                    message = f"No tool call found for function call output {item['call_id']}."
                    return 400, message, None, "input"
                open_calls.discard(item["call_id"])
        if open_calls:
            message = f"No tool output found for function call {sorted(open_calls)[0]}."
            return 400, message, None, "input"
        body["_known_calls"] = known  # kept for this response's record, removed before storing
        return None

    # Streaming -------------------------------------------------------------------------------

    def _stream(
        self, request: BaseHTTPRequestHandler, body: dict[str, Any], answer: Answer
    ) -> None:
        known: set[str] = body.pop("_known_calls", set())
        with self.lock:
            self._ids += 1
            rid = f"resp_{self._ids:04d}"
        hold = getattr(answer, "hold", None)
        if hold is not None:
            hold.wait(15)
        events = _Events(self, request)
        events.begin()
        events.send("response.created", response=self._response(rid, body, "in_progress", []))
        if isinstance(answer, Stall):
            self._closing.wait(30)
            return events.abort()
        events.send("response.in_progress", response=self._response(rid, body, "in_progress", []))
        if isinstance(answer, Refuse):
            failed = self._response(rid, body, "failed", [])
            failed["error"] = {"code": "server_error", "message": "The model failed."}
            events.send("response.failed", response=failed)
            return events.end()
        if isinstance(answer, Cut):
            events.send_message(0, "Um momento", chunks=1, gate=None, stop_after_first=True)
            return events.abort() if answer.abort else events.end()
        output: list[dict[str, Any]] = []
        text = answer.text
        if text:
            output.append(
                events.send_message(len(output), text, getattr(answer, "chunks", 2), answer.gate)
            )
        calls: list[str] = []
        if isinstance(answer, Call):
            for name, arguments in answer.calls:
                item = events.send_call(
                    len(output), name, json.dumps(arguments, ensure_ascii=False)
                )
                output.append(item)
                calls.append(item["call_id"])
        done = self._response(rid, body, "completed", output)
        done["usage"] = {
            "input_tokens": 10,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 15,
        }
        with self.lock:
            self._responses[rid] = _Stored(
                store=body.get("store", True) is not False,
                open_calls=set(calls),
                known_calls=known | set(calls),
            )
        events.send("response.completed", response=done)
        events.end()

    def _response(
        self, rid: str, body: dict[str, Any], status: str, output: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return {
            "id": rid,
            "object": "response",
            "created_at": CREATED_AT,
            "status": status,
            "model": body["model"],
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools", []),
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "metadata": {},
            "temperature": body.get("temperature"),
            "top_p": None,
            "previous_response_id": body.get("previous_response_id"),
        }


class _Events:
    """One chunked ``text/event-stream`` answer, every event checked before it is sent."""

    def __init__(self, fake: FakeOpenAIResponses, request: BaseHTTPRequestHandler) -> None:
        self.fake = fake
        self.request = request
        self.sequence = 0
        self.items = 0

    def begin(self) -> None:
        self.request.send_response(200)
        self.request.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.request.send_header("Transfer-Encoding", "chunked")
        self.request.end_headers()

    def send(self, kind: str, **fields: Any) -> None:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        problem = event_problem(event)
        if problem is not None:
            with self.fake.lock:
                self.fake.problems.append(f"fake sent an invalid event: {problem}")
        data = f"event: {kind}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n".encode()
        self._chunk(data)

    def _chunk(self, data: bytes) -> None:
        try:
            self.request.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.request.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout)

    def end(self) -> None:
        self._chunk(b"")  # a zero-length chunk ends the body

    def abort(self) -> None:
        """Close the connection mid-body: the client sees a broken stream."""
        self.request.close_connection = True
        try:
            self.request.wfile.flush()
            self.request.connection.close()
        except OSError:
            pass

    def _item_id(self, prefix: str) -> str:
        self.items += 1
        return f"{prefix}_{self.items:04d}"

    def send_message(
        self,
        index: int,
        text: str,
        chunks: int,
        gate: threading.Event | None,
        *,
        stop_after_first: bool = False,
    ) -> dict[str, Any]:
        item_id = self._item_id("msg")
        item = {
            "id": item_id,
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        self.send("response.output_item.added", output_index=index, item=item)
        empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        where = {"item_id": item_id, "output_index": index, "content_index": 0}
        self.send("response.content_part.added", part=empty, **where)
        size = max(1, -(-len(text) // max(1, chunks)))
        for start in range(0, len(text), size):
            self.send(
                "response.output_text.delta", delta=text[start : start + size], logprobs=[], **where
            )
            if stop_after_first:
                return item
            if gate is not None and start == 0:
                gate.wait(15)
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        self.send("response.output_text.done", text=text, logprobs=[], **where)
        self.send("response.content_part.done", part=part, **where)
        done = {**item, "status": "completed", "content": [part]}
        self.send("response.output_item.done", output_index=index, item=done)
        return done

    def send_call(self, index: int, name: str, arguments: str) -> dict[str, Any]:
        item_id = self._item_id("fc")
        call_id = f"call_{item_id}"
        item = {
            "id": item_id,
            "type": "function_call",
            "call_id": call_id,
            "name": name,
            "arguments": "",
            "status": "in_progress",
        }
        self.send("response.output_item.added", output_index=index, item=item)
        half = len(arguments) // 2
        for piece in (arguments[:half], arguments[half:]):
            if piece:
                self.send(
                    "response.function_call_arguments.delta",
                    item_id=item_id,
                    output_index=index,
                    delta=piece,
                )
        self.send(
            "response.function_call_arguments.done",
            item_id=item_id,
            output_index=index,
            arguments=arguments,
        )
        done = {**item, "arguments": arguments, "status": "completed"}
        self.send("response.output_item.done", output_index=index, item=done)
        return done


def _quiet(request: object, client_address: object) -> None:
    """A client that drops a kept-alive connection is normal here (timeouts, cut streams)."""


def _strict_problem(tool: dict[str, Any]) -> str | None:
    """What the real API says of a strict function schema it cannot enforce."""
    if tool.get("type") != "function":
        return f"only function tools are expected, got {tool.get('type')!r}"
    name = tool.get("name")
    if name in CALL_CONTROL:
        return f"call-control tool {name} offered on a text channel"
    if not tool.get("description"):
        return f"tool {name} has no description"
    if not tool.get("strict"):
        return None
    return _schema_problem(tool.get("parameters") or {}, f"function '{name}'")


def _schema_problem(node: Any, where: str) -> str | None:
    if isinstance(node, list):
        for sub in node:
            problem = _schema_problem(sub, where)
            if problem:
                return problem
        return None
    if not isinstance(node, dict):
        return None
    if "default" in node:
        return f"Invalid schema for {where}: 'default' is not permitted."
    if node.get("type") == "object":
        properties = node.get("properties", {})
        if node.get("additionalProperties") is not False:
            return f"Invalid schema for {where}: 'additionalProperties' is required to be false."
        if sorted(node.get("required", [])) != sorted(properties):
            return (
                f"Invalid schema for {where}: 'required' is required to be supplied and to be "
                "an array including every key in properties."
            )
    for key in ("properties", "$defs"):
        for sub in (node.get(key) or {}).values():
            problem = _schema_problem(sub, where)
            if problem:
                return problem
    for key in ("items", "anyOf"):
        if key in node:
            problem = _schema_problem(node[key], where)
            if problem:
                return problem
    return None


def last_tool_output(body: dict[str, Any]) -> dict[str, Any]:
    """The newest ``function_call_output`` the request carries, parsed."""
    for item in reversed(body["input"]):
        if item.get("type") == "function_call_output":
            return json.loads(item["output"])  # type: ignore[no-any-return]
    raise AssertionError("no function call output in the request")


def _multipart(content_type: str, body: bytes) -> dict[str, str | tuple[str, str, bytes]]:
    """A multipart/form-data body read with the standard library's MIME parser: text fields as
    strings, files as (file name, content type, bytes)."""
    if not content_type.startswith("multipart/form-data"):
        return {}
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, str | tuple[str, str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if not isinstance(name, str):
            continue
        if filename is not None:
            fields[name] = (filename, part.get_content_type(), payload)
        else:
            fields[name] = payload.decode()
    return fields
