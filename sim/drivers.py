"""The driver agent: online over its socket, it answers offers as the
scenario says, drives to the pick-up, waits there for its rider (or gives
the trip up, or cancels for a no-show), drives to the drop-off, and rates
its rider."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging

from sim import kpi
from sim.agents import FINAL, rate_trip, spawn
from sim.client import REPLY_TIMEOUT_S, Api, Session, SimError, Socket, error_code, is_error
from sim.curb import Curb
from sim.geo import Point, distance_km, heading_deg, step_towards
from sim.scenario import Action, DriverPlan, Scenario, seeded_rng

logger = logging.getLogger(__name__)

RIDER_NO_SHOW = "rider_no_show"
# A no-show cancel the server finds too early is tried again this often (s).
NO_SHOW_RETRY_S = 1.0
PIN_CODES = {"invalid_pin", "pin_locked"}


class DriverState(enum.StrEnum):
    CRUISING = "cruising"
    TO_PICK_UP = "to_pick_up"
    AT_PICK_UP = "at_pick_up"  # waiting for the rider to come out
    TO_DROP_OFF = "to_drop_off"


class DriverAgent:
    def __init__(
        self,
        plan: DriverPlan,
        scenario: Scenario,
        recorder: kpi.Recorder,
        session: Session,
        curb: Curb,
    ) -> None:
        self.plan, self.scenario, self.recorder, self.session = plan, scenario, recorder, session
        self.curb = curb
        self.api: Api | None = None
        self.config = scenario.config
        self.position = plan.start
        self.state = DriverState.CRUISING
        self.trip: dict | None = None
        self.offers_seen = 0
        self.wanders = 0
        self.target = scenario.wander_target(plan.index, 0)
        self.live_offers: set[str] = set()
        self.tasks: set[asyncio.Task] = set()
        self.stopping = asyncio.Event()
        self.socket: Socket | None = None
        # The movement clock (recorder time of the last step), and when the
        # current trip was accepted: the drive to the pick-up is timed from there.
        self.moved_at = 0.0
        self.accepted_at: float | None = None
        # Trips accepted and rides completed so far (the scenario's draws are
        # numbered by them), and when and why the current trip is given up.
        self.accepts = 0
        self.rides = 0
        self.give_up_at: float | None = None
        self.give_up_code: str | None = None

    async def record_vehicle(self, api: Api) -> None:
        """PUT /api/driver/vehicle/: the products this driver may be offered."""
        status, body = await api.call(
            "PUT", "/api/driver/vehicle/", token=self.session.access, body=self.plan.vehicle()
        )
        if status != 200:
            raise SimError(f"{self.plan.username}: PUT /api/driver/vehicle/ answered {status}")

    async def connect(self, api: Api) -> None:
        self.api = api
        self.socket = await Socket.open(api, self.session, self.on_frame)
        reply = await self.socket.request("driver.online", self._position_data())
        if is_error(reply):
            raise SimError(f"{self.plan.username}: driver.online refused ({error_code(reply)})")

    def _position_data(self) -> dict:
        return {"lat": self.position.lat, "lng": self.position.lng}

    # --- the clock: move, report the position, reach pick-ups and drop-offs --

    async def drive(self, stop: asyncio.Event) -> None:
        jitter = seeded_rng(self.config.seed, "driver", self.plan.index, "jitter").random()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), jitter * self.config.ping_every_s)
        self.moved_at = self.recorder.now()
        while not stop.is_set() and self.socket and not self.socket.closed.is_set():
            now = self.recorder.now()
            km = max(0.0, now - self.moved_at) * self.config.wall_speed_km_s
            self.moved_at = now
            try:
                await self.tick(km)
            except SimError:
                return  # the socket closed; the run reports it at the end
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.ping_every_s)

    async def tick(self, km: float) -> None:
        if (
            self.state is DriverState.TO_PICK_UP
            and self.give_up_at is not None
            and self.recorder.now() >= self.give_up_at
        ):
            await self._give_up()
        goal = self._goal()
        remaining_km = distance_km(self.position, goal)
        new_position, arrived = step_towards(self.position, goal, km)
        if arrived and self.state is DriverState.TO_PICK_UP and self.give_up_at is None:
            self._note_at_pick_up(km - remaining_km)
        heading = heading_deg(self.position, goal) if new_position != self.position else 0.0
        self.position = new_position
        await self._socket.send("update.location", {**self._position_data(), "heading": heading})
        self.recorder.count("locations_sent")
        if arrived:
            await self._arrived()

    def _note_at_pick_up(self, overshoot_km: float) -> None:
        """The drive from the accept to the pick-up, in the city's seconds. The
        step that arrives covers more than the distance left: the arrival was
        that much earlier than this step."""
        if self.trip is None or self.accepted_at is None:
            return
        at = self.recorder.now() - max(0.0, overshoot_km) / self.config.wall_speed_km_s
        drive_s = max(0.0, at - self.accepted_at) * self.config.time_scale
        self.recorder.emit(
            kpi.AT_PICK_UP,
            trip_id=self.trip.get("id"),
            driver=self.plan.index,
            value=round(drive_s, 1),
        )
        self.accepted_at = None

    def _goal(self) -> Point:
        if self.trip is not None and self.state in (DriverState.TO_PICK_UP, DriverState.AT_PICK_UP):
            return Point(self.trip["pick_up_lat"], self.trip["pick_up_lng"])
        if self.trip is not None and self.state is DriverState.TO_DROP_OFF:
            return Point(self.trip["drop_off_lat"], self.trip["drop_off_lng"])
        return self.target

    async def _arrived(self) -> None:
        if self.state is DriverState.CRUISING:
            self.wanders += 1
            self.target = self.scenario.wander_target(self.plan.index, self.wanders)
            return
        if self.trip is None or self.state is DriverState.AT_PICK_UP:
            return
        trip_id = self.trip["id"]
        if self.state is DriverState.TO_PICK_UP:
            if self.give_up_at is not None:  # there before the moment to give up came
                await self._give_up()
            else:
                await self._report_arrival(trip_id)
            return
        reply = await self._request("update.trip", {"id": trip_id, "status": "COMPLETED"})
        if reply is None or is_error(reply):
            self._free()  # canceled meanwhile, most likely; the rider's log says
            return
        self._rate_rider(trip_id)
        self._free()

    async def _report_arrival(self, trip_id: str) -> None:
        """ARRIVED, then wait at the curb for the rider (`_meet_rider`) while
        the clock keeps reporting the position."""
        reply = await self._request("update.trip", {"id": trip_id, "status": "ARRIVED"})
        if reply is None or is_error(reply):
            self._free()  # canceled meanwhile, most likely; the rider's log says
            return
        if self._on(trip_id, DriverState.TO_PICK_UP):
            self.state = DriverState.AT_PICK_UP
            spawn(self.tasks, self._meet_rider(trip_id))

    async def _meet_rider(self, trip_id: str) -> None:
        """Start the ride with the PIN the rider shows, or, when nobody came
        within the no-show wait, cancel for a no-show."""
        rider = await self.curb.wait_for_rider(trip_id, self.config.no_show_wait_s, self.stopping)
        try:
            if self.stopping.is_set() or not self._on(trip_id, DriverState.AT_PICK_UP):
                return  # the rider canceled meanwhile, or the run is over
            if rider is None:
                await self._cancel_no_show(trip_id)
            else:
                await self._pick_up(trip_id, rider.pin)
        finally:
            self.curb.leave(trip_id)

    async def _pick_up(self, trip_id: str, pin: str | None) -> None:
        data = {"id": trip_id, "status": "IN_PROGRESS"}
        if pin is not None:
            data["pin"] = pin
        reply = await self._request("update.trip", data)
        if reply is None or is_error(reply):
            if reply is not None and error_code(reply) in PIN_CODES:
                self.recorder.emit(
                    kpi.ERROR, trip_id=trip_id, driver=self.plan.index, detail=error_code(reply)
                )
            self._free()
            return
        if self._on(trip_id, DriverState.AT_PICK_UP):
            self.state = DriverState.TO_DROP_OFF
            self.moved_at = self.recorder.now()  # the car stood still until now

    async def _cancel_no_show(self, trip_id: str) -> None:
        """`rider_no_show`; while the server says the wait is not over
        (`too_early`: its NO_SHOW_WAIT_S is longer than ours), wait on."""
        told_too_early = False
        while not self.stopping.is_set() and self._on(trip_id, DriverState.AT_PICK_UP):
            reply = await self._request(
                "cancel.trip", {"id": trip_id, "reason_code": RIDER_NO_SHOW}
            )
            if reply is not None and is_error(reply) and error_code(reply) == "too_early":
                if not told_too_early:
                    driver = self.plan.index
                    self.recorder.emit(kpi.NO_SHOW_TOO_EARLY, trip_id=trip_id, driver=driver)
                    told_too_early = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), NO_SHOW_RETRY_S)
                continue
            if reply is not None and not is_error(reply):
                self.recorder.emit(kpi.NO_SHOW, trip_id=trip_id, driver=self.plan.index)
            if self._on(trip_id):
                self._free()  # canceled, or by the rider meanwhile
            return

    async def _give_up(self) -> None:
        """Cancel the trip before the pick-up: it goes back to dispatch
        without this driver (PROTOCOL.md Part 2)."""
        if self.trip is None:
            return
        trip_id, code = self.trip["id"], self.give_up_code
        self.give_up_at = None
        reply = await self._request("cancel.trip", {"id": trip_id, "reason_code": code})
        if reply is not None and not is_error(reply):
            self.recorder.emit(kpi.GAVE_UP, trip_id=trip_id, driver=self.plan.index, detail=code)
        if self._on(trip_id):
            self._free()

    def _rate_rider(self, trip_id: str) -> None:
        rating = self.scenario.driver_rating(self.plan.index, self.rides)
        self.rides += 1
        if rating is not None and self.api is not None:
            spawn(
                self.tasks,
                rate_trip(
                    self.api,
                    self.session,
                    self.recorder,
                    trip_id=trip_id,
                    rating=rating,
                    rater=kpi.DRIVER,
                    driver=self.plan.index,
                ),
            )

    def _on(self, trip_id: str, *states: DriverState) -> bool:
        """Still on this trip (and in one of `states`, when given)."""
        if self.trip is None or self.trip.get("id") != trip_id:
            return False
        return not states or self.state in states

    def _free(self) -> None:
        self.trip, self.state = None, DriverState.CRUISING
        self.accepted_at = None
        self.give_up_at = self.give_up_code = None

    # --- what arrives on the socket ------------------------------------------

    def on_frame(self, frame: dict, arrived: float) -> None:
        type_, data = frame.get("type"), frame.get("data")
        if not isinstance(data, dict):
            return
        if type_ == "trip.offer":
            self._on_offer(data)
        elif type_ == "trip.offer.revoked":
            self.live_offers.discard(str(data.get("offer_id")))
            self.recorder.emit(
                kpi.REVOKED,
                trip_id=data.get("trip_id"),
                driver=self.plan.index,
                detail=str(data.get("reason")),
            )
        elif type_ == "trip.updated" and self.trip is not None:
            if data.get("id") == self.trip["id"] and data.get("status") in FINAL:
                self._free()
        elif type_ == "error" and frame.get("request_id") is None:
            self.recorder.emit(kpi.ERROR, driver=self.plan.index, detail=error_code(frame))

    def _on_offer(self, data: dict) -> None:
        trip = data.get("trip") or {}
        offer_id = str(data.get("offer_id"))
        self.live_offers.add(offer_id)
        distance = trip.get("distance_km")
        self.recorder.emit(
            kpi.OFFER,
            trip_id=trip.get("id"),
            driver=self.plan.index,
            value=float(distance) if isinstance(distance, int | float) else None,
        )
        timeout_s = float(data.get("timeout_s") or 15)
        decision = self.scenario.decision(self.plan.index, self.offers_seen, timeout_s)
        self.offers_seen += 1
        self.recorder.emit(
            kpi.DECIDED, trip_id=trip.get("id"), driver=self.plan.index, detail=decision.action
        )
        if decision.action is Action.SILENT:
            return
        spawn(self.tasks, self._answer(offer_id, trip, decision.action, decision.delay_s))

    async def _answer(self, offer_id: str, trip: dict, action: Action, delay_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), delay_s)
        if self.stopping.is_set() or offer_id not in self.live_offers:
            return  # the run ended, or the offer was revoked while we "thought"
        self.live_offers.discard(offer_id)
        if action is Action.DECLINE:
            await self._request("decline.trip", {"id": trip.get("id")})
            return
        if self.trip is not None:  # already busy; should not happen
            return
        reply = await self._request("accept.trip", {"id": trip.get("id")})
        if reply is None:
            return
        if is_error(reply):
            self.recorder.emit(
                kpi.ACCEPT_REFUSED,
                trip_id=trip.get("id"),
                driver=self.plan.index,
                detail=error_code(reply),
            )
            return
        self.trip = {**trip, **(reply.get("data") or {})}
        self.state = DriverState.TO_PICK_UP
        # The server knows this driver where its last step left it: the drive
        # to the pick-up starts there, now, not at that step.
        self.accepted_at = self.moved_at = self.recorder.now()
        give_up = self.scenario.give_up(self.plan.index, self.accepts)
        self.accepts += 1
        if give_up is not None:
            self.give_up_at = self.accepted_at + give_up.after_s
            self.give_up_code = give_up.reason_code
        pick_up = Point(self.trip["pick_up_lat"], self.trip["pick_up_lng"])
        self.recorder.emit(
            kpi.ACCEPTED,
            trip_id=trip.get("id"),
            driver=self.plan.index,
            value=round(distance_km(self.position, pick_up), 3),
        )

    @property
    def _socket(self) -> Socket:
        if self.socket is None:
            raise SimError(f"{self.plan.username} is not connected")
        return self.socket

    async def _request(self, type_: str, data: dict) -> dict | None:
        try:
            return await self._socket.request(type_, data)
        except (SimError, TimeoutError, OSError) as error:
            self.recorder.emit(kpi.ERROR, driver=self.plan.index, detail=f"{type_}: {error}")
            return None

    async def finish(self) -> None:
        """End of the run: let answers already sent get their replies (so the
        log agrees with the riders'), drop off anyone on board, go offline,
        hang up."""
        self.stopping.set()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=REPLY_TIMEOUT_S)
        for task in list(self.tasks):
            task.cancel()
        if self.socket is None or self.socket.closed.is_set():
            return
        if self.trip is not None and self.state is DriverState.TO_DROP_OFF:
            await self._request("update.trip", {"id": self.trip["id"], "status": "COMPLETED"})
        # A trip not yet picked up (the driver on the way, or waiting at the
        # curb) is its rider's to cancel (`RiderAgent.finish`): a driver's
        # cancel would send it back to dispatch (PROTOCOL.md Part 2).
        self._free()
        await self._request("driver.offline", {})
        await self.socket.close()
