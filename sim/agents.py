"""Driver and rider agents: each one a client app over its own WebSocket.

Agents act on what arrives on their socket and on the scenario's scripted
decisions, and write what they saw to the recorder. They share one event
loop and never block it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging

import httpx

from sim import kpi
from sim.client import REPLY_TIMEOUT_S, Api, Session, SimError, Socket, error_code, is_error
from sim.geo import Point, distance_km, heading_deg, step_towards
from sim.scenario import Action, DriverPlan, RequestPlan, Scenario, seeded_rng

logger = logging.getLogger(__name__)

ACTIVE = {"REQUESTED", "STARTED", "ARRIVED", "IN_PROGRESS"}
FINAL = {"COMPLETED", "CANCELED", "EXPIRED"}


class DriverState(enum.StrEnum):
    CRUISING = "cruising"
    TO_PICK_UP = "to_pick_up"
    TO_DROP_OFF = "to_drop_off"


class DriverAgent:
    def __init__(
        self, plan: DriverPlan, scenario: Scenario, recorder: kpi.Recorder, session: Session
    ) -> None:
        self.plan, self.scenario, self.recorder, self.session = plan, scenario, recorder, session
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

    async def record_vehicle(self, api: Api) -> None:
        """PUT /api/driver/vehicle/: the products this driver may be offered."""
        status, body = await api.call(
            "PUT", "/api/driver/vehicle/", token=self.session.access, body=self.plan.vehicle()
        )
        if status != 200:
            raise SimError(f"{self.plan.username}: PUT /api/driver/vehicle/ answered {status}")

    async def connect(self, api: Api) -> None:
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
        goal = self._goal()
        remaining_km = distance_km(self.position, goal)
        new_position, arrived = step_towards(self.position, goal, km)
        if arrived and self.state is DriverState.TO_PICK_UP:
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
        if self.trip is not None and self.state is DriverState.TO_PICK_UP:
            return Point(self.trip["pick_up_lat"], self.trip["pick_up_lng"])
        if self.trip is not None and self.state is DriverState.TO_DROP_OFF:
            return Point(self.trip["drop_off_lat"], self.trip["drop_off_lng"])
        return self.target

    async def _arrived(self) -> None:
        if self.state is DriverState.CRUISING:
            self.wanders += 1
            self.target = self.scenario.wander_target(self.plan.index, self.wanders)
            return
        if self.trip is None:
            return
        status = "IN_PROGRESS" if self.state is DriverState.TO_PICK_UP else "COMPLETED"
        trip_id = self.trip["id"]
        reply = await self._request("update.trip", {"id": trip_id, "status": status})
        if reply is None or is_error(reply):
            self._free()  # canceled meanwhile, most likely; the rider's log says
            return
        if status == "IN_PROGRESS":
            self.state = DriverState.TO_DROP_OFF
        else:
            self._free()

    def _free(self) -> None:
        self.trip, self.state = None, DriverState.CRUISING
        self.accepted_at = None

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
        task = asyncio.create_task(self._answer(offer_id, trip, decision.action, decision.delay_s))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

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
        # A trip not yet picked up is its rider's to cancel (`RiderAgent.finish`):
        # a driver's cancel would send it back to dispatch (PROTOCOL.md Part 2).
        self._free()
        await self._request("driver.offline", {})
        await self.socket.close()


class RiderAgent:
    def __init__(self, index: int, recorder: kpi.Recorder, session: Session) -> None:
        self.index, self.recorder, self.session = index, recorder, session
        self.busy = False
        self.trip_id: str | None = None
        self.status: str | None = None
        self.request_number: int | None = None
        self.early: dict[str, dict] = {}  # pushes that beat the create reply
        self.socket: Socket | None = None
        self.done = asyncio.Event()  # the trip reached a final status
        self.done.set()
        self.settled = asyncio.Event()  # no longer waiting for a driver
        self.settled.set()
        self.quoting = True  # ask POST /api/quotes/ before each request

    async def connect(self, api: Api) -> None:
        self.socket = await Socket.open(api, self.session, self.on_frame)

    async def request(self, api: Api, plan: RequestPlan) -> None:
        self.busy, self.trip_id, self.status = True, None, None
        self.request_number = plan.number
        self.early.clear()
        self.done.clear()
        self.settled.clear()
        quote = await self._quote(api, plan) if self.quoting else None
        surge = _surge(quote)
        if plan.declines_surge and surge is not None and surge > 1.0:
            self.recorder.emit(kpi.DECLINED_SURGE, request=plan.number, value=surge)
            self._release()
            return
        self.recorder.emit(kpi.REQUESTED, request=plan.number)
        try:
            trip = await self._create(api, plan, quote)
        except (SimError, TimeoutError, OSError) as error:
            trip = None
            self.recorder.emit(kpi.REQUEST_FAILED, request=plan.number, detail=type(error).__name__)
        if trip is None:
            self._release()
            return
        self._adopt(trip)
        if plan.patience_s is not None and self.status == "REQUESTED":
            await self._cancel_if_unmatched(plan.patience_s)

    async def _quote(self, api: Api, plan: RequestPlan) -> dict | None:
        """The quote for the request's product; None (and the rider asks
        unquoted) when the server gives none."""
        self.recorder.emit(kpi.QUOTE_SENT, request=plan.number)
        try:
            status, body = await api.call(
                "POST", "/api/quotes/", token=self.session.access, body=plan.quote_body()
            )
        except (httpx.HTTPError, OSError) as error:
            self.recorder.emit(kpi.QUOTE_FAILED, request=plan.number, detail=type(error).__name__)
            return None
        quotes = body.get("quotes") if status == 201 and isinstance(body, dict) else None
        quote = next((q for q in quotes or () if q.get("product") == plan.product), None)
        if quote is None:
            code = body.get("code", status) if isinstance(body, dict) else status
            self.recorder.emit(kpi.QUOTE_FAILED, request=plan.number, detail=str(code))
            return None
        self.recorder.emit(
            kpi.QUOTED, request=plan.number, value=_surge(quote), detail=quote.get("product")
        )
        return quote

    async def _create(self, api: Api, plan: RequestPlan, quote: dict | None = None) -> dict | None:
        if self.socket is None:
            raise SimError(f"{self.session.username} is not connected")
        payload = plan.body()
        if self.quoting:
            payload = plan.priced_body(quote.get("quote_id") if quote else None)
        if plan.via == "rest":
            status, body = await api.call(
                "POST", "/api/trip/", token=self.session.access, body=payload
            )
            if status == 201 and isinstance(body, dict):
                return body
            code = body.get("code", status) if isinstance(body, dict) else status
            self.recorder.emit(kpi.REQUEST_FAILED, request=plan.number, detail=str(code))
            return None
        reply = await self.socket.request("create.trip", payload)
        if is_error(reply):
            self.recorder.emit(kpi.REQUEST_FAILED, request=plan.number, detail=error_code(reply))
            return None
        return reply.get("data")

    async def _cancel_if_unmatched(self, patience_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done.wait(), patience_s)
            return
        if self.status != "REQUESTED" or self.socket is None:
            return
        self.recorder.count("rider_gave_up")
        with contextlib.suppress(SimError, TimeoutError, OSError):
            await self.socket.request(
                "cancel.trip", {"id": self.trip_id, "reason": "waited too long"}
            )

    def on_frame(self, frame: dict, arrived: float) -> None:
        type_, data = frame.get("type"), frame.get("data")
        if not isinstance(data, dict):
            return
        if type_ == "driver.location":
            self.recorder.count("driver_locations_received")
        elif type_ in ("trip.created", "trip.updated") and self.busy:
            if self.trip_id is None:
                if type_ == "trip.created":
                    self._adopt(data)
                else:
                    self.early[str(data.get("id"))] = data
            elif data.get("id") == self.trip_id:
                self._update(data)
        elif type_ == "error" and frame.get("request_id") is None:
            self.recorder.emit(kpi.ERROR, detail=error_code(frame))

    def _adopt(self, trip: dict) -> None:
        if self.trip_id is not None or not trip.get("id"):
            return
        self.trip_id = str(trip["id"])
        self.status = trip.get("status")
        self.recorder.emit(kpi.CREATED, request=self.request_number, trip_id=self.trip_id)
        early = self.early.pop(self.trip_id, None)
        if early is not None:
            self._update(early)
        elif self.status in FINAL:
            self._update(trip)

    def _update(self, trip: dict) -> None:
        status = trip.get("status")
        if status == self.status and status not in FINAL:
            return
        self.status = status
        trip_id = self.trip_id
        if status != "REQUESTED":
            self.settled.set()
        if status == "STARTED":
            self.recorder.emit(kpi.MATCHED, request=self.request_number, trip_id=trip_id)
            eta_s = trip.get("pickup_eta_s")
            if isinstance(eta_s, int | float):
                self.recorder.emit(kpi.PICKUP_ETA, trip_id=trip_id, value=float(eta_s))
        elif status == "IN_PROGRESS":
            self.recorder.emit(kpi.PICKED_UP, trip_id=trip_id)
        elif status == "COMPLETED":
            self.recorder.emit(kpi.COMPLETED, trip_id=trip_id)
            self._note_fare(trip)
        elif status == "CANCELED":
            self.recorder.emit(kpi.CANCELED, trip_id=trip_id, detail=trip.get("status_reason"))
        elif status == "EXPIRED":
            self.recorder.emit(kpi.EXPIRED, trip_id=trip_id, detail=trip.get("status_reason"))
        if status in FINAL:
            self._release()

    def _note_fare(self, trip: dict) -> None:
        fare = trip.get("fare")
        if not isinstance(fare, dict) or fare.get("kind") != "final":
            return
        try:
            amount = float(fare["amount"])
        except (KeyError, TypeError, ValueError):
            return
        self.recorder.emit(
            kpi.FARE, trip_id=self.trip_id, value=amount, detail=str(fare.get("currency"))
        )

    def _release(self) -> None:
        self.busy = False
        self.done.set()
        self.settled.set()

    @property
    def waiting(self) -> bool:
        """Still waiting for a driver (or for the create reply)."""
        return self.busy and self.status in (None, "REQUESTED")

    def close_books(self) -> str | None:
        """End of the run: note an unresolved trip and stop recording. Returns
        the trip to cancel (one still waiting for, or on its way to, the rider)."""
        trip_id = self.trip_id if self.busy and self.status in ACTIVE else None
        if trip_id is not None:
            self.recorder.emit(kpi.OPEN_AT_END, trip_id=trip_id, detail=self.status)
        self._release()
        return trip_id if self.status in ("REQUESTED", "STARTED", "ARRIVED") else None

    async def finish(self, trip_to_cancel: str | None) -> None:
        if self.socket is None:
            return
        if trip_to_cancel is not None:
            with contextlib.suppress(SimError, TimeoutError, OSError):
                await self.socket.request(
                    "cancel.trip", {"id": trip_to_cancel, "reason": "sim_ended"}
                )
        await self.socket.close()


def _surge(quote: dict | None) -> float | None:
    """A quote's surge_multiplier (a decimal string) as a number."""
    if quote is None:
        return None
    try:
        return float(quote["surge_multiplier"])
    except (KeyError, TypeError, ValueError):
        return None
