// The staff console: one socket to /ops/stream/ (the session cookie
// authenticates it), a snapshot on connect, then one delta a second.
import { COLORS, makeMap } from "./map.js";

const config = JSON.parse(document.getElementById("config").textContent);
const $ = (id) => document.getElementById(id);
const TRIP_ROWS = 200;
// Thousands of markers: one canvas, not one SVG element each.
const map = makeMap("map", config, { preferCanvas: true });
const drivers = new Map(); // id -> {lat, lng, state, marker}
const trips = new Map(); // id -> {trip, marker, line}
let tick = 0;
let lastAt = null;
let fitted = false;
let selected = null;
let attempt = 0;

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}${config.streamPath}`);
  setConnection("connecting");
  ws.onopen = () => {
    attempt = 0;
    setConnection("open");
  };
  // A snapshot, then a delta a tick; either may be followed by `ops.part`
  // frames of the same tick (a big city does not fit in one frame).
  ws.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    const data = frame.data;
    if (frame.type === "ops.snapshot") {
      clear();
      $("surge-toggle").hidden = !data.features.surge;
    } else if (frame.type === "ops.delta" || frame.type === "ops.part") {
      const expected = frame.type === "ops.delta" ? tick + 1 : tick;
      // Each builds on what came before; a gap means resynchronising.
      if (data.tick !== expected) return ws.close();
    } else {
      return;
    }
    apply(data);
    if (frame.type === "ops.snapshot" && !fitted && drivers.size) {
      fitted = true;
      map.fitBounds(L.latLngBounds([...drivers.values()].map((d) => [d.lat, d.lng])).pad(0.2), { maxZoom: 15 });
    }
  };
  ws.onclose = (event) => {
    // The session ended (log-out, deactivation): the page sends us to log in.
    if (event.code === 4001 || event.code === 4003) return location.reload();
    const delay = Math.min(30_000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
    attempt += 1;
    setConnection("closed", delay);
    setTimeout(connect, delay);
  };
}

function setConnection(status, delay) {
  $("connection").dataset.state = status;
  $("connection").textContent = {
    connecting: "connecting…",
    open: "live",
    closed: `offline, retrying in ${Math.ceil((delay || 0) / 1000)} s`,
  }[status];
}

function clear() {
  for (const id of [...drivers.keys()]) removeDriver(id);
  for (const id of [...trips.keys()]) removeTrip(id);
  renderTrips();
}

function apply(data) {
  if (data.drivers) {
    for (const row of data.drivers.set) setDriver(row);
    for (const id of data.drivers.gone) removeDriver(id);
  }
  if (data.trips) {
    for (const trip of data.trips.set) setTrip(trip);
    for (const id of data.trips.gone) removeTrip(id);
  }
  if (data.trips) renderTrips();
  if (data.counters) counters(data.counters);
  tick = data.tick;
  if (data.at) lastAt = Date.parse(data.at);
}

function setDriver([id, lat, lng, state]) {
  const known = drivers.get(id);
  const style = { radius: 5, color: "#fff", weight: 1, fillColor: COLORS[state] || "#555", fillOpacity: 0.95 };
  if (known) {
    known.marker.setLatLng([lat, lng]);
    if (known.state !== state) known.marker.setStyle(style);
    Object.assign(known, { lat, lng, state });
    return;
  }
  const marker = L.circleMarker([lat, lng], style).addTo(map).bindTooltip(`driver ${id}`);
  drivers.set(id, { lat, lng, state, marker });
}

function removeDriver(id) {
  const known = drivers.get(id);
  if (known) known.marker.remove();
  drivers.delete(id);
}

function setTrip(trip) {
  const known = trips.get(trip.id);
  const color = COLORS[trip.status] || "#555";
  const style = { radius: 9, color, weight: 3, fill: false };
  if (known) {
    known.trip = trip;
    known.marker.setLatLng(trip.pick).setStyle(style);
    if (known.line) known.line.setStyle({ color });
  } else {
    const marker = L.circleMarker(trip.pick, style).addTo(map).on("click", () => select(trip.id));
    const line = trip.drop ? L.polyline([trip.pick, trip.drop], { color, weight: 2, dashArray: "4 6", interactive: false }).addTo(map) : null;
    trips.set(trip.id, { trip, marker, line });
  }
  if (selected === trip.id) detail(trip.id);
}

function removeTrip(id) {
  const known = trips.get(id);
  if (!known) return;
  known.marker.remove();
  if (known.line) known.line.remove();
  trips.delete(id);
}

function counters(c) {
  $("count-online").textContent = c.drivers_online;
  $("count-requests").textContent = c.open_requests;
  $("match-p50").textContent = c.match_p50_s == null ? "–" : `${c.match_p50_s} s`;
  $("acceptance").textContent = c.acceptance == null ? "–" : `${Math.round(c.acceptance * 100)} %`;
  $("count-free").textContent = c.drivers.free;
  $("count-offered").textContent = c.drivers.offered;
  $("count-on-trip").textContent = c.drivers.on_trip;
  $("count-silent").textContent = c.drivers.silent;
}

function renderTrips() {
  const rows = [...trips.values()]
    .map((known) => known.trip)
    .sort((a, b) => b.created.localeCompare(a.created))
    .slice(0, TRIP_ROWS)
    .map((trip) => {
      const row = document.createElement("li");
      row.dataset.tripId = trip.id;
      row.dataset.status = trip.status;
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.dataset.status = trip.status;
      badge.textContent = trip.status;
      const text = document.createElement("span");
      text.textContent = ` ${trip.id.slice(0, 8)} · ${new Date(trip.created).toLocaleTimeString()}${trip.driver ? ` · driver ${trip.driver}` : ""}`;
      row.append(badge, text);
      row.addEventListener("click", () => select(trip.id));
      return row;
    });
  $("trips").replaceChildren(...rows);
}

function select(id) {
  selected = id;
  const known = trips.get(id);
  if (known) map.panTo(known.trip.pick);
  detail(id);
}

// The trip's history from the database: every offer, who got it, how it ended.
async function detail(id) {
  const response = await fetch(`/ops/trip/${id}/`, { credentials: "same-origin" });
  if (!response.ok || selected !== id) return;
  const trip = await response.json();
  $("trip-detail").hidden = false;
  $("detail-status").textContent = trip.status;
  $("detail-status").dataset.status = trip.status;
  $("detail-text").textContent = `Trip ${trip.id}${trip.reason ? ` (${trip.reason})` : ""}, requested ${new Date(trip.created).toLocaleTimeString()}${trip.driver ? `, driver ${trip.driver}` : ""}.`;
  const lines = trip.offers.map((offer) => {
    const line = document.createElement("li");
    const closed = offer.closed_at ? ` at ${new Date(offer.closed_at).toLocaleTimeString()}` : "";
    line.textContent = `${new Date(offer.at).toLocaleTimeString()} offered to driver ${offer.driver} (${offer.distance_km ?? "?"} km): ${offer.status}${closed}`;
    return line;
  });
  if (!lines.length) {
    const none = document.createElement("li");
    none.textContent = "No offer yet.";
    lines.push(none);
  }
  $("detail-history").replaceChildren(...lines);
}

// Surge by cell (GET /api/ops/surge/, staff only), under the markers while
// the box is ticked, re-read every surge refresh: tinted from clear (×1.0,
// a cell with drivers or requests but no surge) to strong (the highest).
const SURGE_COLOR = "#c0392b";
const surgeLayer = L.layerGroup().addTo(map);
let surgeTimer = null;

async function loadSurge() {
  const response = await fetch(config.surgePath, { credentials: "same-origin" });
  if (!response.ok || !$("show-surge").checked) return;
  const data = await response.json();
  const top = Number(data.max);
  surgeLayer.clearLayers();
  for (const cell of data.cells) {
    const multiplier = Number(cell.multiplier);
    const share = top > 1 ? Math.min(1, (multiplier - 1) / (top - 1)) : 0;
    const style = { color: SURGE_COLOR, weight: 1, opacity: 0.4, fillColor: SURGE_COLOR, fillOpacity: multiplier > 1 ? 0.12 + 0.5 * share : 0.02 };
    L.polygon(cell.boundary, style)
      .bindTooltip(`×${cell.multiplier} · ${cell.supply} free · ${cell.demand} requests`)
      .addTo(surgeLayer)
      .bringToBack(); // trips stay clickable above it
  }
  $("surge-max").textContent = data.max;
}

function showSurge(on) {
  clearInterval(surgeTimer);
  surgeLayer.clearLayers();
  $("surge-legend").hidden = !on;
  if (!on) return;
  const load = () => loadSurge().catch(() => {}); // the next period retries
  load();
  surgeTimer = setInterval(load, config.surgeRefreshS * 1000);
}

$("show-surge").addEventListener("change", (event) => showSurge(event.target.checked));

$("detail-close").addEventListener("click", () => {
  selected = null;
  $("trip-detail").hidden = true;
});

setInterval(() => {
  if (lastAt) $("freshness").textContent = `updated ${Math.max(0, Math.round((Date.now() - lastAt) / 1000))} s ago`;
}, 1000);

// Test and debugging hook: what the map shows, read-only.
window.taxiOps = {
  driver: (id) => {
    const known = drivers.get(id);
    return known ? { lat: known.marker.getLatLng().lat, lng: known.marker.getLatLng().lng, state: known.state } : null;
  },
  trip: (id) => (trips.has(id) ? trips.get(id).trip : null),
  tick: () => tick,
  surgeCells: () => surgeLayer.getLayers().length,
};

connect();
