"""Each process's copy of the catalogue (`pricing.catalogue`): reused while
nothing changed, dropped by any save, in this process and in the real web
processes, never kept past a Redis that lost its generation or past
MAX_AGE_S after an edit that bypassed the ORM's save, and not needed when
Redis is away."""

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pricing import catalogue, keys
from pricing.models import Product
from taxi.infra.redis import get_redis
from tests.e2e.test_trip_flow import App
from tests.pricing.support import closed_port, quote_body

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("catalogue", "high_rates"),
]


def priced_codes() -> list[str]:
    return [product.code for product, _card in catalogue.priced()]


def quoted(client) -> list[str]:
    response = client.post("/api/quotes/", quote_body(), format="json")
    assert response.status_code == 201, response.content
    return [quote["product"] for quote in response.json()["quotes"]]


def deactivate_xl() -> None:
    xl = Product.objects.get(code="xl")
    xl.active = False
    xl.save()


def test_a_warm_copy_reads_no_table(django_assert_num_queries):
    priced_codes()

    with django_assert_num_queries(0):
        assert priced_codes() == ["standard", "xl"]


def test_a_product_saved_is_priced_by_the_very_next_quote(rider, client_for):
    client = client_for(rider)
    assert quoted(client) == ["standard", "xl"]

    deactivate_xl()

    assert quoted(client) == ["standard"]


def test_new_rates_price_the_next_quote_with_the_new_version(rider, client_for):
    client = client_for(rider)
    before = client.post("/api/quotes/", quote_body("standard"), format="json").json()["quotes"][0]
    standard = Product.objects.get(code="standard")
    card_before = standard.current_rate_card()

    standard.per_km *= 2
    standard.save()

    after = client.post("/api/quotes/", quote_body("standard"), format="json").json()["quotes"][0]
    card_after = standard.current_rate_card()
    assert card_after.version == card_before.version + 1
    assert card_after.per_km == card_before.per_km * 2
    assert float(after["amount"]) > float(before["amount"])


def test_every_save_replaces_the_generation_other_processes_compare():
    priced_codes()
    generation = get_redis().get(keys.CATALOGUE_GENERATION)
    assert generation

    deactivate_xl()

    assert get_redis().get(keys.CATALOGUE_GENERATION) not in (None, generation)


def test_a_redis_that_lost_the_generation_makes_every_copy_read_again():
    priced_codes()
    Product.objects.filter(code="xl").update(active=False)  # no signal
    assert priced_codes() == ["standard", "xl"], "the copy is still the one in use"

    get_redis().flushdb()

    assert priced_codes() == ["standard"]


def test_an_edit_that_bypasses_save_is_read_once_the_copy_is_max_age_old(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(catalogue, "_clock", lambda: now[0])
    priced_codes()
    Product.objects.filter(code="xl").update(active=False)  # no signal

    now[0] += catalogue.MAX_AGE_S - 1
    assert priced_codes() == ["standard", "xl"]
    now[0] += 1
    assert priced_codes() == ["standard"]


def test_without_redis_every_quote_reads_the_catalogue(monkeypatch, rider, client_for, caplog):
    dead = redis.Redis(
        host="127.0.0.1",
        port=closed_port(),
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )
    monkeypatch.setattr(catalogue, "get_redis", lambda: dead)
    client = client_for(rider)
    assert quoted(client) == ["standard", "xl"]

    Product.objects.filter(code="xl").update(active=False)

    assert quoted(client) == ["standard"]
    assert "pricing.catalogue_generation_unavailable" in caplog.text


@pytest.mark.e2e
def test_a_save_reaches_every_real_web_process_at_once(e2e_stack, settings):
    stack = e2e_stack(webs=2, workers=0, beat=False)
    apps = [App(url) for url in stack.web_urls]
    riders = [app.sign_up_and_log_in(f"r{n}@example.com", "rider") for n, app in enumerate(apps)]

    def codes(app: App, rider: dict) -> list[str]:
        status, body = app.call("POST", "/api/quotes/", quote_body(), token=rider["access"])
        assert status == 201, body
        return [quote["product"] for quote in body["quotes"]]

    assert [codes(app, rider) for app, rider in zip(apps, riders, strict=True)] == [
        ["standard", "xl"],
        ["standard", "xl"],
    ]

    # Staff save the product in another process that shares the stack's Redis.
    settings.REDIS_URL = stack.base_env["REDIS_URL"]
    deactivate_xl()

    assert [codes(app, rider) for app, rider in zip(apps, riders, strict=True)] == [
        ["standard"],
        ["standard"],
    ]
