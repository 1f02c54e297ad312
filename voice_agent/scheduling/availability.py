"""Free slots and slot checks as pure functions over the clinic and the busy time it is given.

Free time is working hours − breaks − closures − busy intervals, laid on each doctor's slot grid.
Hours, breaks and the grid are wall-clock times of the clinic's timezone (that is what a clinic
writes down); busy time and every result are aware UTC instants (that is what calendars store).
Each local day is converted on its own, so slots stay right across daylight-saving changes.

Internally instants are integer POSIX seconds: the engine touches thousands of candidate starts per
request and integer arithmetic keeps it fast; only the slots actually yielded become datetimes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from operator import attrgetter
from zoneinfo import ZoneInfo

from voice_agent.clinic.model import Clinic, Closure, Doctor, Service, Weekday, WorkingDay

_WEEKDAYS = tuple(Weekday)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_EPOCH_NAIVE = datetime(1970, 1, 1)
_DAY_SECONDS = 86_400
_START = attrgetter("start")


@dataclass(frozen=True, slots=True)
class Interval:
    """A span of busy time (appointment, hold, external calendar event); aware datetimes."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Slot:
    """A bookable appointment time; ``start``/``end`` are aware UTC datetimes.

    ``hospital_id`` is where the doctor attends during that working block (None: the clinic).
    """

    doctor_id: str
    service_id: str
    start: datetime
    end: datetime
    hospital_id: str | None = None


class ProblemCode(StrEnum):
    """Why a requested time cannot be booked; stable codes the conversation layer can localize."""

    unknown_service = "unknown_service"
    unknown_doctor = "unknown_doctor"
    service_not_offered = "service_not_offered"
    in_past = "in_past"
    too_short_notice = "too_short_notice"
    beyond_horizon = "beyond_horizon"
    closed = "closed"
    outside_hours = "outside_hours"
    misaligned = "misaligned"
    busy = "busy"
    insurance_not_accepted = "insurance_not_accepted"


class BookingRules(StrEnum):
    """Whose rules judge a time; passed explicitly by each caller, never a global.

    ``policy`` is the clinic's booking policy (start tomorrow, minimum notice, horizon): what the
    AI receptionist offers patients on every channel. ``desk`` is the front desk's: staff book a
    walk-in or a same-day call for any free time from now on (today, no notice), within the same
    horizon, hours, closures, blocks and busy time.
    """

    policy = "policy"
    desk = "desk"


@dataclass(frozen=True, slots=True)
class SlotProblem:
    """A reason a slot is not bookable: a stable ``code`` and a short English ``message``."""

    code: ProblemCode
    message: str


def booking_window(
    clinic: Clinic, now: datetime, rules: BookingRules = BookingRules.policy
) -> tuple[date, date]:
    """First and last local day the rules allow, both inclusive.

    Starts today or tomorrow (``start_tomorrow``; the desk always today) and ends
    ``horizon_days`` after today.
    """
    today = now.astimezone(clinic.tz).date()
    policy = clinic.booking
    tomorrow = policy.start_tomorrow and rules is BookingRules.policy
    first = today + timedelta(days=1) if tomorrow else today
    return first, today + timedelta(days=policy.horizon_days)


def eligible_doctors(clinic: Clinic, service: Service) -> list[Doctor]:
    """Doctors who perform the service and have the seniority it requires."""
    return [
        doctor
        for doctor in clinic.doctors
        if service.id in doctor.services and doctor.qualification >= service.min_qualification
    ]


def closure_for(clinic: Clinic, day: date, doctor_id: str) -> Closure | None:
    """The closure (clinic-wide or the doctor's own) that covers this day, if any."""
    for closure in clinic.closures:
        if closure.covers(day, doctor_id):
            return closure
    return None


def free_slots(
    clinic: Clinic,
    service_id: str,
    *,
    now: datetime,
    busy: Mapping[str, Sequence[Interval]],
    first_day: date | None = None,
    last_day: date | None = None,
    doctor_ids: Collection[str] | None = None,
    min_notice: timedelta | None = None,
    days: Callable[[date], bool] | None = None,
    rules: BookingRules = BookingRules.policy,
) -> Iterator[Slot]:
    """Free slots for a service in chronological order (ties by doctor id), generated lazily.

    ``busy`` maps doctor id to busy intervals in any order, overlapping or not. The day window is
    clamped to the ``rules``' window; ``days`` can skip whole days cheaply (e.g. "not on Mondays").
    Raises ValueError for an unknown service or a naive ``now``: those are caller bugs.
    """
    batches = free_slots_by_day(
        clinic,
        service_id,
        now=now,
        busy=busy,
        first_day=first_day,
        last_day=last_day,
        doctor_ids=doctor_ids,
        min_notice=min_notice,
        days=days,
        rules=rules,
    )
    return (slot for _, slots in batches for slot in slots)


