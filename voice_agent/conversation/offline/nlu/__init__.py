"""Understanding one message, without a model: intents, the clinic's services, doctors and
insurances, contact details, option choices, and date/time wishes relative to the clinic's today.

Pure functions over text and values: no I/O, no clock (``today`` is passed in), easy to test.

- ``understanding.py``: ``Understanding`` and ``parse`` (puts the readers below together);
- ``dates.py``: ``TimeWish`` and the date/time reader (``parse_when``);
- ``intents.py``: intents settled, questions resolved, option numbers, ``affirms``;
- ``clinic_index.py``: services, insurances and doctors named in free text;
- ``person_names.py``: the patient's own name, and the spelling key names are matched by;
- ``patterns.py``: folding and accent-blind patterns the others share.
"""

from voice_agent.conversation.offline.nlu.clinic_index import unknown_doctor
from voice_agent.conversation.offline.nlu.dates import LUNCH_END, WEEKDAY_IDS, TimeWish, parse_when
from voice_agent.conversation.offline.nlu.intents import affirms
from voice_agent.conversation.offline.nlu.patterns import normalize
from voice_agent.conversation.offline.nlu.person_names import (
    extract_name,
    name_correction,
    name_key,
)
from voice_agent.conversation.offline.nlu.understanding import Understanding, parse, warm_up

__all__ = [
    "LUNCH_END",
    "WEEKDAY_IDS",
    "TimeWish",
    "Understanding",
    "affirms",
    "extract_name",
    "name_correction",
    "name_key",
    "normalize",
    "parse",
    "parse_when",
    "unknown_doctor",
    "warm_up",
]
