"""The socket's limits: frame size (1009) and flood control (`rate_limited`, then 1008).

The rate limiter's arithmetic is tested on a hand-driven clock (hours of
traffic in milliseconds, no sleeps); the socket tests flood a real consumer.
"""

import json

import pytest
from django.conf import settings

from tests.trips.test_consumer import QUIET_S, answers_echo, open_socket, receive
from trips.frame_limits import FLOOD_STRIKES, FrameRateLimiter

pytestmark = pytest.mark.django_db(transaction=True)

RATE, BURST = settings.WS_RATE_PER_S, settings.WS_RATE_BURST


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def send_steadily(limiter: FrameRateLimiter, clock: Clock, *, per_s: float, seconds: float):
    """Frames evenly spaced at `per_s` for `seconds`; the verdicts in order."""
    verdicts = []
    for _ in range(int(per_s * seconds)):
        clock.now += 1 / per_s
        verdicts.append(limiter.check())
    return verdicts


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limiter(clock) -> FrameRateLimiter:
    return FrameRateLimiter(RATE, BURST, clock=clock)


# --- the limiter, on a hand-driven clock -------------------------------------------


@pytest.mark.parametrize("per_s", [1, 20, RATE])
def test_an_app_sending_at_or_below_the_rate_is_never_limited(limiter, clock, per_s):
    verdicts = send_steadily(limiter, clock, per_s=per_s, seconds=3600)

    assert set(verdicts) == {FrameRateLimiter.ALLOW}


def test_twenty_frames_a_second_after_a_full_burst_is_never_limited(limiter, clock):
    # Given a client that just spent its whole burst at once.
    assert [limiter.check() for _ in range(int(BURST))] == [FrameRateLimiter.ALLOW] * int(BURST)

    # When it goes on at 20 frames a second for an hour, then all is allowed.
    assert set(send_steadily(limiter, clock, per_s=20, seconds=3600)) == {FrameRateLimiter.ALLOW}


def test_a_burst_past_the_bucket_is_limited_not_closed(limiter, clock):
    verdicts = [limiter.check() for _ in range(int(BURST) + FLOOD_STRIKES)]

    assert verdicts.count(FrameRateLimiter.ALLOW) == BURST
    assert verdicts.count(FrameRateLimiter.LIMIT) == FLOOD_STRIKES
    assert FrameRateLimiter.CLOSE not in verdicts
    # And a second later the client is welcome again.
    clock.now += 1
    assert limiter.check() == FrameRateLimiter.ALLOW


def test_a_client_slightly_over_the_rate_is_limited_but_never_closed(limiter, clock):
    verdicts = send_steadily(limiter, clock, per_s=RATE + 5, seconds=3600)

    assert FrameRateLimiter.LIMIT in verdicts
    assert FrameRateLimiter.CLOSE not in verdicts


@pytest.mark.parametrize(("per_s", "closed_within_s"), [(100, 5), (200, 2), (10_000, 0.1)])
def test_a_sustained_flood_is_closed(limiter, clock, per_s, closed_within_s):
    verdicts = send_steadily(limiter, clock, per_s=per_s, seconds=closed_within_s)

    assert FrameRateLimiter.CLOSE in verdicts
    first_close = verdicts.index(FrameRateLimiter.CLOSE)
    # Limited before closed: the client was told to slow down first.
    assert FrameRateLimiter.LIMIT in verdicts[:first_close]


def test_a_flood_that_the_old_reset_on_any_allowed_frame_never_closed(limiter, clock):
    # 500 frames a second lets a token through every few frames; strikes must
    # not be wiped by each one that passes.
    verdicts = send_steadily(limiter, clock, per_s=500, seconds=2)

    assert FrameRateLimiter.CLOSE in verdicts


def test_a_clock_going_backwards_grants_nothing(limiter, clock):
    for _ in range(int(BURST)):
        limiter.check()
    clock.now -= 100

    assert limiter.check() == FrameRateLimiter.LIMIT


# --- frame size -------------------------------------------------------------------


def _echo_frame_of_size(size: int, *, fill: str = "a") -> str:
    """A valid echo frame exactly `size` bytes long in UTF-8."""
    head, tail = '{"type": "echo.message", "data": "', '"}'
    room = size - len(head) - len(tail)
    per_char = len(fill.encode("utf-8"))
    body = fill * (room // per_char) + "a" * (room % per_char)
    frame = head + body + tail
    assert len(frame.encode("utf-8")) == size
    return frame


async def test_a_frame_of_exactly_the_limit_is_answered(ws_connect, rider):
    ws = await open_socket(ws_connect, rider)

    await ws.send_to(text_data=_echo_frame_of_size(settings.WS_MAX_FRAME_BYTES))

    reply = await receive(ws)
    assert reply["type"] == "echo.message"
    assert len(reply["data"]) > 60_000


@pytest.mark.parametrize("fill", ["a", "é", "\U0001f695"])
async def test_a_frame_one_byte_over_the_limit_closes_1009(ws_connect, rider, fill):
    ws = await open_socket(ws_connect, rider)

    await ws.send_to(text_data=_echo_frame_of_size(settings.WS_MAX_FRAME_BYTES + 1, fill=fill))

    assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 1009}
    # Frames already on their way are dropped, not answered.
    await ws.send_to(text_data=json.dumps({"type": "echo.message", "data": 1}))
    assert await ws.receive_nothing(timeout=QUIET_S)


async def test_a_binary_frame_over_the_limit_closes_1009(ws_connect, rider):
    ws = await open_socket(ws_connect, rider)

    await ws.send_to(bytes_data=b"x" * (settings.WS_MAX_FRAME_BYTES + 1))

    assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 1009}


# --- flood ------------------------------------------------------------------------


async def test_a_flood_is_rate_limited_then_closed_1008(ws_connect, rider, make_user):
    # Given a rider's socket, and another socket of the same rider.
    ws = await open_socket(ws_connect, rider)
    calm = await open_socket(ws_connect, rider)
    sent = int(BURST) + 10 * FLOOD_STRIKES

    # When it sends far more frames than the bucket holds, as fast as it can.
    for n in range(sent):
        await ws.send_to(text_data=json.dumps({"type": "echo.message", "data": n, "request_id": n}))

    # Then: echoes, then `rate_limited` errors (carrying the request_id), then 1008.
    replies = []
    while True:
        output = await ws.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            break
        replies.append(json.loads(output["text"]))
    assert output == {"type": "websocket.close", "code": 1008}
    echoes = [r for r in replies if r["type"] == "echo.message"]
    limited = [r for r in replies if r["type"] == "error"]
    assert len(echoes) + len(limited) == len(replies)
    assert BURST <= len(echoes) < sent
    assert len(limited) >= FLOOD_STRIKES
    assert all(r["data"]["code"] == "rate_limited" for r in limited)
    assert all(r["request_id"] == r["data"]["request_id"] for r in limited)
    assert replies[: int(BURST)] == [
        {"type": "echo.message", "data": n, "request_id": n} for n in range(int(BURST))
    ]
    # Nothing more after the close, though frames were still queued.
    assert await ws.receive_nothing(timeout=QUIET_S)
    # The user's other socket shares the budget but not the strikes: it is
    # still open, and answers once the bucket has a token again.
    assert await answers_echo(calm)