def free_slots_by_day(
    clinic: Clinic,
    service_id: str,
    *,
    now: datetime,
    busy: Mapping[str, Sequence[Interval]],
    first_day: date | None = None,
    last_day: date | None = None,
    doctor_ids: Collection[str] | None = None,
    min_notice: timedelta | None = None,
    days: Callable[[date], bool] | None = None,
    rules: BookingRules = BookingRules.policy,
) -> Iterator[tuple[date, list[Slot]]]:
    """Like `free_slots`, one local day at a time (days without any free slot are left out).

    A day is computed only when the caller asks for it, so stopping early saves the rest.
    """
    service = clinic.service(service_id)
    if service is None:
        raise ValueError(f"unknown service {service_id!r}")
    _require_aware(now, "now")
    doctors = eligible_doctors(clinic, service)
    if doctor_ids is not None:
        wanted = set(doctor_ids)
        doctors = [doctor for doctor in doctors if doctor.id in wanted]
    policy_first, policy_last = booking_window(clinic, now, rules)
    first = max(first_day, policy_first) if first_day else policy_first
    last = min(last_day, policy_last) if last_day else policy_last
    notice = _notice(clinic, min_notice, rules)
    earliest = math.ceil((now + notice).timestamp())
    return _generate(clinic, service, doctors, busy, first, last, earliest, days)


def check_slot(
    clinic: Clinic,
    *,
    doctor_id: str,
    service_id: str,
    start: datetime,
    now: datetime,
    busy: Mapping[str, Sequence[Interval]],
    min_notice: timedelta | None = None,
    rules: BookingRules = BookingRules.policy,
) -> SlotProblem | None:
    """Whether this doctor can see this service at ``start``; None if bookable, else why not.

    Agrees with `free_slots` under the same ``rules``: a time is bookable exactly when
    `free_slots` would offer it. A time already started is ``in_past`` under any rules.
    Insurance is a separate question: see `check_insurance`.
    """
    _require_aware(start, "start")
    _require_aware(now, "now")
    service = clinic.service(service_id)
    if service is None:
        return SlotProblem(ProblemCode.unknown_service, f"There is no service {service_id!r}.")
    doctor = clinic.doctor(doctor_id)
    if doctor is None:
        return SlotProblem(ProblemCode.unknown_doctor, f"There is no doctor {doctor_id!r}.")
    if service.id not in doctor.services:
        return SlotProblem(
            ProblemCode.service_not_offered, f"{doctor.name} does not perform this service."
        )
    if doctor.qualification < service.min_qualification:
        return SlotProblem(
            ProblemCode.service_not_offered,
            f"This service needs a more senior doctor than {doctor.name}.",
        )
    if start < now:
        return SlotProblem(ProblemCode.in_past, "That time has already passed.")
    first, last = booking_window(clinic, now, rules)
    tz = clinic.tz
    local = start.astimezone(tz)
    day = local.date()
    notice = _notice(clinic, min_notice, rules)
    if day < first or start < now + notice:
        if day < first:
            message = "Appointments can be booked from tomorrow on."
        else:
            message = f"Appointments need {_say_duration(notice)} of notice."
        return SlotProblem(ProblemCode.too_short_notice, message)
    if day > last:
        return SlotProblem(
            ProblemCode.beyond_horizon,
            f"Appointments can be booked up to {clinic.booking.horizon_days} days ahead.",
        )
    closure = closure_for(clinic, day, doctor.id)
    if closure is not None:
        reason = f" ({closure.reason})" if closure.reason else ""
        return SlotProblem(ProblemCode.closed, f"Closed on {day.isoformat()}{reason}.")
    duration = service.duration_minutes * 60
    wall = local.replace(tzinfo=None)
    wall_start = _wall_seconds(wall)
    wall_end = wall_start + duration
    day_wall = _day_wall(day)
    block = next(
        (
            b
            for b in doctor.working_hours.get(_WEEKDAYS[day.weekday()], ())
            if day_wall + _tod(b.start) <= wall_start and wall_end <= day_wall + _tod(b.end)
        ),
        None,
    )
    if block is None:
        return SlotProblem(ProblemCode.outside_hours, f"{doctor.name} does not work then.")
    for pause in block.breaks:
        if day_wall + _tod(pause.start) < wall_end and wall_start < day_wall + _tod(pause.end):
            return SlotProblem(
                ProblemCode.outside_hours,
                f"{doctor.name} has a break from {pause.start:%H:%M} to {pause.end:%H:%M}.",
            )
    step = doctor.slot_minutes * 60
    if local.microsecond or (wall_start - day_wall - _tod(block.start)) % step:
        return SlotProblem(
            ProblemCode.misaligned,
            f"{doctor.name}'s appointments start every {doctor.slot_minutes} minutes "
            f"from {block.start:%H:%M}.",
        )
    instant = int(start.timestamp())
    on_grid = _block_slots(day_wall, block, step, duration, _day_offset(tz, day), tz, [], 0)
    if all(s != instant for s, _ in on_grid):
        return SlotProblem(ProblemCode.outside_hours, "The clock changes then; pick another time.")
    end = instant + duration
    for interval in busy.get(doctor.id, ()):
        if interval.start.timestamp() < end and instant < interval.end.timestamp():
            return SlotProblem(ProblemCode.busy, f"{doctor.name} is not free then.")
    return None


