"""A local Twilio REST server (2010-04-01 Calls and Messages), reached through the twilio SDK.

It checks HTTP Basic auth (AccountSid:AuthToken) and the form fields Twilio requires, answers
201 with a resource or Twilio's error JSON, lists messages with the ``To``/``From``/``DateSent>``
filters, enforces WhatsApp's 24-hour window (a ``Body`` outside it is error 63016) and injects
faults: the next N requests fail (500, 429, slow), or are *applied and then* fail.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes import http_fake
from tests.fakes.http_fake import LocalHttpFake, read_body, write_response
from voice_agent.clock import Clock, SystemClock

E164 = re.compile(r"^\+[1-9]\d{7,14}$")


@dataclass
class Fault(http_fake.Fault):
    method: str | None = None
    """Only requests of this method (GET, POST) meet the fault; None: any request."""

    def meets(self, method: str, path: str) -> bool:
        return self.method in (None, method)


@dataclass
class TwilioState:
    messages: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    open_windows: set[str] = field(default_factory=set)
    templates: dict[str, str] = field(default_factory=dict)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    numbers: set[str] = field(default_factory=set)
    """Phone numbers the account owns (IncomingPhoneNumbers)."""
    media: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    """Media of incoming messages by ``ME…`` sid: (content type, bytes)."""
    media_fetches: list[tuple[str, str | None]] = field(default_factory=list)
    """Each fetch of stored media: (path, the Authorization header it carried)."""


class TwilioError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class TwilioRestFake(LocalHttpFake):
    methods = ("GET", "POST")

    def __init__(
        self,
        account_sid: str = "AC" + "1" * 32,
        auth_token: str = "secret-token-0123456789",
        clock: Clock | None = None,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.clock: Clock = clock or SystemClock()
        """Stamps ``date_created``: hand in the test's clock when the app compares with it."""
        self.state = TwilioState()
        super().__init__()

    # Set-up and inspection --------------------------------------------------------------------

    def open_window(self, number: str) -> None:
        """The user wrote to us: free-form messages to them are allowed for 24 hours."""
        with self.lock:
            self.state.open_windows.add(number.removeprefix("whatsapp:"))

    def add_number(self, number: str) -> None:
        """A phone number the account owns."""
        with self.lock:
            self.state.numbers.add(number)

    def add_template(self, content_sid: str, text: str) -> None:
        """A content template; ``{{1}}``, ``{{2}}`` … are filled from ContentVariables."""
        with self.lock:
            self.state.templates[content_sid] = text

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        *,
        delay: float = 0.0,
        apply: bool = False,
        method: str | None = None,
    ) -> None:
        with self.lock:
            self.state.faults += [Fault(status, delay, apply, method) for _ in range(count)]

    def fail_message(
        self, sid: str, code: int, status: str = "undelivered"
    ) -> tuple[str, dict[str, str]]:
        """The carrier/WhatsApp gave up on an accepted message (e.g. 63016 outside the 24-hour
        window): its status changes, and Twilio would POST this status callback (URL, form)."""
        if status not in ("failed", "undelivered"):
            raise ValueError("a late failure is 'failed' or 'undelivered'")
        with self.lock:
            for message in self.state.messages:
                if message["sid"] == sid:
                    message["status"], message["error_code"] = status, code
                    callback = message.get("_status_callback")
                    if not callback:
                        raise AssertionError("the message was sent without a StatusCallback")
                    form = {
                        "MessageSid": sid,
                        "SmsSid": sid,
                        "AccountSid": self.account_sid,
                        "MessageStatus": status,
                        "SmsStatus": status,
                        "ErrorCode": str(code),
                        "From": message["from"],
                        "To": message["to"],
                        "ApiVersion": "2010-04-01",
                    }
                    return callback, form
        raise KeyError(sid)

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(m) for m in self.state.messages if to is None or m["to"] == to]

    # HTTP -------------------------------------------------------------------------------------

    def add_media(self, content_type: str, data: bytes) -> str:
        """Media of an incoming message; returns its ``MediaUrl`` (as in the webhook)."""
        message, media = "MM" + uuid.uuid4().hex, "ME" + uuid.uuid4().hex
        with self.lock:
            self.state.media[media] = (content_type, data)
        account = f"{self.root_url}/2010-04-01/Accounts/{self.account_sid}"
        return f"{account}/Messages/{message}/Media/{media}"

    def _serve(self, request: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(request.path)
        if parts.path.startswith("/media-store/"):  # where Twilio's media URL redirects to
            return self._stored_media(request, parts.path)
        media = re.fullmatch(
            rf"/2010-04-01/Accounts/{self.account_sid}/Messages/MM[0-9a-f]{{32}}/Media/(ME[0-9a-f]{{32}})",
            parts.path,
        )
        if media and method == "GET":
            return self._media(request, media[1])
        form = parse_qs(read_body(request).decode(), keep_blank_values=True)
        query = parse_qs(parts.query, keep_blank_values=True)
        fault = self._next_fault(self.state.faults, method, parts.path)
        try:
            self._check_auth(request.headers.get("Authorization"))
            if fault is not None and fault.fails_before:
                raise TwilioError(fault.status, 20500, "Injected failure")
            if method == "POST" and request.headers.get_content_type() != (
                "application/x-www-form-urlencoded"
            ):
                raise TwilioError(400, 20001, "form encoding expected")
            with self.lock:
                status, payload = self._route(method, parts.path, form, query)
            if fault is not None and fault.fails_after:
                raise TwilioError(fault.status, 20500, "Injected failure after apply")
        except TwilioError as error:
            status = error.status
            payload = {
                "code": error.code,
                "message": error.message,
                "more_info": f"https://www.twilio.com/docs/errors/{error.code}",
                "status": error.status,
            }
            with self.lock:
                self.state.rejected.append((error.code, parts.path))
        write_response(request, status, json.dumps(payload).encode(), "application/json")

    def _media(self, request: BaseHTTPRequestHandler, sid: str) -> None:
        """Twilio's media URL: HTTP Basic auth (the account's "enforce HTTP auth on media URLs"),
        then a 307 to the media store, as the real API answers."""
        try:
            self._check_auth(request.headers.get("Authorization"))
        except TwilioError as error:
            body = json.dumps({"code": error.code, "message": error.message}).encode()
            return write_response(request, error.status, body, "application/json")
        with self.lock:
            known = sid in self.state.media
        if not known:
            return write_response(request, 404, b'{"code": 20404}', "application/json")
        request.send_response(307)
        # Another origin, as Twilio's media store is: a client must not send it the credentials.
        store = self.root_url.replace("127.0.0.1", "localhost")
        request.send_header("Location", f"{store}/media-store/{sid}")
        request.send_header("Content-Length", "0")
        request.end_headers()

    def _stored_media(self, request: BaseHTTPRequestHandler, path: str) -> None:
        sid = path.rsplit("/", 1)[-1]
        with self.lock:
            self.state.media_fetches.append((path, request.headers.get("Authorization")))
            stored = self.state.media.get(sid)
        if stored is None:
            return write_response(request, 404, b"", None)
        write_response(request, 200, stored[1], stored[0])

    def _check_auth(self, header: str | None) -> None:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if header != f"Basic {expected}":
            raise TwilioError(401, 20003, "Authenticate")

    def _route(
        self, method: str, path: str, form: dict[str, list[str]], query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        prefix = f"/2010-04-01/Accounts/{self.account_sid}/"
        if path == f"/2010-04-01/Accounts/{self.account_sid}.json" and method == "GET":
            return 200, self._account()
        content = re.fullmatch(r"/v1/Content/(HX[0-9a-f]{32})", path)
        if content and method == "GET":  # the Content API (content.twilio.com)
            return 200, self._content(content[1])
        if not path.startswith(prefix):
            raise TwilioError(404, 20404, f"The requested resource {path} was not found")
        rest = path[len(prefix) :]
        if rest == "Messages.json" and method == "POST":
            return 201, self._create_message(form)
        if rest == "Messages.json" and method == "GET":
            return 200, self._list_messages(query)
        if rest == "IncomingPhoneNumbers.json" and method == "GET":
            return 200, self._incoming_numbers(query)
        if rest == "Calls.json" and method == "POST":
            return 201, self._create_call(form)
        if rest == "Calls.json" and method == "GET":
            return 200, self._list_calls(query)
        match = re.fullmatch(r"Calls/(CA[0-9a-f]{32})\.json", rest)
        if match and method == "POST":
            return 200, self._update_call(match[1], form)
        if match and method == "GET":
            for call in self.state.calls:
                if call["sid"] == match[1]:
                    return 200, self._public_call(call)
        raise TwilioError(404, 20404, f"The requested resource {path} was not found")

    def _account(self) -> dict[str, Any]:
        return {
            "sid": self.account_sid,
            "friendly_name": "Clinic account",
            "status": "active",
            "type": "Full",
            "date_created": "Mon, 02 Nov 2026 10:00:00 +0000",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}.json",
        }

    def _content(self, sid: str) -> dict[str, Any]:
        if sid not in self.state.templates:
            raise TwilioError(404, 20404, f"The requested resource /v1/Content/{sid} was not found")
        return {
            "sid": sid,
            "account_sid": self.account_sid,
            "friendly_name": f"template {sid[-4:]}",
            "language": "pt_BR",
            "variables": {},
            "types": {"twilio/text": {"body": self.state.templates[sid]}},
            "url": f"https://content.twilio.com/v1/Content/{sid}",
            "links": {},
            "date_created": "2026-11-02T10:00:00Z",
            "date_updated": "2026-11-02T10:00:00Z",
        }

    def _incoming_numbers(self, query: dict[str, list[str]]) -> dict[str, Any]:
        wanted = query.get("PhoneNumber", [None])[0]
        numbers = [
            {
                "sid": "PN" + uuid.uuid5(uuid.NAMESPACE_URL, number).hex,
                "account_sid": self.account_sid,
                "phone_number": number,
                "friendly_name": number,
                "capabilities": {"voice": True, "sms": True, "mms": False},
            }
            for number in sorted(self.state.numbers)
            if wanted is None or number == wanted
        ]
        uri = f"/2010-04-01/Accounts/{self.account_sid}/IncomingPhoneNumbers.json"
        return {
            "incoming_phone_numbers": numbers,
            "end": max(0, len(numbers) - 1),
            "first_page_uri": uri,
            "next_page_uri": None,
            "page": 0,
            "page_size": 50,
            "previous_page_uri": None,
            "start": 0,
            "uri": uri,
        }

    @staticmethod
    def _one(form: dict[str, list[str]], name: str) -> str | None:
        values = form.get(name)
        if values is None:
            return None
        if len(values) != 1:
            raise TwilioError(400, 21201, f"{name} given more than once")
        return values[0]

    def _create_message(self, form: dict[str, list[str]]) -> dict[str, Any]:
        allowed = {"To", "From", "Body", "ContentSid", "ContentVariables", "StatusCallback"}
        allowed |= {"MessagingServiceSid", "MediaUrl"}
        unknown = set(form) - allowed
        if unknown:
            raise TwilioError(400, 21201, f"Unknown parameters {sorted(unknown)}")
        to, sender = self._one(form, "To"), self._one(form, "From")
        callback = self._one(form, "StatusCallback")
        if callback is not None and not callback.startswith(("https://", "http://")):
            raise TwilioError(400, 21609, "StatusCallback must be an absolute URL")
        if not to:
            raise TwilioError(400, 21604, "A 'To' phone number is required.")
        if not sender:
            raise TwilioError(400, 21603, "A 'From' phone number is required.")
        whatsapp = to.startswith("whatsapp:")
        if whatsapp != sender.startswith("whatsapp:"):
            raise TwilioError(400, 63007, "To and From must both be WhatsApp addresses")
        number = to.removeprefix("whatsapp:")
        if not E164.match(number) or not E164.match(sender.removeprefix("whatsapp:")):
            raise TwilioError(400, 21211, "The 'To' number is not a valid phone number.")
        body, content_sid = self._one(form, "Body"), self._one(form, "ContentSid")
        if (body is None) == (content_sid is None):
            raise TwilioError(400, 21619, "A text message body or ContentSid is required.")
        if content_sid is not None:
            if content_sid not in self.state.templates:
                raise TwilioError(400, 21656, "The ContentSid is invalid.")
            try:
                variables = json.loads(self._one(form, "ContentVariables") or "{}")
            except ValueError:
                raise TwilioError(400, 21656, "ContentVariables is not valid JSON") from None
            if not isinstance(variables, dict) or not all(
                isinstance(v, str) for v in variables.values()
            ):
                raise TwilioError(400, 21656, "ContentVariables must map strings to strings")
            body = self.state.templates[content_sid]
            for key, value in variables.items():
                body = body.replace("{{" + key + "}}", value)
        elif whatsapp and number not in self.state.open_windows:
            raise TwilioError(400, 63016, "Failed to send freeform message outside the window")
        now = self.clock.now()
        message = {
            "sid": "SM" + uuid.uuid4().hex,
            "account_sid": self.account_sid,
            "to": to,
            "from": sender,
            "body": body,
            "content_sid": content_sid,
            "status": "queued",
            "direction": "outbound-api",
            "num_segments": "1",
            "date_created": format_datetime(now, usegmt=True),
            "date_sent": format_datetime(now, usegmt=True),
            "date_updated": format_datetime(now, usegmt=True),
            "_sent_at": now,
            "_status_callback": self._one(form, "StatusCallback"),
            "error_code": None,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/SMx.json",
        }
        self.state.messages.append(message)
        return {k: v for k, v in message.items() if not k.startswith("_")}

    def _list_messages(self, query: dict[str, list[str]]) -> dict[str, Any]:
        found = self.state.messages
        if "To" in query:
            found = [m for m in found if m["to"] == query["To"][0]]
        if "From" in query:
            found = [m for m in found if m["from"] == query["From"][0]]
        if "DateSent>" in query:
            since = datetime.fromisoformat(query["DateSent>"][0].replace("Z", "+00:00"))
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
            found = [m for m in found if m["_sent_at"] >= since.replace(microsecond=0)]
        public = [{k: v for k, v in m.items() if not k.startswith("_")} for m in found]
        return self._page("Messages", public, query)

    def _page(
        self, resource: str, items: list[dict[str, Any]], query: dict[str, list[str]]
    ) -> dict[str, Any]:
        """One page of a list resource, newest first, as Twilio's list endpoints answer."""
        size = int(query.get("PageSize", ["50"])[0])
        page = list(reversed(items[-size:]))
        uri = f"/2010-04-01/Accounts/{self.account_sid}/{resource}.json"
        return {
            resource.lower(): page,
            "end": len(page) - 1,
            "first_page_uri": uri,
            "next_page_uri": None,
            "page": 0,
            "page_size": size,
            "previous_page_uri": None,
            "start": 0,
            "uri": uri,
        }

    CALL_PARAMETERS = frozenset(
        {
            "To",
            "From",
            "Url",
            "Method",
            "Twiml",
            "StatusCallback",
            "StatusCallbackMethod",
            "StatusCallbackEvent",
            "MachineDetection",
            "MachineDetectionTimeout",
            "AsyncAmd",
            "AsyncAmdStatusCallback",
            "AsyncAmdStatusCallbackMethod",
            "Timeout",
            "CallerId",
            "Record",
        }
    )
    AMD_MODES = frozenset({"Enable", "DetectMessageEnd"})
    CALL_EVENTS = frozenset({"initiated", "ringing", "answered", "completed"})

    def _create_call(self, form: dict[str, list[str]]) -> dict[str, Any]:
        unknown = set(form) - self.CALL_PARAMETERS
        if unknown:
            raise TwilioError(400, 21201, f"Unknown parameters {sorted(unknown)}")
        to, sender = self._one(form, "To"), self._one(form, "From")
        if not to or not sender:
            raise TwilioError(400, 21201, "To and From are required")
        if not E164.match(to) or not E164.match(sender):
            raise TwilioError(400, 21211, "Invalid 'To' or 'From' phone number")
        if not (form.get("Url") or form.get("Twiml")):
            raise TwilioError(400, 21205, "Url or Twiml is required")
        detection = self._one(form, "MachineDetection")
        if detection is not None and detection not in self.AMD_MODES:
            raise TwilioError(400, 21201, f"MachineDetection {detection!r} is not valid")
        if self._one(form, "AsyncAmd") not in (None, "true", "false"):
            raise TwilioError(400, 21201, "AsyncAmd must be true or false")
        events = set(form.get("StatusCallbackEvent", []))
        if not events <= self.CALL_EVENTS:
            raise TwilioError(400, 21201, f"StatusCallbackEvent {sorted(events)} is not valid")
        now = self.clock.now()
        call = {
            "sid": "CA" + uuid.uuid4().hex,
            "account_sid": self.account_sid,
            "to": to,
            "from": sender,
            "status": "queued",
            "direction": "outbound-api",
            "date_created": format_datetime(now, usegmt=True),
            "date_updated": format_datetime(now, usegmt=True),
            "form": {k: v for k, v in form.items()},
            "updates": [],
        }
        self.state.calls.append(call)
        return self._public_call(call)

    @staticmethod
    def _public_call(call: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in call.items() if k not in ("form", "updates")}

    def _list_calls(self, query: dict[str, list[str]]) -> dict[str, Any]:
        found = self.state.calls
        if "To" in query:
            found = [c for c in found if c["to"] == query["To"][0]]
        if "From" in query:
            found = [c for c in found if c["from"] == query["From"][0]]
        return self._page("Calls", [self._public_call(c) for c in found], query)

    def _update_call(self, sid: str, form: dict[str, list[str]]) -> dict[str, Any]:
        allowed = {"Status", "Twiml", "Url", "Method", "StatusCallback", "StatusCallbackMethod"}
        unknown = set(form) - allowed
        if unknown:
            raise TwilioError(400, 21201, f"Unknown parameters {sorted(unknown)}")
        for call in self.state.calls:
            if call["sid"] == sid:
                if call["status"] == "completed":
                    raise TwilioError(400, 21220, "Call is not in-progress. Cannot redirect.")
                status = self._one(form, "Status")
                if status is not None and status not in ("completed", "canceled"):
                    raise TwilioError(400, 21201, f"Status {status!r} is not valid")
                call["updates"].append({k: v[0] for k, v in form.items()})
                if status is not None:
                    call["status"] = status
                return self._public_call(call)
        raise TwilioError(404, 20404, "The requested resource was not found")

    def calls(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(c) for c in self.state.calls]

    def set_call_status(self, sid: str, status: str) -> None:
        """What Twilio reports for a call (``completed``, ``no-answer`` …) when it is fetched."""
        with self.lock:
            for call in self.state.calls:
                if call["sid"] == sid:
                    call["status"] = status
