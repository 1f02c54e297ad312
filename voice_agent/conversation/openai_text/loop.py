"""The OpenAI text receptionist: one turn on the Responses API, tools from the one registry.

Each round streams one ``POST /responses`` (``client.py``): the instructions
(``prompts/<language>/receptionist_text.md``), the items the model has not seen yet and the
patient's message. Function calls go through ``ToolRegistry.dispatch`` with the channel's
verified context; their outputs go back as ``function_call_output`` items, for at most
``MAX_ROUNDS`` rounds. Any failure raises (after telling a listener to drop what it showed),
and the engine lets the offline receptionist answer the turn from the same state.

State: with ``store`` on (the default), each request names the previous response
(``previous_response_id``) and sends only new items; with ``store`` off, OpenAI keeps nothing
and every request resends the conversation's items from ``ConversationState.history``. That
copy is kept either way (docs/architecture.md, "The text receptionist").

One lock lives in code, not in the prompt: a booking, move, cancellation or confirmation goes
through with ``confirmed_by_patient`` only when the patient's latest message is an explicit yes.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, cast

from openai import BadRequestError, NotFoundError
from openai.types.responses import ResponseFunctionToolCall, ResponseInputParam
from openai.types.responses.response_create_params import ResponseCreateParamsStreaming

from voice_agent.conversation.offline.dialogue import Turn, observe_tool
from voice_agent.conversation.offline.nlu import affirms
from voice_agent.conversation.openai_text.client import (
    SENT_AT,
    TimedOpenAI,
    encode_request,
    encode_tools,
)
from voice_agent.conversation.openai_text.items import (
    CONFIRMED_ACTIONS,
    assistant_message,
    function_call,
    function_output,
    parse_arguments,
    upgrade_history,
    user_message,
    withhold_unconfirmed,
)
from voice_agent.conversation.openai_text.models import model_options
from voice_agent.conversation.openai_text.prompt import instructions
from voice_agent.conversation.openai_text.schemas import (
    drop_nulls,
    function_tools,
    optional_arguments,
)
from voice_agent.conversation.openai_text.stream import Round, read_round
from voice_agent.conversation.state import ConversationState
from voice_agent.conversation.streaming import TurnListener
from voice_agent.patients.service import Looked
from voice_agent.settings import Settings
from voice_agent.tools.context import ToolContext
from voice_agent.tools.registry import ToolRegistry

logger = logging.getLogger(__name__)

MAX_ROUNDS = 6
"""Model requests per turn; a model still calling tools after that gives the turn up."""
MAX_CALLS_PER_ROUND = 8
"""Function calls run from one response; the rest are answered with an error to retry."""
PARAGRAPH = "\n\n"


class LLMGaveUp(RuntimeError):
    """The model gave an empty answer or kept calling tools past ``MAX_ROUNDS``."""


@dataclass
class TurnStats:
    """Where one turn's time went (the benchmark subtracts the model's and the tools' share)."""

    rounds: int = 0
    model_ms: float = 0.0
    """From handing each request to HTTP to its ``response.completed`` (``client.py``)."""
    tool_ms: float = 0.0
    model_cpu_ms: float = 0.0
    """Process CPU time in the same windows (the SDK's own work while it waits and parses)."""
    tool_cpu_ms: float = 0.0