def check_insurance(
    clinic: Clinic, insurance_id: str, doctor_id: str, service_id: str
) -> SlotProblem | None:
    """None if the convênio covers this service with this doctor, else `insurance_not_accepted`."""
    if clinic.accepts(insurance_id, doctor_id, service_id):
        return None
    return SlotProblem(
        ProblemCode.insurance_not_accepted,
        "That health plan does not cover this service with this doctor.",
    )


# The generator


def _generate(
    clinic: Clinic,
    service: Service,
    doctors: list[Doctor],
    busy: Mapping[str, Sequence[Interval]],
    first: date,
    last: date,
    earliest: int,
    days: Callable[[date], bool] | None,
) -> Iterator[tuple[date, list[Slot]]]:
    tz = clinic.tz
    duration = service.duration_minutes * 60
    service_id = service.id
    cursors: dict[str, _BusyCursor] = {}
    day = first
    one_day = timedelta(days=1)
    while day <= last:
        current, day = day, day + one_day
        if days is not None and not days(current):
            continue
        weekday = _WEEKDAYS[current.weekday()]
        working = [
            (doctor, blocks)
            for doctor in doctors
            if (blocks := doctor.working_hours.get(weekday))
            and closure_for(clinic, current, doctor.id) is None
        ]
        if not working:
            continue
        day_wall = _day_wall(current)
        offset = _day_offset(tz, current)
        lo = _local_to_utc(tz, day_wall)
        hi = _local_to_utc(tz, day_wall + _DAY_SECONDS)
        if hi <= earliest:
            continue
        lo_dt = datetime.fromtimestamp(lo, UTC)
        hi_dt = datetime.fromtimestamp(hi, UTC)
        found: list[tuple[int, str, int, str | None]] = []
        for doctor, blocks in working:
            cursor = cursors.get(doctor.id)
            if cursor is None:
                cursor = cursors[doctor.id] = _BusyCursor(busy.get(doctor.id, ()))
            taken = cursor.between(lo_dt, hi_dt)
            step = doctor.slot_minutes * 60
            for block in blocks:
                for s, e in _block_slots(
                    day_wall, block, step, duration, offset, tz, taken, earliest
                ):
                    found.append((s, doctor.id, e, block.hospital))
        if found:
            found.sort()
            yield (
                current,
                [
                    Slot(doctor_id, service_id, _utc(s), _utc(e), hospital)
                    for s, doctor_id, e, hospital in found
                ],
            )


