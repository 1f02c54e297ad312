"""A local fake of OpenAI's Chat Completions endpoint that checks what the SDK sends.

It validates the request shape (model, message roles and order, tool schemas, tool results that
answer earlier tool calls) and answers from a script: each step is a function of the request
returning either ``{"content": …}``, ``{"tool_calls": [(name, arguments), …]}`` or
``{"status": 500}``. Problems found in requests are collected in ``problems``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

Step = Callable[[dict[str, Any]], dict[str, Any]]
ROLES = {"system", "user", "assistant", "tool"}


class FakeOpenAIChat:
    def __init__(self, model: str, api_key: str = "sk-test") -> None:
        self.model = model
        self.api_key = api_key
        self.script: list[Step] = []
        self.requests: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self._ids = 0
        self.extra_models: list[str] = ["gpt-realtime"]

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _models(self, request: web.Request) -> web.Response:
        """GET /v1/models: the models this key may use (the chat model and a realtime one)."""
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response(
                {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}},
                status=401,
            )
        models = [self.model, *self.extra_models]
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "created": 1_800_000_000, "owned_by": "openai"}
                    for name in models
                ],
            }
        )

    async def _completions(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            self.problems.append("missing or wrong bearer token")
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        body = await request.json()
        self.requests.append(body)
        self._check(body)
        if not self.script:
            self.problems.append("request beyond the script")
            return web.json_response({"error": {"message": "no script"}}, status=500)
        answer = self.script.pop(0)(body)
        if "status" in answer:
            return web.json_response(
                {"error": {"message": "scripted failure", "type": "server_error"}},
                status=answer["status"],
            )
        return web.json_response(self._completion(answer))

    def _completion(self, answer: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": answer.get("content")}
        finish = "stop"
        if answer.get("tool_calls"):
            calls = []
            for name, arguments in answer["tool_calls"]:
                self._ids += 1
                calls.append(
                    {
                        "id": f"call_{self._ids}",
                        "type": "function",
                        "function": {"name": name, "arguments": json.dumps(arguments)},
                    }
                )
            message["tool_calls"] = calls
            finish = "tool_calls"
        return {
            "id": f"chatcmpl-{self._ids}",
            "object": "chat.completion",
            "created": 1_800_000_000,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }

    def _check(self, body: dict[str, Any]) -> None:
        def problem(text: str) -> None:
            self.problems.append(text)

        if body.get("model") != self.model:
            problem(f"model {body.get('model')!r}")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            problem("no messages")
            return
        if messages[0].get("role") != "system" or not messages[0].get("content"):
            problem("first message is not the system prompt")
        pending: set[str] = set()
        for message in messages:
            role = message.get("role")
            if role not in ROLES:
                problem(f"unknown role {role!r}")
            if role == "system" and message is not messages[0]:
                problem("system message after the first")
            if role == "assistant":
                for call in message.get("tool_calls") or []:
                    pending.add(call["id"])
                    if call.get("type") != "function":
                        problem("tool call without type function")
                    json.loads(call["function"]["arguments"])
            if role == "tool":
                if message.get("tool_call_id") not in pending:
                    problem("tool result without its call")
                pending.discard(message.get("tool_call_id"))
                json.loads(message["content"])
            if role == "user" and not isinstance(message.get("content"), str):
                problem("user content is not text")
        if pending:
            problem(f"tool calls without results: {sorted(pending)}")
        if messages[-1].get("role") not in ("user", "tool"):
            problem(f"last message is {messages[-1].get('role')}")
        tools = body.get("tools")
        if not isinstance(tools, list) or not tools:
            problem("no tools")
            return
        for tool in tools:
            function = tool.get("function", {})
            if tool.get("type") != "function" or not function.get("name"):
                problem(f"bad tool {tool}")
            params = function.get("parameters", {})
            if params.get("type") != "object" or params.get("additionalProperties") is not False:
                problem(f"tool {function.get('name')} parameters are not a closed object")
            if not function.get("description"):
                problem(f"tool {function.get('name')} has no description")
        names = {t["function"]["name"] for t in tools}
        if "end_call" in names or "transfer_to_staff" in names:
            problem("call-control tools offered on a text channel")
        if body.get("tool_choice") not in (None, "auto"):
            problem(f"tool_choice {body.get('tool_choice')!r}")


def last_tool_output(body: dict[str, Any]) -> dict[str, Any]:
    for message in reversed(body["messages"]):
        if message["role"] == "tool":
            return json.loads(message["content"])  # type: ignore[no-any-return]
    raise AssertionError("no tool output in the request")
