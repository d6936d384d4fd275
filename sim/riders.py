"""The rider agent: it quotes, requests now or books ahead (over the socket
or REST), follows its trip's pushes, cancels when it runs out of patience,
comes out to the car (unless a no-show) and rates its driver."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

import httpx

from sim import kpi
from sim.agents import ACTIVE, BEFORE_PICK_UP, FINAL, WAITING, rate_trip, spawn
from sim.client import REPLY_TIMEOUT_S, Api, Session, SimError, Socket, error_code, is_error
from sim.curb import Curb
from sim.scenario import RequestPlan

logger = logging.getLogger(__name__)


class RiderAgent:
    def __init__(self, index: int, recorder: kpi.Recorder, session: Session, curb: Curb) -> None:
        self.index, self.recorder, self.session, self.curb = index, recorder, session, curb
        self.api: Api | None = None
        self.busy = False
        self.trip_id: str | None = None
        self.status: str | None = None
        self.request_number: int | None = None
        self.plan: RequestPlan | None = None
        self.pin: str | None = None  # shown at the curb; the trip carries it once accepted
        self.tasks: set[asyncio.Task] = set()  # coming out to the car, rating the driver
        self.early: dict[str, dict] = {}  # pushes that beat the create reply
        self.socket: Socket | None = None
        self.done = asyncio.Event()  # the trip reached a final status
        self.done.set()
        self.settled = asyncio.Event()  # no longer waiting for a driver
        self.settled.set()
        self.quoting = True  # ask POST /api/quotes/ before each request

    async def connect(self, api: Api) -> None:
        self.api = api
        self.socket = await Socket.open(api, self.session, self.on_frame)

    async def request(self, api: Api, plan: RequestPlan) -> None:
        self.busy, self.trip_id, self.status = True, None, None
        self.request_number, self.plan, self.pin = plan.number, plan, None
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
        booked_for = None
        if plan.scheduled_ahead_s is not None:
            booked_for = datetime.now(UTC) + timedelta(seconds=plan.scheduled_ahead_s)
            due = self.recorder.now() + plan.scheduled_ahead_s
            self.recorder.emit(kpi.SCHEDULED, request=plan.number, value=round(due, 4))
        try:
            trip = await self._create(api, plan, quote, booked_for)
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

    async def _create(
        self,
        api: Api,
        plan: RequestPlan,
        quote: dict | None = None,
        booked_for: datetime | None = None,
    ) -> dict | None:
        if self.socket is None:
            raise SimError(f"{self.session.username} is not connected")
        payload = plan.body()
        if self.quoting:
            payload = plan.priced_body(quote.get("quote_id") if quote else None)
        if booked_for is not None:
            payload = plan.scheduled_body(payload, booked_for)
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
        previous, self.status = self.status, status
        trip_id = self.trip_id
        if isinstance(trip.get("pin"), str):
            self.pin = trip["pin"]
        if status not in WAITING:
            self.settled.set()
        elif previous in BEFORE_PICK_UP:
            # Its driver gave it up: dispatch looks for another (PROTOCOL.md Part 2).
            self.settled.clear()
            if trip_id is not None:
                self.curb.leave(trip_id)
            self.recorder.emit(
                kpi.REDISPATCHED,
                request=self.request_number,
                trip_id=trip_id,
                detail=trip.get("status_reason"),
            )
        if status == "STARTED":
            self.recorder.emit(kpi.MATCHED, request=self.request_number, trip_id=trip_id)
            eta_s = trip.get("pickup_eta_s")
            if isinstance(eta_s, int | float):
                self.recorder.emit(kpi.PICKUP_ETA, trip_id=trip_id, value=float(eta_s))
        elif status == "ARRIVED":
            self.recorder.emit(kpi.ARRIVED, trip_id=trip_id)
            if trip_id is not None and self.plan is not None and not self.plan.no_show:
                spawn(self.tasks, self._come_out(trip_id, self.plan.walk_s))
        elif status == "IN_PROGRESS":
            self.recorder.emit(kpi.PICKED_UP, trip_id=trip_id)
        elif status == "COMPLETED":
            self.recorder.emit(kpi.COMPLETED, trip_id=trip_id)
            self._note_fare(trip)
            self._rate_driver(trip_id)
        elif status == "CANCELED":
            self.recorder.emit(kpi.CANCELED, trip_id=trip_id, detail=trip.get("status_reason"))
        elif status == "EXPIRED":
            self.recorder.emit(kpi.EXPIRED, trip_id=trip_id, detail=trip.get("status_reason"))
        if status in FINAL:
            if trip_id is not None:
                self.curb.leave(trip_id)
            self._release()

    async def _come_out(self, trip_id: str, walk_s: float) -> None:
        """Walk to the car and show the PIN, unless the trip moved on meanwhile."""
        await asyncio.sleep(walk_s)
        if self.trip_id == trip_id and self.status == "ARRIVED":
            self.curb.come_out(trip_id, self.pin)

    def _rate_driver(self, trip_id: str | None) -> None:
        rating = self.plan.rating if self.plan is not None else None
        if rating is not None and trip_id is not None and self.api is not None:
            rate = rate_trip(
                self.api,
                self.session,
                self.recorder,
                trip_id=trip_id,
                rating=rating,
                rater=kpi.RIDER,
            )
            spawn(self.tasks, rate)

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
        """Still waiting for a driver (or for the create reply, or its booked time)."""
        return self.busy and (self.status is None or self.status in WAITING)

    def close_books(self) -> str | None:
        """End of the run: note an unresolved trip and stop recording. Returns
        the trip to cancel (one booked, still waiting for, or on its way to,
        the rider)."""
        open_ = self.busy and (self.status in ACTIVE or self.status in WAITING)
        trip_id = self.trip_id if open_ else None
        if trip_id is not None:
            self.recorder.emit(kpi.OPEN_AT_END, trip_id=trip_id, detail=self.status)
        self._release()
        return trip_id if self.status in WAITING | BEFORE_PICK_UP else None

    async def finish(self, trip_to_cancel: str | None) -> None:
        if self.tasks:  # a rating on its way goes through
            await asyncio.wait(list(self.tasks), timeout=REPLY_TIMEOUT_S)
        for task in list(self.tasks):
            task.cancel()
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