def _block_slots(
    day_wall: int,
    block: WorkingDay,
    step: int,
    duration: int,
    offset: int | None,
    tz: ZoneInfo,
    taken: list[tuple[int, int]],
    earliest: int,
) -> list[tuple[int, int]]:
    """Free (start, end) POSIX seconds on one working block's grid, in order.

    ``offset`` is the day's constant UTC offset, or None on a clock-change day: then each start is
    converted on its own, starts or ends that do not exist locally are skipped, and so is a slot
    whose real length differs from the service duration (the repeated hour is used once).
    """
    block_start = day_wall + _tod(block.start)
    block_end = day_wall + _tod(block.end)
    if offset is None:
        return _clock_change_slots(
            block_start, block_end, block, day_wall, step, duration, tz, taken, earliest
        )
    start = block_start - offset
    last_start = block_end - offset - duration
    obstacles = taken
    if block.breaks:
        pauses = [
            (day_wall + _tod(p.start) - offset, day_wall + _tod(p.end) - offset)
            for p in block.breaks
        ]
        obstacles = sorted(pauses + taken)
    s = start if earliest <= start else start - ((start - earliest) // step) * step
    free: list[tuple[int, int]] = []
    j, count = 0, len(obstacles)
    while s <= last_start:
        e = s + duration
        while j < count and obstacles[j][1] <= s:
            j += 1
        if j < count and obstacles[j][0] < e:
            s = start - ((start - obstacles[j][1]) // step) * step
            continue
        free.append((s, e))
        s += step
    return free


def _clock_change_slots(
    block_start: int,
    block_end: int,
    block: WorkingDay,
    day_wall: int,
    step: int,
    duration: int,
    tz: ZoneInfo,
    taken: list[tuple[int, int]],
    earliest: int,
) -> list[tuple[int, int]]:
    breaks = [(day_wall + _tod(p.start), day_wall + _tod(p.end)) for p in block.breaks]
    free: list[tuple[int, int]] = []
    for wall in range(block_start, block_end - duration + 1, step):
        wall_end = wall + duration
        if any(b0 < wall_end and wall < b1 for b0, b1 in breaks):
            continue
        s = _existing_local_to_utc(tz, wall)
        e = _existing_local_to_utc(tz, wall_end)
        if s is None or e is None or e - s != duration or s < earliest:
            continue
        if any(b0 < e and s < b1 for b0, b1 in taken):
            continue
        free.append((s, e))
    return free


class _BusyCursor:
    """One doctor's busy intervals, walked day by day in order, so a request that stops after a
    few days never converts the rest. Input may be unsorted and overlapping; UTC datetimes (as
    the store returns them) compare fastest, other timezones are equally correct."""

    __slots__ = ("_items", "_next", "_open")

    def __init__(self, intervals: Sequence[Interval]) -> None:
        self._items = sorted(intervals, key=_START)
        self._next = 0
        self._open: list[tuple[int, int]] = []

    def between(self, lo: datetime, hi: datetime) -> list[tuple[int, int]]:
        """Busy (start, end) seconds overlapping [lo, hi), sorted by start.

        Calls must not go back in time: what ended before ``lo`` is dropped for good.
        """
        floor = math.floor(lo.timestamp())
        taken = [span for span in self._open if span[1] > floor]
        items, i, count = self._items, self._next, len(self._items)
        while i < count and items[i].start < hi:
            interval = items[i]
            i += 1
            if interval.end > lo:
                start = math.floor(interval.start.timestamp())
                taken.append((start, math.ceil(interval.end.timestamp())))
        taken.sort()  # already in order unless wall-clock sorting met a repeated hour
        self._next = i
        self._open = taken
        return taken


# Time arithmetic


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment!r}")


def _notice(clinic: Clinic, min_notice: timedelta | None, rules: BookingRules) -> timedelta:
    """An explicit ``min_notice`` wins; else the policy's notice, none at the desk."""
    if min_notice is not None:
        return min_notice
    if rules is BookingRules.desk:
        return timedelta(0)
    return timedelta(minutes=clinic.booking.min_notice_minutes)


def _say_duration(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour" + ("s" if hours != 1 else "")
    return f"{minutes} minutes"


def _tod(moment: time | datetime) -> int:
    """Seconds since local midnight."""
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def _day_wall(day: date) -> int:
    """Local midnight of ``day`` as wall-clock seconds (naive POSIX-like seconds)."""
    return (day.toordinal() - _EPOCH_ORDINAL) * _DAY_SECONDS


def _wall_seconds(wall: datetime) -> int:
    return _day_wall(wall.date()) + _tod(wall)


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _day_offset(tz: ZoneInfo, day: date) -> int | None:
    """The UTC offset (seconds) that holds for the whole local day, or None on a clock-change day.

    Midnight at both ends, with both folds: any transition inside the day or at its edges makes
    them differ.
    """
    midnight = datetime(day.year, day.month, day.day)
    next_midnight = midnight + timedelta(days=1)
    offsets = {
        tz.utcoffset(moment.replace(fold=fold))
        for moment in (midnight, next_midnight)
        for fold in (0, 1)
    }
    if len(offsets) != 1:
        return None
    (offset,) = offsets
    return int(offset.total_seconds()) if offset is not None else 0


def _local_to_utc(tz: ZoneInfo, wall: int) -> int:
    """Wall-clock seconds to POSIX seconds (first occurrence; a gap maps past it)."""
    naive = _EPOCH_NAIVE + timedelta(seconds=wall)
    return int(naive.replace(tzinfo=tz).timestamp())


def _existing_local_to_utc(tz: ZoneInfo, wall: int) -> int | None:
    """Like `_local_to_utc`, but None for a wall time skipped by a spring-forward change."""
    naive = _EPOCH_NAIVE + timedelta(seconds=wall)
    seconds = int(naive.replace(tzinfo=tz).timestamp())
    if datetime.fromtimestamp(seconds, tz).replace(tzinfo=None) != naive:
        return None
    return seconds
