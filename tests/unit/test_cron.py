"""agentops.cron: spec.schedule of a ResilienceCheck, against a brute-force reference.

The reference below reads the expression text itself, term by term, and walks the
calendar a minute at a time: it shares no code with the parser, so the two agreeing
over thousands of random expressions and moments says more than examples alone.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from agentops.cron import MACROS, SEARCH_DAYS, CronError, Schedule
from agentops.errors import AgentOpsError, InvalidField

UTC = timezone.utc
REPO_ROOT = Path(__file__).resolve().parents[2]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def nexts(expression: str, start: str, count: int = 3) -> list[str]:
    schedule, moment, out = Schedule.parse(expression), at(start), []
    for _ in range(count):
        moment = schedule.next_after(moment)
        out.append(moment.strftime("%Y-%m-%d %H:%M %a"))
    return out


# --- every syntax form ---


@pytest.mark.parametrize(("expression", "start", "expected"), [
    ("* * * * *", "2024-05-01 10:00:30", ["2024-05-01 10:01 Wed", "2024-05-01 10:02 Wed", "2024-05-01 10:03 Wed"]),
    ("7 * * * *", "2024-05-01 10:07", ["2024-05-01 11:07 Wed", "2024-05-01 12:07 Wed", "2024-05-01 13:07 Wed"]),
    ("0,30 * * * *", "2024-05-01 10:10", ["2024-05-01 10:30 Wed", "2024-05-01 11:00 Wed", "2024-05-01 11:30 Wed"]),
    ("10-12 8 * * *", "2024-05-01 08:11", ["2024-05-01 08:12 Wed", "2024-05-02 08:10 Thu", "2024-05-02 08:11 Thu"]),
    ("*/20 * * * *", "2024-05-01 10:41", ["2024-05-01 11:00 Wed", "2024-05-01 11:20 Wed", "2024-05-01 11:40 Wed"]),
    ("5-50/20 * * * *", "2024-05-01 10:46", ["2024-05-01 11:05 Wed", "2024-05-01 11:25 Wed", "2024-05-01 11:45 Wed"]),
    ("0 */8 * * *", "2024-05-01 17:00", ["2024-05-02 00:00 Thu", "2024-05-02 08:00 Thu", "2024-05-02 16:00 Thu"]),
    ("0 0 1,15 * *", "2024-05-01 00:00", ["2024-05-15 00:00 Wed", "2024-06-01 00:00 Sat", "2024-06-15 00:00 Sat"]),
    ("0 0 1 JAN,jul *", "2024-05-01 00:00", ["2024-07-01 00:00 Mon", "2025-01-01 00:00 Wed", "2025-07-01 00:00 Tue"]),
    ("0 0 1 Feb-Apr *", "2024-03-05 00:00", ["2024-04-01 00:00 Mon", "2025-02-01 00:00 Sat", "2025-03-01 00:00 Sat"]),
    ("0 0 * * MON-FRI", "2024-05-03 12:00", ["2024-05-06 00:00 Mon", "2024-05-07 00:00 Tue", "2024-05-08 00:00 Wed"]),
    ("0 0 * * sat,Sun", "2024-05-01 00:00", ["2024-05-04 00:00 Sat", "2024-05-05 00:00 Sun", "2024-05-11 00:00 Sat"]),
    ("0 0 * * 7", "2024-05-01 00:00", ["2024-05-05 00:00 Sun", "2024-05-12 00:00 Sun", "2024-05-19 00:00 Sun"]),
    ("0 0 * * 5-7", "2024-05-01 00:00", ["2024-05-03 00:00 Fri", "2024-05-04 00:00 Sat", "2024-05-05 00:00 Sun"]),
    ("0 0 * * */3", "2024-05-01 00:00", ["2024-05-04 00:00 Sat", "2024-05-05 00:00 Sun", "2024-05-08 00:00 Wed"]),
    ("0 12 * 2 0-2/2", "2024-02-01 00:00", ["2024-02-04 12:00 Sun", "2024-02-06 12:00 Tue", "2024-02-11 12:00 Sun"]),
    ("  15 6 * * *\t", "2024-05-01 00:00", ["2024-05-01 06:15 Wed", "2024-05-02 06:15 Thu", "2024-05-03 06:15 Fri"]),
    ("@yearly", "2024-05-01 00:00", ["2025-01-01 00:00 Wed", "2026-01-01 00:00 Thu", "2027-01-01 00:00 Fri"]),
    ("@annually", "2024-12-31 23:59", ["2025-01-01 00:00 Wed", "2026-01-01 00:00 Thu", "2027-01-01 00:00 Fri"]),
    ("@monthly", "2024-01-31 12:00", ["2024-02-01 00:00 Thu", "2024-03-01 00:00 Fri", "2024-04-01 00:00 Mon"]),
    ("@weekly", "2024-05-05 00:00", ["2024-05-12 00:00 Sun", "2024-05-19 00:00 Sun", "2024-05-26 00:00 Sun"]),
    ("@daily", "2024-05-01 00:00", ["2024-05-02 00:00 Thu", "2024-05-03 00:00 Fri", "2024-05-04 00:00 Sat"]),
    ("@midnight", "2024-05-01 23:59:59", ["2024-05-02 00:00 Thu", "2024-05-03 00:00 Fri", "2024-05-04 00:00 Sat"]),
    ("@hourly", "2024-05-01 10:00", ["2024-05-01 11:00 Wed", "2024-05-01 12:00 Wed", "2024-05-01 13:00 Wed"]),
])
def test_forms_and_macros(expression: str, start: str, expected: list[str]) -> None:
    assert nexts(expression, start) == expected


@pytest.mark.parametrize("macro", MACROS)
def test_macros_are_their_five_fields(macro: str) -> None:
    assert replace(Schedule.parse(macro), text="") == replace(Schedule.parse(MACROS[macro]), text="")


def test_str_is_the_source_text() -> None:
    assert str(Schedule.parse("*/5 * * * MON-FRI")) == "*/5 * * * MON-FRI"
    assert str(Schedule.parse("@daily")) == "@daily"
    assert str(Schedule.parse(" 0 3 * * * ")) == "0 3 * * *"  # without the blanks around it


# --- edge cases ---


def test_strictly_after_and_truncated_to_the_minute() -> None:
    every = Schedule.parse("* * * * *")
    assert every.next_after(at("2024-05-01 10:00:00")) == at("2024-05-01 10:01")
    assert every.next_after(at("2024-05-01 10:00:59.999999")) == at("2024-05-01 10:01")
    result = every.next_after(at("2024-05-01 10:00:01"))
    assert result.tzinfo == UTC and result.second == 0 and result.microsecond == 0


def test_end_of_month_year_and_day_31() -> None:
    assert nexts("59 23 31 * *", "2024-01-31 23:59") == ["2024-03-31 23:59 Sun", "2024-05-31 23:59 Fri", "2024-07-31 23:59 Wed"]
    assert nexts("0 0 1 * *", "2024-12-31 23:59") == ["2025-01-01 00:00 Wed", "2025-02-01 00:00 Sat", "2025-03-01 00:00 Sat"]
    assert nexts("0 0 28-31 2 *", "2023-02-27 00:00", 4) == [
        "2023-02-28 00:00 Tue", "2024-02-28 00:00 Wed", "2024-02-29 00:00 Thu", "2025-02-28 00:00 Fri"]


def test_leap_day_skips_2100() -> None:
    assert nexts("0 0 29 2 *", "2024-03-01 00:00") == ["2028-02-29 00:00 Tue", "2032-02-29 00:00 Sun", "2036-02-29 00:00 Fri"]
    # 2100 is not a leap year (divisible by 100, not by 400): eight years to the next.
    assert Schedule.parse("0 0 29 2 *").next_after(at("2096-03-01 00:00")) == at("2104-02-29 00:00")


def test_moments_in_other_zones_are_read_in_utc() -> None:
    """DST does not exist in UTC: the moment is converted, the answer is in UTC."""
    cest = timezone(timedelta(hours=2))
    # 02:30 CEST on the day Europe leaves summer time is 00:30 UTC.
    assert Schedule.parse("0 1 * * *").next_after(datetime(2024, 10, 27, 2, 30, tzinfo=cest)) == at("2024-10-27 01:00")
    # Every hour exists once in UTC, including the hours a local clock skips or repeats.
    hourly = Schedule.parse("@hourly")
    moment, seen = at("2024-03-31 00:00"), []
    for _ in range(4):
        moment = hourly.next_after(moment)
        seen.append(moment.hour)
    assert seen == [1, 2, 3, 4]


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Schedule.parse("@hourly").next_after(datetime(2024, 5, 1))


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    # The 13th, or any Friday (Vixie cron): not only Friday the 13th.
    assert nexts("0 0 13 * FRI", "2024-09-01 00:00", 4) == [
        "2024-09-06 00:00 Fri", "2024-09-13 00:00 Fri", "2024-09-20 00:00 Fri", "2024-09-27 00:00 Fri"]
    assert nexts("0 0 13 * FRI", "2024-10-01 00:00", 2) == ["2024-10-04 00:00 Fri", "2024-10-11 00:00 Fri"]
    assert nexts("0 0 13 * FRI", "2024-10-11 00:00", 2) == ["2024-10-13 00:00 Sun", "2024-10-18 00:00 Fri"]
    # A day field that starts with '*' is unrestricted, even with a step: then both must match.
    assert nexts("0 0 */2 * FRI", "2024-09-01 00:00", 3) == ["2024-09-13 00:00 Fri", "2024-09-27 00:00 Fri", "2024-10-11 00:00 Fri"]
    assert nexts("0 0 1 * *", "2024-09-02 00:00", 1) == ["2024-10-01 00:00 Tue"]
    # With the OR rule an impossible day of month is fine: the weekdays still match.
    assert nexts("0 0 30 2 MON", "2024-02-01 00:00", 2) == ["2024-02-05 00:00 Mon", "2024-02-12 00:00 Mon"]


def test_steps_in_ranges_start_at_the_range() -> None:
    schedule = Schedule.parse("3-20/5 1-23/11 2-31/10 2-12/5 1-5/2")
    assert sorted(schedule.minutes) == [3, 8, 13, 18]
    assert sorted(schedule.hours) == [1, 12, 23]
    assert sorted(schedule.days) == [2, 12, 22]
    assert sorted(schedule.months) == [2, 7, 12]
    assert sorted(schedule.weekdays) == [1, 3, 5]
    assert sorted(Schedule.parse("*/40 * * * *").minutes) == [0, 40]
    assert sorted(Schedule.parse("0 0 * * */7").weekdays) == [0]  # 0 and 7 are one Sunday


# --- errors name the field ---


@pytest.mark.parametrize(("expression", "message"), [
    ("61 * * * *", "spec.schedule: minute field '61' is out of range 0-59"),
    ("* 24 * * *", "spec.schedule: hour field '24' is out of range 0-23"),
    ("* * 0 * *", "spec.schedule: day-of-month field '0' is out of range 1-31"),
    ("* * 32 * *", "spec.schedule: day-of-month field '32' is out of range 1-31"),
    ("* * * 13 *", "spec.schedule: month field '13' is out of range 1-12"),
    ("* * * * 8", "spec.schedule: day-of-week field '8' is out of range 0-7"),
    ("* * * JANUARY *", "spec.schedule: month field has 'JANUARY', which is not a number 1-12 or JAN-DEC"),
    ("* * * * FUN", "spec.schedule: day-of-week field has 'FUN', which is not a number 0-7 or SUN-SAT"),
    ("* * * * MON-FRI-SAT", "spec.schedule: day-of-week field has 'FRI-SAT', which is not a number 0-7 or SUN-SAT"),
    ("x * * * *", "spec.schedule: minute field has 'x', which is not a number 0-59"),
    ("-5 * * * *", "spec.schedule: minute field has '', which is not a number 0-59"),
    ("1,,2 * * * *", "spec.schedule: minute field has '', which is not a number 0-59"),
    ("\u00b2 * * * *", "spec.schedule: minute field has '\u00b2', which is not a number 0-59"),
    ("30-10 * * * *", "spec.schedule: minute field '30-10' has a range that runs backwards"),
    ("* * * DEC-JAN *", "spec.schedule: month field 'DEC-JAN' has a range that runs backwards"),
    ("*/0 * * * *", "spec.schedule: minute field '*/0' has step '0': a step is a whole number of at least 1"),
    ("*/x * * * *", "spec.schedule: minute field '*/x' has step 'x': a step is a whole number of at least 1"),
    ("1-5/ * * * *", "spec.schedule: minute field '1-5/' has step '': a step is a whole number of at least 1"),
    ("5/10 * * * *", "spec.schedule: minute field '5/10': a step applies to '*' or a range, e.g. */10 or 5-59/10"),
    ("* * * *", "spec.schedule: '* * * *' has 4 fields; a schedule has five"),
    ("* * * * * *", "spec.schedule: '* * * * * *' has 6 fields; a schedule has five"),
    ("", "spec.schedule: '' has 0 fields; a schedule has five"),
    ("@reboot", "spec.schedule: '@reboot' is not a known macro; allowed: @yearly, @annually"),
    ("@Daily", "spec.schedule: '@Daily' is not a known macro"),
    ("0 0 30 2 *", "spec.schedule: '0 0 30 2 *' names no day that exists: day-of-month 30 never falls in month 2"),
    ("0 0 31 4,6,9,11 *", "spec.schedule: '0 0 31 4,6,9,11 *' names no day that exists"),
    ("0 0 30-31 FEB *", "names no day that exists"),
])
def test_errors_name_the_field_and_what_is_allowed(expression: str, message: str) -> None:
    with pytest.raises(CronError) as info:
        Schedule.parse(expression)
    assert message in str(info.value)
    assert isinstance(info.value, InvalidField) and isinstance(info.value, AgentOpsError)
    assert info.value.field == "spec.schedule"


def test_the_search_is_bounded() -> None:
    """parse refuses what never matches; a Schedule made by hand still cannot loop."""
    never = Schedule("0 0 30 2 *", frozenset({0}), frozenset({0}), frozenset({30}), frozenset({2}),
                     frozenset(range(7)), days_restricted=True, weekdays_restricted=False)
    with pytest.raises(CronError, match=f"matches no minute within {SEARCH_DAYS} days"):
        never.next_after(at("2024-01-01 00:00"))
    with pytest.raises(CronError):
        Schedule.parse("@yearly").next_after(datetime.max.replace(tzinfo=UTC) - timedelta(days=2))


# --- the CRD's pattern and the parser accept the same syntax ---


def crd_pattern() -> re.Pattern[str]:
    crd = yaml.safe_load((REPO_ROOT / "crds" / "resiliencecheck.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return re.compile(spec["properties"]["schedule"]["pattern"])


@pytest.mark.parametrize("text", ["5/10 * * * *", "* * * *", "@reboot", "*/5,, * * * *", "1-2-3 * * * *", "* * * * * *",
                                  "every 5 minutes", "*/-1 * * * *", "-1 * * * *", "* * * * 1/2"])
def test_what_the_pattern_refuses_the_parser_refuses(text: str) -> None:
    assert crd_pattern().search(text) is None
    with pytest.raises(CronError):
        Schedule.parse(text)


# --- against a brute-force reference ---


NAMES = {3: "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 4: "SUN MON TUE WED THU FRI SAT".split()}
BOUNDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def reference_term_matches(term: str, value: int, index: int) -> bool:
    """Does `value` match one term, read straight from the text (names, ranges, steps)?"""
    low, high = BOUNDS[index]

    def number(token: str) -> int:
        names = NAMES.get(index, [])
        return names.index(token.upper()) + (1 if index == 3 else 0) if token.upper() in names else int(token)

    body, _, step = term.partition("/")
    first, last = (low, high) if body == "*" else (number(body.split("-")[0]), number(body.split("-")[-1]))
    candidates = range(first, last + 1, int(step or 1))
    if index == 4:  # Sunday is 0 and 7
        return value in candidates or (value == 0 and 7 in candidates)
    return value in candidates


def reference_day_matches(fields: list[str], day: datetime) -> bool:
    def field(i: int, value: int) -> bool:
        return any(reference_term_matches(term, value, i) for term in fields[i].split(","))

    dom, dow = field(2, day.day), field(4, day.isoweekday() % 7)
    both_restricted = not fields[2].startswith("*") and not fields[4].startswith("*")
    return field(3, day.month) and ((dom or dow) if both_restricted else (dom and dow))


def reference_matches(fields: list[str], moment: datetime) -> bool:
    return (reference_day_matches(fields, moment) and any(reference_term_matches(t, moment.hour, 1) for t in fields[1].split(","))
            and any(reference_term_matches(t, moment.minute, 0) for t in fields[0].split(",")))


def reference_next(expression: str, moment: datetime, horizon: timedelta) -> datetime | None:
    """Minute after minute, up to `horizon`; a day whose date does not match is stepped over whole."""
    fields = MACROS.get(expression, expression).split()
    t = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while t <= moment + horizon:
        if not reference_day_matches(fields, t):
            t = (t + timedelta(days=1)).replace(hour=0, minute=0)
        elif reference_matches(fields, t):
            return t
        else:
            t += timedelta(minutes=1)
    return None


def random_field(rng: random.Random, index: int) -> str:
    low, high = BOUNDS[index]

    def value(lo: int = low, hi: int = high) -> str:
        n = rng.randint(lo, hi)
        if index in NAMES and rng.random() < 0.3 and n < len(NAMES[index]) + (1 if index == 3 else 0):
            name = NAMES[index][n - 1 if index == 3 else n]
            return rng.choice([name, name.lower(), name.title()])
        return str(n)

    def term() -> str:
        kind = rng.choice(["star", "value", "range", "step", "rangestep"])
        if kind == "star":
            return "*"
        if kind == "value":
            return value()
        a = rng.randint(low, high)
        b = rng.randint(a, high)
        if kind == "range":
            return f"{a}-{b}"
        if kind == "step":
            return f"*/{rng.randint(1, high - low + 2)}"
        return f"{a}-{b}/{rng.randint(1, high - low + 2)}"

    if rng.random() < 0.35:
        return "*"
    return ",".join(term() for _ in range(rng.choice([1, 1, 1, 2, 3])))


def random_expression(rng: random.Random) -> str:
    if rng.random() < 0.05:
        return rng.choice(list(MACROS))
    return " ".join(random_field(rng, i) for i in range(5))


def test_agrees_with_the_reference_on_random_expressions() -> None:
    rng = random.Random(20240229)
    # A horizon long enough for most expressions, short enough to walk minute by minute
    # (days that cannot match are stepped over whole).
    horizon = timedelta(days=400)
    pattern = crd_pattern()
    checked = refused = 0
    while checked < 2000:
        expression = random_expression(rng)
        try:
            schedule = Schedule.parse(expression)
        except CronError:
            refused += 1  # only impossible dates (30 February and kin) can be refused here
            with pytest.raises(CronError, match="names no day that exists"):
                Schedule.parse(expression)
            continue
        assert pattern.search(expression), f"the CRD's pattern refuses {expression!r}, which parses"
        moment = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 12 * 365 * 86400))
        expected = reference_next(expression, moment, horizon)
        got = schedule.next_after(moment)
        if expected is None:
            assert got > moment + horizon, (expression, moment)
        else:
            assert got == expected, (expression, moment)
        checked += 1
    assert refused < 200
