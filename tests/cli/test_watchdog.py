"""The transport's watchdog: coarse deadlines fired by one task.

`Watchdog.arm` returns a `Timer` whose action runs in the watchdog's task once its delay
passed: never before, at most a tick (plus event-loop latency) after. A timer can be
cancelled before it fires, or expired to fire at the next tick. Timing checks take a lower
bound strictly and an upper bound generously (`LATE`), for a loaded 2-core machine; a
"never ran" is proven by a later timer that did fire, not by sleeping.

The last tests go through a real proxy: the waits the watchdog bounds there (the idle
timeout between requests, the request timeout while the upstream is silent) end no earlier
than configured. A client hanging up while the upstream is slow is covered by
test_modern_streams.py.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Final

import anyio
import pytest
from structlog.testing import capture_logs

from mcpr_cli.transport.watchdog import TICK, Timer, Watchdog
from tests.cli.stub_upstream import ReceivedRequest, Responder, stub_upstream
from tests.cli.wire import JSON, connect, rpc, run_proxy

#: Generous bound on how late a deadline may fire on a loaded machine (the tick and more).
LATE: Final = 1.0
#: Upper bound for waiting on something that must happen; only a bug ever reaches it.
WAIT: Final = 5.0


class Probe:
    """An action that records when it ran, and can be awaited."""

    def __init__(self, then: Callable[[], Awaitable[None]] | None = None) -> None:
        self.times: list[float] = []
        self.ran = anyio.Event()
        self._then = then

    async def __call__(self) -> None:
        self.times.append(anyio.current_time())
        self.ran.set()
        if self._then is not None:
            await self._then()

    async def wait(self) -> float:
        """Wait until the action ran; return when it did."""
        with anyio.fail_after(WAIT):
            await self.ran.wait()
        return self.times[0]


@asynccontextmanager
async def running(watchdog: Watchdog | None = None) -> AsyncIterator[Watchdog]:
    """Run a watchdog for the block (started for sure: a timer fired), then cancel it."""
    watchdog = Watchdog() if watchdog is None else watchdog
    async with anyio.create_task_group() as group:
        group.start_soon(watchdog.run)
        started = Probe()
        watchdog.arm(0, started)
        await started.wait()
        yield watchdog
        group.cancel_scope.cancel()


async def settle(watchdog: Watchdog, delay: float = 5 * TICK) -> None:
    """Wait for a fresh timer `delay` seconds out to fire: earlier deadlines fired by then."""
    probe = Probe()
    watchdog.arm(delay, probe)
    await probe.wait()


# -- firing --------------------------------------------------------------------------------


@pytest.mark.parametrize("delay", [0.0, 0.005, TICK, 0.03, 0.1])
async def test_action_runs_once_its_delay_passed_never_before(delay: float) -> None:
    """An armed action runs exactly once, no earlier than its delay and not much later."""
    async with running() as watchdog:
        probe = Probe()
        start = anyio.current_time()
        timer = watchdog.arm(delay, probe)
        assert not timer.fired
        fired_at = await probe.wait()
        assert timer.fired
        await settle(watchdog)
    assert fired_at >= start + delay
    assert fired_at < start + delay + LATE
    assert len(probe.times) == 1


async def test_timer_armed_before_run_fires_once_it_runs() -> None:
    """A timer armed while the watchdog is not running yet fires once it runs."""
    watchdog = Watchdog()
    probe = Probe()
    start = anyio.current_time()
    watchdog.arm(0.02, probe)
    async with running(watchdog):
        fired_at = await probe.wait()
    assert start + 0.02 <= fired_at < start + 0.02 + LATE


async def test_cancel_before_the_deadline_prevents_the_action() -> None:
    """A timer cancelled before its deadline never runs its action; fired stays False."""
    async with running() as watchdog:
        probe = Probe()
        timer = watchdog.arm(0.02, probe)
        timer.cancel()
        await settle(watchdog, 0.1)
        assert not probe.times
        assert not timer.fired


async def test_cancel_after_firing_is_a_no_op() -> None:
    """Cancelling a timer that already fired changes nothing: fired stays True, no rerun."""
    async with running() as watchdog:
        probe = Probe()
        timer = watchdog.arm(0, probe)
        await probe.wait()
        timer.cancel()
        timer.cancel()
        await settle(watchdog)
        assert timer.fired
        assert len(probe.times) == 1


async def test_expire_fires_at_the_next_tick_despite_a_long_delay() -> None:
    """expire() makes a timer armed for 60 s fire at the next tick."""
    async with running() as watchdog:
        probe = Probe()
        timer = watchdog.arm(60, probe)
        start = anyio.current_time()
        timer.expire()
        fired_at = await probe.wait()
        assert timer.fired
    assert fired_at < start + LATE


async def test_expire_after_firing_does_nothing() -> None:
    """Expiring a timer that already fired does not run its action again."""
    async with running() as watchdog:
        probe = Probe()
        timer = watchdog.arm(0, probe)
        await probe.wait()
        timer.expire()
        await settle(watchdog)
        assert timer.fired
        assert len(probe.times) == 1


async def test_expire_after_cancel_does_nothing() -> None:
    """A cancelled timer stays cancelled: expiring it does not arm it again."""
    async with running() as watchdog:
        probe = Probe()
        timer = watchdog.arm(60, probe)
        timer.cancel()
        timer.expire()
        await settle(watchdog)
        assert not timer.fired
        assert probe.times == []


# -- many timers ---------------------------------------------------------------------------


async def test_timers_fire_in_deadline_order() -> None:
    """Timers armed in any order, several per deadline, fire by deadline, none early."""
    delays = [0.09, 0.03, 0.15, 0.0, 0.06, 0.03, 0.12, 0.09, 0.0, 0.06]
    fired: list[float] = []

    def record(delay: float) -> Callable[[], Awaitable[None]]:
        async def action() -> None:
            fired.append(delay)

        return action

    async with running() as watchdog:
        # Armed with no checkpoint in between: every deadline counts from [start, end].
        start = anyio.current_time()
        probes = [Probe(record(delay)) for delay in delays]
        for delay, probe in zip(delays, probes, strict=True):
            watchdog.arm(delay, probe)
        end = anyio.current_time()
        for probe in probes:
            await probe.wait()
    assert sorted(fired) == sorted(delays)
    for delay, probe in zip(delays, probes, strict=True):
        assert start + delay <= probe.times[0] < end + delay + LATE
    # a fires before b whenever a's latest bucket ends before b's earliest one begins.
    margin = end - start + TICK
    for i, a in enumerate(fired):
        for b in fired[i + 1 :]:
            assert a <= b + margin, fired


async def test_cancelling_one_timer_of_a_bucket_leaves_the_others() -> None:
    """Of timers due at the same tick, a cancelled one stays silent and the others fire."""
    async with running() as watchdog:
        probes = [Probe() for _ in range(4)]
        timers = [watchdog.arm(60, probe) for probe in probes]
        for timer in timers:
            timer.expire()  # all in one bucket: the next tick's
        timers[1].cancel()
        for probe in (probes[0], probes[2], probes[3]):
            await probe.wait()
        await settle(watchdog)
    assert [len(probe.times) for probe in probes] == [1, 0, 1, 1]
    assert [timer.fired for timer in timers] == [True, False, True, True]


async def test_timers_of_one_bucket_can_cancel_each_other() -> None:
    """An action that cancels the other timers due at its tick stops them: only it runs."""
    timers: list[Timer] = []

    async def cancel_all() -> None:
        for timer in timers:
            timer.cancel()

    async with running() as watchdog:
        probes = [Probe(cancel_all) for _ in range(3)]
        timers.extend(watchdog.arm(60, probe) for probe in probes)
        for timer in timers:
            timer.expire()
        await settle(watchdog)
    assert sorted(len(probe.times) for probe in probes) == [0, 0, 1]
    assert sorted(timer.fired for timer in timers) == [False, False, True]


async def test_cancel_while_an_action_of_the_same_tick_runs_stops_the_timer() -> None:
    """A timer cancelled by another task while an action of its tick is still running never
    runs (as when a wait ends while the watchdog closes another connection)."""
    release = anyio.Event()
    first = anyio.Event()

    async def block() -> None:
        first.set()
        await release.wait()

    async with running() as watchdog:
        probes = [Probe(block) for _ in range(3)]
        timers = [watchdog.arm(60, probe) for probe in probes]
        for timer in timers:
            timer.expire()
        with anyio.fail_after(WAIT):
            await first.wait()  # one action runs, and waits
        for timer in timers:
            timer.cancel()  # the waits end: the others are disarmed
        release.set()
        await settle(watchdog)
    assert sorted(len(probe.times) for probe in probes) == [0, 0, 1]
    assert sorted(timer.fired for timer in timers) == [False, False, True]


async def test_failing_action_is_logged_and_later_timers_still_fire() -> None:
    """An action that raises is logged; the others of its tick and later ones still run."""

    async def fail() -> None:
        raise RuntimeError("boom")

    with capture_logs() as logs:
        async with running() as watchdog:
            failing = watchdog.arm(60, fail)
            same_tick = Probe()
            watchdog.arm(60, same_tick).expire()
            failing.expire()
            later = Probe()
            watchdog.arm(0.05, later)
            await same_tick.wait()
            await later.wait()
    assert failing.fired
    [entry] = [e for e in logs if e["event"] == "deadline action failed"]
    assert entry["log_level"] == "error"


# -- the task ------------------------------------------------------------------------------


async def test_spawn_runs_a_task_beside_the_watchdog_until_run_is_cancelled() -> None:
    """spawn() starts a task next to the watchdog; cancelling run() ends both."""
    started = anyio.Event()
    ended = anyio.Event()

    async def task() -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            ended.set()

    watchdog = Watchdog()
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as group:
            group.start_soon(watchdog.run)
            probe = Probe()
            watchdog.arm(0, probe)
            await probe.wait()  # run() is running: spawn() may be called
            watchdog.spawn(task)
            await started.wait()
            pending = Probe()
            watchdog.arm(60, pending)
            group.cancel_scope.cancel()
    assert ended.is_set()
    assert not pending.times


async def test_rearming_one_bucket_does_not_grow_the_queue() -> None:
    """A bucket emptied and filled again, behind a live earlier one, is queued only once."""
    async with running() as watchdog:
        watchdog.arm(30, Probe())  # an earlier live timer keeps stale entries from the top
        for _ in range(5000):
            watchdog.arm(60, Probe()).cancel()  # the idle timer of a keep-alive cycle
        # A private look: the heap of bucket numbers is what would grow without bound.
        assert len(watchdog._order) <= 10


@pytest.mark.parametrize("delay", [math.inf, 1e308])
async def test_a_deadline_too_far_to_reach_is_armed_and_never_fires(delay: float) -> None:
    """An infinite or huge delay (a config may say so) arms a timer that never fires."""
    async with running() as watchdog:
        probe = Probe()
        timer = watchdog.arm(delay, probe)
        await settle(watchdog)
        assert not timer.fired
        timer.cancel()
    assert probe.times == []


async def test_cancelling_the_earliest_timer_leaves_the_later_one_on_time() -> None:
    """With the soonest timer cancelled, the loop sleeps on to the next one, which fires."""
    async with running() as watchdog:
        first, second = Probe(), Probe()
        start = anyio.current_time()
        early = watchdog.arm(0.05, first)
        watchdog.arm(0.1, second)
        early.cancel()
        fired_at = await second.wait()
    assert start + 0.1 <= fired_at < start + 0.1 + LATE
    assert first.times == []


@pytest.mark.parametrize("armed", [None, 60.0], ids=["nothing-armed", "far-deadline"])
async def test_watchdog_sleeps_until_the_earliest_deadline(
    monkeypatch: pytest.MonkeyPatch, armed: float | None
) -> None:
    """With nothing due soon the watchdog does not wake; a sooner timer wakes it in time."""
    wakes = 0
    clock = anyio.current_time

    def counting_clock() -> float:
        nonlocal wakes
        wakes += 1
        return clock()

    async with running() as watchdog:
        if armed is not None:
            watchdog.arm(armed, Probe())
        await anyio.sleep(0.02)  # the loop took the far timer into account, then slept
        monkeypatch.setattr(anyio, "current_time", counting_clock)  # the watchdog's clock
        await anyio.sleep(0.2)
        assert wakes == 0  # twenty ticks' time, and the loop never looked at the clock
        monkeypatch.undo()
        probe = Probe()
        start = anyio.current_time()
        watchdog.arm(0.02, probe)
        fired_at = await probe.wait()
    assert start + 0.02 <= fired_at < start + 0.02 + LATE


@pytest.mark.parametrize("armed", [False, True], ids=["idle", "ticking"])
async def test_run_ends_cleanly_when_cancelled(armed: bool) -> None:
    """Cancelling run() ends it without an error, idle or with timers pending."""
    watchdog = Watchdog()
    pending = Probe()
    with anyio.fail_after(WAIT):
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(watchdog.run)
                probe = Probe()
                watchdog.arm(0, probe)
                await probe.wait()
                if armed:
                    watchdog.arm(60, pending)
                scope.cancel()
    assert scope.cancelled_caught
    assert not pending.times


# -- through a proxy -----------------------------------------------------------------------


async def test_idle_keep_alive_connection_closes_after_idle_timeout_not_before() -> None:
    """A keep-alive connection left silent is closed idle_timeout after its last response."""
    idle = 0.2
    async with (
        stub_upstream() as stub,
        run_proxy(stub.url, idle_timeout=idle) as proxy,
        connect(proxy) as client,
    ):
        for _ in range(2):  # the idle timer of the first wait does not carry over
            # Taken before the request: the idle wait starts after the response is sent.
            start = anyio.current_time()
            reply = await client.request(b"POST", b"/mcp", JSON, rpc("ping"))
            assert reply.status == 200
        assert await client.closed_by_peer()
        closed_at = anyio.current_time()
    assert start + idle <= closed_at < start + idle + LATE
    assert len(stub.requests) == 2


async def test_silent_upstream_times_out_after_request_timeout_not_before() -> None:
    """Past the grace, the request timeout still fires no earlier than request_timeout."""
    timeout = 0.3

    async def never_answers(request: ReceivedRequest, respond: Responder) -> None:
        await anyio.sleep_forever()

    async with (
        stub_upstream(never_answers) as stub,
        run_proxy(stub.url, request_timeout=timeout) as proxy,
        connect(proxy) as client,
    ):
        start = anyio.current_time()
        reply = await client.request(b"POST", b"/mcp", JSON, rpc("tools/call", 1))
        answered_at = anyio.current_time()
        [request] = stub.requests
        with anyio.fail_after(WAIT):
            await request.disconnected.wait()
    assert reply.status == 504
    assert start + timeout <= answered_at < start + timeout + LATE
