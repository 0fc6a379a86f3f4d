"""Cron schedules (spec.schedule of a ResilienceCheck), evaluated in UTC.

The classic five fields - minute, hour, day of month, month, day of week - with `*`,
lists `a,b`, ranges `a-b`, steps `*/n` and `a-b/n`, names JAN-DEC and SUN-SAT (any
case; 0 and 7 are both Sunday), and the macros @yearly (@annually), @monthly, @weekly,
@daily (@midnight) and @hourly. As in Vixie cron: a step needs `*` or a range (`5/10`
is refused rather than guessed at), and when both day fields are restricted a day
matches if either one does; a day field that starts with `*` (also `*/2`) counts as
unrestricted, so the other alone decides.

Impossible dates (`0 0 30 2 *`, `0 0 31 4,6,9,11 *`) are refused by `Schedule.parse`,
not discovered at run time: a schedule that parses matches at least once every eight
years (29 February, which 2100 skips), so `next_after` always ends; its search is still
bounded and raises CronError past the bound rather than looping. Pure: no clock, no
time zones but UTC (no daylight-saving gaps or repeats to reason about).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from agentops.errors import InvalidField

FIELD = "spec.schedule"

MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
# Spelled out: calendar.month_abbr follows the process's locale.
MONTH_NAMES = {name: i + 1 for i, name in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())}
DAY_NAMES = {name: i for i, name in enumerate("SUN MON TUE WED THU FRI SAT".split())}
# (name, lowest, highest, names) per field, in the order they are written.
FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day-of-month", 1, 31, {}),
    ("month", 1, 12, MONTH_NAMES), ("day-of-week", 0, 7, DAY_NAMES))
# Eight years of days and then some: the longest gap between two matches of a schedule
# that parses is 29 February across 2100 (2096-02-29 to 2104-02-29).
SEARCH_DAYS = 9 * 366


class CronError(InvalidField):
    """spec.schedule is not a cron expression this parser accepts; the message says why."""

    def __init__(self, problem: str) -> None:
        super().__init__(FIELD, problem)


def _value(token: str, field: str, low: int, high: int, names: dict[str, int]) -> int:
    if token.upper() in names:
        return names[token.upper()]
    if not (token.isascii() and token.isdigit()):
        allowed = f" or {next(iter(names))}-{list(names)[-1]}" if names else ""
        raise CronError(f"{field} field has '{token}', which is not a number {low}-{high}{allowed}")
    number = int(token)
    if not low <= number <= high:
        raise CronError(f"{field} field '{token}' is out of range {low}-{high}")
    return number


def _field(text: str, field: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for term in text.split(","):
        span, slash, step_text = term.partition("/")
        step = 1
        if slash:
            if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
                raise CronError(f"{field} field '{term}' has step '{step_text}': a step is a whole number of at least 1")
            step = int(step_text)
        if span == "*":
            first, last = low, high
        elif "-" in span:
            start, _, end = span.partition("-")
            first, last = _value(start, field, low, high, names), _value(end, field, low, high, names)
            if first > last:
                raise CronError(f"{field} field '{term}' has a range that runs backwards")
        elif slash:
            raise CronError(f"{field} field '{term}': a step applies to '*' or a range, e.g. */{step} or {span}-{high}/{step}")
        else:
            first = last = _value(span, field, low, high, names)
        values.update(range(first, last + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: the matching values of each field, and its source text."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday .. 6 = Saturday (7 folded into 0)
    days_restricted: bool  # the day-of-month field does not start with '*'
    weekdays_restricted: bool

    @classmethod
    def parse(cls, text: str) -> Schedule:
        source = text.strip()
        expanded = MACROS.get(source, source)
        if expanded.startswith("@"):
            raise CronError(f"'{source}' is not a known macro; allowed: {', '.join(MACROS)}")
        parts = expanded.split()
        if len(parts) != 5:
            raise CronError(f"'{source}' has {len(parts)} fields; a schedule has five (minute hour day-of-month "
                            f"month day-of-week) or is one of {', '.join(MACROS)}")
        minutes, hours, days, months, weekdays = (_field(part, *spec) for part, spec in zip(parts, FIELDS))
        schedule = cls(source, minutes, hours, days, months, frozenset(d % 7 for d in weekdays),
                       days_restricted=not parts[2].startswith("*"), weekdays_restricted=not parts[4].startswith("*"))
        if schedule.days_restricted and not schedule.weekdays_restricted and not any(
                day <= calendar.monthrange(2000, month)[1] for month in months for day in days):  # 2000: a leap year
            raise CronError(f"'{source}' names no day that exists: day-of-month {parts[2]} never falls in month {parts[3]}")
        return schedule

    def __str__(self) -> str:
        return self.text

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom, dow = day.day in self.days, day.isoweekday() % 7 in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return dom or dow
        return dom and dow

    def next_after(self, moment: datetime) -> datetime:
        """The first matching minute strictly after `moment` (timezone-aware), in UTC."""
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"next_after needs a timezone-aware moment, got {moment!r}")
        start = moment.astimezone(timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=1)
        day, earliest = start.date(), start.time()
        for _ in range(SEARCH_DAYS):
            if self.matches_day(day):
                for hour in sorted(h for h in self.hours if h >= earliest.hour):
                    floor = earliest.minute if hour == earliest.hour else 0
                    minute = min((m for m in self.minutes if m >= floor), default=None)
                    if minute is not None:
                        return datetime.combine(day, time(hour, minute), tzinfo=timezone.utc)
            if day == date.max:
                break
            day, earliest = day + timedelta(days=1), time(0, 0)
        raise CronError(f"'{self.text}' matches no minute within {SEARCH_DAYS} days after {start.isoformat()}")
