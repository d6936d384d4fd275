"""The console's surge layer: the page tells it where the surge map is and
how often it changes, and its script draws that map when staff ask for it."""

import pytest
from django.contrib.staticfiles import finders

from pages.consumers import FEATURES

pytestmark = pytest.mark.django_db


def test_the_console_is_configured_for_the_surge_layer(client, make_user, settings):
    client.force_login(make_user("rider", is_staff=True))

    response = client.get("/ops/")

    assert response.status_code == 200
    config = response.context["config"]
    assert config["surgePath"] == "/api/ops/surge/"
    assert config["surgeRefreshS"] == settings.SURGE_REFRESH_S
    html = response.content.decode()
    assert 'id="show-surge"' in html and 'id="surge-legend"' in html


def test_the_console_script_draws_the_surge_map_from_this_host():
    with open(finders.find("pages/ops.js"), encoding="utf-8") as script:
        source = script.read()

    assert FEATURES["surge"] is True, "the stream tells the console to offer the layer"
    assert "fetch(config.surgePath" in source
    assert "L.polygon(cell.boundary" in source
    assert "setInterval(load, config.surgeRefreshS * 1000)" in source
    assert "http://" not in source and "https://" not in source
