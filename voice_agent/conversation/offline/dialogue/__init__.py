"""The offline receptionist's dialogue: a state machine over ``ConversationState``.

Each turn reads the message (``nlu.parse``), acts only through the tool registry, and answers
from reply templates filled with tool outputs. Booking, moving and cancelling happen only on an
explicit yes to a read-back in the previous turn: that is the one place ``confirmed_by_patient``
becomes true.

- ``core.py``: ``Dialogue`` (the entry) and ``Run`` (one turn: dispatch, reprompts, the goal
  resumed, shared helpers);
- ``stages.py``: what a message means while a stage waits for something;
- ``intents.py``: a message no stage took (requests, greetings, hand-over, unknown questions);
- ``booking.py``, ``appointments.py``, ``identity.py``: the flows (book; list, cancel, move,
  confirm; prove who you are);
- ``answers.py``: the clinic's prices, insurances, doctors, hospitals, hours, contact;
- ``turn.py``: the turn's output and what tool results leave in the state.
"""

from voice_agent.conversation.offline.dialogue.core import Dialogue
from voice_agent.conversation.offline.dialogue.turn import Turn, observe_tool

__all__ = ["Dialogue", "Turn", "observe_tool"]
