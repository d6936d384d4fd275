"""`manage.py simulate`: a synthetic city against a running server (see sim/)."""

import asyncio
import logging
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sim.client import SimError
from sim.geo import DEFAULT_BBOX, BBox
from sim.run import run
from sim.scenario import SimConfig


def _bbox(text: str) -> BBox:
    try:
        return BBox.parse(text)
    except ValueError as error:
        raise CommandError(f"--bbox: {error}") from None


class Command(BaseCommand):
    help = (
        "Drive a running taxi server with simulated drivers and riders over REST and "
        "WebSockets, then print KPIs (trips matched/expired/canceled, time to match, "
        "offers per trip, acceptance rate, pickup distance; quotes, surge, fares and the "
        "pick-up ETA's error; no-shows, drivers' cancels and re-dispatches, ratings, and "
        "rides booked ahead served on time)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = SimConfig()
        parser.add_argument(
            "--base-url", default=defaults.base_url, help="the server (%(default)s)"
        )
        parser.add_argument("--drivers", type=int, default=defaults.drivers, help="%(default)s")
        parser.add_argument(
            "--riders", type=int, default=defaults.riders, help="rider accounts (%(default)s)"
        )
        parser.add_argument(
            "--rate",
            type=float,
            default=defaults.rate,
            help="trip requests per second (%(default)s)",
        )
        parser.add_argument(
            "--duration", type=float, default=defaults.duration_s, help="seconds (%(default)s)"
        )
        parser.add_argument(
            "--accept-prob", type=float, default=defaults.accept_prob,
            help="chance a driver accepts an offer (%(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--silent-prob", type=float, default=defaults.silent_prob,
            help="chance a driver lets an offer time out; the rest decline (%(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--cancel-prob", type=float, default=defaults.cancel_prob,
            help="chance a rider cancels when not matched within 4-20 s (%(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--rest-share", type=float, default=defaults.rest_share,
            help="share of requests made over REST instead of the socket (%(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--bbox", type=_bbox, default=DEFAULT_BBOX,
            help="south,west,north,east of the city (%(default)s)",
        )  # fmt: skip
        parser.add_argument("--seed", type=int, default=defaults.seed, help="%(default)s")
        parser.add_argument(
            "--speed",
            type=float,
            default=defaults.speed_kmh,
            help="driving speed, km/h (%(default)s)",
        )
        parser.add_argument(
            "--time-scale", type=float, default=defaults.time_scale,
            help="the city's clock runs this many times faster than the wall clock (%(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--ping-every", type=float, default=defaults.ping_every_s,
            help="seconds between a driver's update.location frames (%(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--drain", type=float, default=defaults.drain_s,
            help="seconds to wait after the run for requests still waiting (%(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--xl-driver-share", type=float, default=defaults.xl_driver_share,
            help="share of drivers whose car also serves xl (%(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--xl-request-share", type=float, default=defaults.xl_request_share,
            help="share of requests that ask for xl (%(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--surge-decline-share", type=float, default=defaults.surge_decline_share,
            help="share of riders who walk away from a quote surged above 1.0x (%(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--no-show-share", type=float, default=defaults.no_show_share,
            help="share of riders who never come out to the car (%(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--no-show-wait", type=float, default=defaults.no_show_wait_s,
            help="seconds a driver waits at the pick-up before canceling for a no-show; the "
            "server's NO_SHOW_WAIT_S must not be longer (%(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--driver-cancel-share", type=float, default=defaults.driver_cancel_share,
            help="share of drivers who give up the trips they accept, before the pick-up "
            "(%(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--rating-share", type=float, default=defaults.rating_share,
            help="share of completed trips each side rates (%(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--scheduled-share", type=float, default=defaults.scheduled_share,
            help="share of the requests due within the run booked ahead instead (%(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--schedule-ahead", type=float, default=defaults.schedule_ahead_s,
            help="seconds ahead a ride is booked; the server's SCHEDULE_MIN_AHEAD_S must be "
            "shorter (%(default)s)",
        )  # fmt: skip
        parser.add_argument(
            "--on-time-tolerance", type=float, default=defaults.on_time_tolerance_s,
            help="seconds after its time a booked ride's driver may reach the pick-up and "
            "still be on time (%(default)s)",
        )  # fmt: skip
        parser.add_argument("--json", type=Path, default=None, help="also write the report here")

    def handle(self, *args: object, **options: object) -> None:
        try:
            config = SimConfig(
                drivers=options["drivers"],
                riders=options["riders"],
                rate=options["rate"],
                duration_s=options["duration"],
                accept_prob=options["accept_prob"],
                silent_prob=options["silent_prob"],
                cancel_prob=options["cancel_prob"],
                rest_share=options["rest_share"],
                bbox=options["bbox"],
                seed=options["seed"],
                speed_kmh=options["speed"],
                time_scale=options["time_scale"],
                ping_every_s=options["ping_every"],
                drain_s=options["drain"],
                base_url=options["base_url"],
                xl_driver_share=options["xl_driver_share"],
                xl_request_share=options["xl_request_share"],
                surge_decline_share=options["surge_decline_share"],
                no_show_share=options["no_show_share"],
                no_show_wait_s=options["no_show_wait"],
                driver_cancel_share=options["driver_cancel_share"],
                rating_share=options["rating_share"],
                scheduled_share=options["scheduled_share"],
                schedule_ahead_s=options["schedule_ahead"],
                on_time_tolerance_s=options["on_time_tolerance"],
            )
        except ValueError as error:
            raise CommandError(str(error)) from None
        # One line per HTTP request would bury the progress line.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        try:
            asyncio.run(run(config, json_path=options["json"]))
        except SimError as error:
            raise CommandError(str(error)) from None
        except KeyboardInterrupt:
            raise CommandError("interrupted") from None