class ResponsesConversation:
    def __init__(self, settings: Settings, registry: ToolRegistry) -> None:
        api_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
        self.client = TimedOpenAI(
            api_key=api_key,
            base_url=settings.openai_base_url,
            max_retries=1,
            timeout=settings.text_timeout_seconds,
        )
        self.model = settings.text_model
        self.store = settings.text_store
        self.registry = registry
        specs = registry.realtime_schemas()
        self.tools = function_tools(specs)
        self.tools_json = encode_tools(self.tools)
        self.optional = optional_arguments(specs)
        self.options = model_options(
            self.model, settings.text_reasoning_effort, settings.text_verbosity, store=self.store
        )
        self.prompts_dir = settings.prompts_dir
        self.last_stats = TurnStats()

    async def respond(
        self,
        state: ConversationState,
        text: str,
        ctx: ToolContext,
        turn: Turn,
        listener: TurnListener | None = None,
        *,
        looked: Looked | None = None,
    ) -> None:
        """Run one turn; fills ``turn`` and records the items in ``state`` only on success.

        ``looked``: who is on file for the caller's phone when the conversation already read
        it (the instructions then need no look-up of the patient)."""
        try:
            await self._respond(state, text, ctx, turn, listener, looked)
        except Exception:
            if listener is not None:
                await listener.discard()
            raise

    async def _respond(
        self,
        state: ConversationState,
        text: str,
        ctx: ToolContext,
        turn: Turn,
        listener: TurnListener | None,
        looked: Looked | None,
    ) -> None:
        stats = self.last_stats = TurnStats()
        history = upgrade_history(state.history)
        system = await instructions(self.prompts_dir, ctx, looked)
        added: list[dict[str, Any]] = [user_message(text)]
        yes = affirms(text, ctx.language)
        previous = state.openai_response_id if self.store else None
        if previous and state.openai_seen > len(history):
            previous = None  # a state we cannot line up with the chain: resend it all
        sending = [*(history[state.openai_seen :] if previous else history), *added]
        lead = ""
        for _ in range(MAX_ROUNDS):
            try:
                found = await self._round(system, sending, previous, state, listener, lead, stats)
            except (BadRequestError, NotFoundError) as exc:
                if previous is None or not _chain_gone(exc):
                    raise
                logger.info("previous response no longer at OpenAI: resending the conversation")
                previous, sending = None, [*history, *added]
                found = await self._round(system, sending, previous, state, listener, lead, stats)
            if found.text:
                turn.parts.append(found.text)
                added.append(assistant_message(found.text))
                lead = PARAGRAPH
            if not found.calls:
                if not found.text:
                    raise LLMGaveUp("empty answer")
                state.history = [*history, *added]
                state.trim_history()
                state.openai_response_id = found.response_id if self.store else None
                state.openai_seen = len(state.history)
                return
            outputs = []
            for index, call in enumerate(found.calls):
                added.append(function_call(call.call_id, call.name, call.arguments))
                if index < MAX_CALLS_PER_ROUND:
                    output = await self._run(call, ctx, state, turn, yes, stats)
                else:
                    output = json.dumps({"error": "too many tool calls at once; call it again"})
                outputs.append(function_output(call.call_id, output))
            added.extend(outputs)
            if self.store:
                previous, sending = found.response_id, outputs
            else:
                sending = [*sending, *found.output, *outputs]
        raise LLMGaveUp(f"more than {MAX_ROUNDS} model rounds")

    async def _round(
        self,
        system: str,
        sending: list[dict[str, Any]],
        previous: str | None,
        state: ConversationState,
        listener: TurnListener | None,
        lead: str,
        stats: TurnStats,
    ) -> Round:
        params: ResponseCreateParamsStreaming = {
            "model": self.model,
            "instructions": system,
            "input": cast(ResponseInputParam, sending),
            "tool_choice": "auto",
            # Several calls in one response are run one after another, in the model's order:
            # they share the conversation's offers and holds (find_slots, then book).
            "parallel_tool_calls": True,
            "store": self.store,
            "truncation": "auto",
            "stream": True,
        }
        params.update(self.options)
        if previous:
            params["previous_response_id"] = previous
        if state.conversation_id:
            params["safety_identifier"] = state.conversation_id  # an HMAC, never a phone
        SENT_AT.set(None)
        # The body goes as JSON we encode (``client.py``): the SDK's runtime param transform,
        # which only renames aliased keys ours never have, walks every item through each member
        # of the 25-type input-item union (30-50 ms a request at 40 items and 12 tools on the
        # loaded 2-core test machine, against 0.1 ms of JSON), and ``self.tools`` were encoded
        # once. The fake server validates this same body with the SDK's types.
        body = encode_request(params, self.tools_json)
        async with self.client.stream_response(body) as lines:
            sent = SENT_AT.get()
            found = await read_round(lines, listener, lead=lead)
        if sent is not None:
            stats.model_ms += (time.perf_counter() - sent[0]) * 1000
            stats.model_cpu_ms += (time.process_time() - sent[1]) * 1000
        stats.rounds += 1
        return found

    async def _run(
        self,
        call: ResponseFunctionToolCall,
        ctx: ToolContext,
        state: ConversationState,
        turn: Turn,
        yes: bool,
        stats: TurnStats,
    ) -> str:
        name = call.name
        parsed = parse_arguments(call.arguments)
        arguments: dict[str, Any] | str = call.arguments  # not an object: the registry says so
        if parsed is not None:
            arguments = drop_nulls(parsed, self.optional.get(name, frozenset()))
            withhold_unconfirmed(name, arguments, yes)
        turn.tool_calls.append(name)
        cpu = time.process_time()
        result = await self.registry.dispatch(name, arguments, ctx)
        stats.tool_ms += result.duration_ms
        stats.tool_cpu_ms += (time.process_time() - cpu) * 1000
        observe_tool(state, name, result)
        if result.ok and name in CONFIRMED_ACTIONS:
            key = CONFIRMED_ACTIONS[name]
            turn.changed = {"action": key, **result.output[key]}
        return result.to_json()


def _chain_gone(exc: BadRequestError | NotFoundError) -> bool:
    """Whether OpenAI refused ``previous_response_id`` (expired after 30 days, or deleted)."""
    body = exc.body if isinstance(exc.body, dict) else {}
    return (
        body.get("param") == "previous_response_id"
        or body.get("code") == "previous_response_not_found"
    )
