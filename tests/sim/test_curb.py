"""The curb where a rider agent meets its driver agent (`sim.curb`)."""

import asyncio

from sim.curb import Curb, RiderAtCar

# Longer than any of these tests may take: a wait that ends there failed.
GENEROUS_S = 30.0


async def test_a_rider_already_out_is_seen_at_once_with_the_pin():
    curb, stop = Curb(), asyncio.Event()
    curb.come_out("A", "0420")

    rider = await curb.wait_for_rider("A", GENEROUS_S, stop)

    assert rider == RiderAtCar("0420")


async def test_a_driver_waiting_sees_the_rider_when_they_come_out():
    curb, stop = Curb(), asyncio.Event()
    waiting = asyncio.create_task(curb.wait_for_rider("A", GENEROUS_S, stop))
    await asyncio.sleep(0)  # the driver is at the curb first

    curb.come_out("A", None)  # a trip that carries no PIN

    assert await asyncio.wait_for(waiting, GENEROUS_S) == RiderAtCar(None)


async def test_nobody_came_within_the_wait():
    curb, stop = Curb(), asyncio.Event()
    curb.come_out("B", "1111")  # another trip's rider

    assert await curb.wait_for_rider("A", 0.05, stop) is None


async def test_the_end_of_the_run_or_the_trip_ends_the_wait():
    curb, stop = Curb(), asyncio.Event()
    run_over = asyncio.create_task(curb.wait_for_rider("A", GENEROUS_S, stop))
    trip_over = asyncio.create_task(curb.wait_for_rider("B", GENEROUS_S, asyncio.Event()))
    await asyncio.sleep(0)

    stop.set()
    curb.leave("B")

    assert await asyncio.wait_for(run_over, GENEROUS_S) is None
    assert await asyncio.wait_for(trip_over, GENEROUS_S) is None
    # and a trip left behind keeps nobody at the curb
    curb.come_out("B", "2222")
    curb.leave("B")
    assert await curb.wait_for_rider("B", 0.05, asyncio.Event()) is None
