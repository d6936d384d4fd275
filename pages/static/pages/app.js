// The rider and driver app: a client of the public REST and WebSocket API
// only (PROTOCOL.md), as a phone app would be. REST is the truth; the socket
// brings notifications, and every (re)connection re-reads REST.
import { Api, Stream } from "./taxi-api.js";
import { COLORS, distanceKm, makeMap } from "./map.js";

const config = JSON.parse(document.getElementById("config").textContent);
const $ = (id) => document.getElementById(id);
const ACTIVE = ["REQUESTED", "STARTED", "IN_PROGRESS"];
const FINAL = ["COMPLETED", "CANCELED", "EXPIRED"];
const HEARTBEAT_MS = 10_000; // well inside the presence window (30 s by default)

const api = new Api();
const map = makeMap("map", config);
let stream = null;
let features = { quotes: false, rating: false, history: false };

// What the screen shows, from the last REST read and the pushes since.
const state = {
  trip: null, // the rider's trip, or the driver's assigned trip
  offer: null, // driver: {offer_id, trip, deadline}
  plan: { pickUp: null, dropOff: null, quote: null },
  driver: { online: false, position: null, source: "map", watch: null, heartbeat: null, drive: null },
  car: null, // the assigned driver's last position, for the rider
};
const layers = { pickUp: null, dropOff: null, car: null, route: null };

// --- small view helpers ---------------------------------------------------

function toast(message, kind = "info") {
  const box = $("toast");
  box.textContent = message;
  box.dataset.kind = kind;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (box.hidden = true), 6000);
}

function problem(reply) {
  const data = reply.data || {};
  if (data.detail) return data.detail;
  return Object.entries(data)
    .map(([field, messages]) => `${field}: ${[].concat(messages).join(" ")}`)
    .join("; ") || `Error ${reply.status}`;
}

function show(id, visible) {
  $(id).hidden = !visible;
}

function fmt(point) {
  return `${point[0].toFixed(5)}, ${point[1].toFixed(5)}`;
}

function dot(point, color, radius = 9, layer = null) {
  if (layer) {
    layer.setLatLng(point);
    return layer;
  }
  return L.circleMarker(point, { radius, color: "#fff", weight: 2, fillColor: color, fillOpacity: 1 }).addTo(map);
}

function clearLayer(name) {
  if (layers[name]) layers[name].remove();
  layers[name] = null;
}

const STATUS_TEXT = {
  REQUESTED: "Finding a driver…",
  STARTED: "Your driver is on the way",
  IN_PROGRESS: "On the way to the drop-off",
  COMPLETED: "You have arrived",
  CANCELED: "Canceled",
  EXPIRED: "No driver could take this trip",
};

// --- session ---------------------------------------------------------------

function enter() {
  const user = api.user;
  show("auth", !user);
  show("log-out", Boolean(user));
  show("rider", Boolean(user) && user.group === "rider");
  show("driver", Boolean(user) && user.group === "driver");
  $("who").textContent = user ? `${user.first_name} (${user.group})` : "";
  if (!user) {
    if (stream) stream.stop();
    stream = null;
    setConnection("idle");
    return;
  }
  api.features().then((found) => {
    features = found;
    renderTrip();
  });
  stream = new Stream(api, { onFrame, onOpen: reload, onState: setConnection });
  stream.start();
}

function setConnection(status, delay) {
  const text = {
    idle: "",
    connecting: "connecting…",
    reconnecting: "reconnecting…",
    open: "live",
    closed: `offline, retrying in ${Math.ceil((delay || 0) / 1000)} s`,
    "logged-out": "logged out",
  }[status];
  $("connection").textContent = text;
  $("connection").dataset.state = status;
  if (status === "logged-out") {
    api.save(null);
    enter();
  }
}

api.onLoggedOut = () => {
  toast("Your session has ended; please log in again.", "error");
  enter();
};

for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    for (const other of document.querySelectorAll(".tab")) other.classList.toggle("active", other === tab);
    show("log-in-form", tab.dataset.form === "log-in-form");
    show("sign-up-form", tab.dataset.form === "sign-up-form");
  });
}

$("log-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const reply = await api.logIn(form.get("username"), form.get("password"));
  if (!reply.ok) return toast(problem(reply), "error");
  event.target.reset();
  enter();
});

$("sign-up-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = Object.fromEntries(new FormData(event.target));
  const reply = await api.call("POST", "/api/sign_up/", body, { auth: false });
  if (!reply.ok) return toast(problem(reply), "error");
  const logged = await api.logIn(body.username, body.password1);
  if (!logged.ok) return toast(problem(logged), "error");
  event.target.reset();
  enter();
});

$("log-out").addEventListener("click", async () => {
  await goOffline(false);
  await api.logOut();
  resetView();
  enter();
});

function resetView() {
  state.trip = null;
  state.offer = null;
  state.car = null;
  state.plan = { pickUp: null, dropOff: null, quote: null };
  for (const name of Object.keys(layers)) clearLayer(name);
  renderTrip();
  renderOffer();
}

// --- pushes and re-reads --------------------------------------------------------

function onFrame(frame) {
  const data = frame.data || {};
  switch (frame.type) {
    case "trip.created":
    case "trip.updated":
      return applyTrip(data);
    case "trip.offer":
      state.offer = {
        offer_id: data.offer_id,
        trip: data.trip,
        // Our clock may differ from the server's: never longer than timeout_s from now.
        deadline: Math.min(Date.parse(data.expires_at), Date.now() + data.timeout_s * 1000),
      };
      return renderOffer();
    case "trip.offer.revoked":
      if (state.offer && state.offer.trip.id === data.trip_id) {
        state.offer = null;
        renderOffer();
        toast(data.reason === "canceled" ? "The rider canceled." : "The offer has expired.");
      }
      return;
    case "driver.location":
      if (state.trip && data.trip_id === state.trip.id) {
        state.car = { point: [data.lat, data.lng], eta: data.eta_s };
        renderCar();
      }
      return;
    case "driver.status":
      state.driver.online = data.status === "online";
      return renderDriver();
    case "error":
      return toast(data.detail || data.code, "error");
    default:
  }
}

function applyTrip(trip) {
  const current = state.trip;
  if (current && current.id === trip.id) {
    if (trip.version <= current.version) return; // stale or repeated push
    if (trip.version > current.version + 1) return refreshTrip(trip.id); // a gap: REST knows
  }
  if (current && current.id !== trip.id && ACTIVE.includes(current.status) && !ACTIVE.includes(trip.status)) {
    return; // an old trip's late news does not replace the one in progress
  }
  setTrip(trip);
}

function setTrip(trip) {
  const isDriver = api.user && api.user.group === "driver";
  if (isDriver && trip.status === "REQUESTED") {
    // Offered to us; the offer card shows it until accepted.
    if (!state.offer || state.offer.trip.id !== trip.id) state.offer = { offer_id: null, trip, deadline: null };
    renderOffer();
    return;
  }
  if (state.offer && state.offer.trip.id === trip.id) state.offer = null;
  if (!state.trip || state.trip.id !== trip.id) state.car = null;
  state.trip = trip;
  if (FINAL.includes(trip.status)) state.car = null;
  renderOffer();
  renderTrip();
}

async function refreshTrip(tripId) {
  const reply = await api.call("GET", `/api/trip/${tripId}/`);
  if (reply.ok) setTrip(reply.data);
}

// After every (re)connection: the newest trips are the truth.
async function reload() {
  const reply = await api.call("GET", "/api/trip/?limit=5");
  if (!reply.ok) return;
  const trips = reply.data.results;
  const me = api.user;
  if (me.group === "driver") {
    const assigned = trips.find((t) => ACTIVE.includes(t.status) && t.driver && t.driver.id === me.id);
    const offered = trips.find((t) => t.status === "REQUESTED" && !t.driver);
    if (state.offer && (!offered || offered.id !== state.offer.trip.id)) state.offer = null;
    if (offered) setTrip(offered);
    if (assigned) setTrip(assigned);
    else if (state.trip && ACTIVE.includes(state.trip.status)) await refreshTrip(state.trip.id);
    renderOffer();
    if (state.driver.online && state.driver.position) sendPosition();
    return;
  }
  const active = trips.find((t) => ACTIVE.includes(t.status));
  if (active) setTrip(active);
  else if (state.trip && ACTIVE.includes(state.trip.status)) await refreshTrip(state.trip.id);
}

// --- the rider ---------------------------------------------------------------------

map.on("click", (event) => {
  const point = [Number(event.latlng.lat.toFixed(6)), Number(event.latlng.lng.toFixed(6))];
  const user = api.user;
  if (!user) return;
  if (user.group === "driver") return placeCar(point);
  if (state.trip && ACTIVE.includes(state.trip.status)) return;
  const plan = state.plan;
  if (!plan.pickUp || plan.dropOff) {
    plan.pickUp = point;
    plan.dropOff = null;
    $("pick-up-address").value = `Pick-up at ${fmt(point)}`;
    $("drop-off-address").value = "";
    clearLayer("dropOff");
    layers.pickUp = dot(point, COLORS.pickUp, 9, layers.pickUp);
  } else {
    plan.dropOff = point;
    $("drop-off-address").value = `Drop-off at ${fmt(point)}`;
    layers.dropOff = dot(point, COLORS.dropOff, 9, layers.dropOff);
  }
  $("plan-hint").textContent = plan.dropOff
    ? "Request the ride, or tap the map to start over."
    : "Tap the drop-off, or request the ride now.";
  $("request").disabled = false;
  quote();
});

// Prices come with pricing (PROTOCOL.md Part 2): shown only when the service quotes.
async function quote() {
  const plan = state.plan;
  plan.quote = null;
  show("quote", false);
  if (!features.quotes || !plan.pickUp || !plan.dropOff) return;
  const reply = await api.call("POST", "/api/quotes/", {
    pick_up_lat: plan.pickUp[0], pick_up_lng: plan.pickUp[1],
    drop_off_lat: plan.dropOff[0], drop_off_lng: plan.dropOff[1],
  });
  if (!reply.ok || !reply.data.quotes || !reply.data.quotes.length) return;
  const best = reply.data.quotes[0];
  plan.quote = best;
  const eta = best.pickup_eta_s == null ? "no driver nearby yet" : `pick-up in about ${Math.ceil(best.pickup_eta_s / 60)} min`;
  const surge = Number(best.surge_multiplier) > 1 ? ` · busy: ×${best.surge_multiplier}` : "";
  $("quote").textContent = `${best.amount} ${best.currency} · ${eta}${surge}`;
  show("quote", true);
}

$("clear-plan").addEventListener("click", () => {
  state.plan = { pickUp: null, dropOff: null, quote: null };
  clearLayer("pickUp");
  clearLayer("dropOff");
  $("pick-up-address").value = "";
  $("drop-off-address").value = "";
  $("request").disabled = true;
  $("plan-hint").textContent = "Tap the map: first the pick-up, then the drop-off.";
  show("quote", false);
});

$("request").addEventListener("click", async () => {
  const plan = state.plan;
  if (!plan.pickUp) return;
  const body = {
    pick_up_address: $("pick-up-address").value.trim() || `Pick-up at ${fmt(plan.pickUp)}`,
    pick_up_lat: plan.pickUp[0],
    pick_up_lng: plan.pickUp[1],
    drop_off_address: $("drop-off-address").value.trim() || (plan.dropOff ? `Drop-off at ${fmt(plan.dropOff)}` : "Not given"),
  };
  if (plan.dropOff) Object.assign(body, { drop_off_lat: plan.dropOff[0], drop_off_lng: plan.dropOff[1] });
  if (plan.quote) body.quote_id = plan.quote.quote_id;
  $("request").disabled = true;
  // A retried request returns the first trip instead of a second one.
  const reply = await api.call("POST", "/api/trip/", body, { headers: { "Idempotency-Key": crypto.randomUUID() } });
  if (!reply.ok) {
    $("request").disabled = false;
    if (reply.data && reply.data.code === "active_trip_exists") return reload();
    return toast(problem(reply), "error");
  }
  applyTrip(reply.data);
});

$("cancel-trip").addEventListener("click", () => cancelTrip());
$("driver-cancel").addEventListener("click", () => cancelTrip());

async function cancelTrip() {
  if (!state.trip) return;
  const reply = await api.call("POST", `/api/trip/${state.trip.id}/cancel/`, {});
  if (!reply.ok) {
    toast(problem(reply), "error");
    return refreshTrip(state.trip.id);
  }
  applyTrip(reply.data);
}

$("new-ride").addEventListener("click", () => {
  state.trip = null;
  state.car = null;
  $("clear-plan").click();
  renderTrip();
});

for (const button of document.querySelectorAll("[data-stars]")) {
  button.addEventListener("click", async () => {
    const reply = await api.call("POST", `/api/trip/${state.trip.id}/rating/`, { stars: Number(button.dataset.stars) });
    if (!reply.ok) return toast(problem(reply), "error");
    show("rating", false);
    toast("Thank you.");
  });
}

$("show-history").addEventListener("click", async () => {
  const reply = await api.call("GET", `/api/trip/${state.trip.id}/events/`);
  if (!reply.ok) return toast(problem(reply), "error");
  const box = $("trip-history");
  box.replaceChildren(...reply.data.map((event) => {
    const line = document.createElement("div");
    line.textContent = `${new Date(event.at).toLocaleTimeString()} ${event.from || "—"} → ${event.to} (${event.by}${event.reason ? `, ${event.reason}` : ""})`;
    return line;
  }));
  show("trip-history", true);
});

function renderTrip() {
  const trip = state.trip;
  const user = api.user;
  if (!user) return;
  if (user.group === "driver") return renderDriverTrip();
  show("rider-plan", !trip);
  show("rider-trip", Boolean(trip));
  if (!trip) {
    clearLayer("car");
    clearLayer("route");
    return;
  }
  $("trip-status").textContent = trip.status;
  $("trip-status").dataset.status = trip.status;
  let text = STATUS_TEXT[trip.status] || trip.status;
  if (trip.status === "EXPIRED" && trip.status_reason === "stale") text = "The request timed out";
  $("trip-text").textContent = `${text}. ${trip.pick_up_address}${trip.drop_off_lat != null ? ` → ${trip.drop_off_address}` : ""}`;
  $("driver-info").textContent = trip.driver ? `Driver: ${trip.driver.first_name} ${trip.driver.last_name}` : "";
  show("cancel-trip", ["REQUESTED", "STARTED"].includes(trip.status));
  show("new-ride", FINAL.includes(trip.status));
  show("rating", features.rating && trip.status === "COMPLETED");
  show("show-history", features.history);
  const pickUp = [trip.pick_up_lat, trip.pick_up_lng];
  layers.pickUp = dot(pickUp, COLORS.pickUp, 9, layers.pickUp);
  if (trip.drop_off_lat != null) layers.dropOff = dot([trip.drop_off_lat, trip.drop_off_lng], COLORS.dropOff, 9, layers.dropOff);
  renderCar();
  tickElapsed();
}

function renderCar() {
  const trip = state.trip;
  if (!trip || !state.car || !["STARTED", "IN_PROGRESS"].includes(trip.status)) {
    clearLayer("car");
    $("driver-eta").textContent = "";
    return;
  }
  const point = state.car.point;
  layers.car = dot(point, COLORS.car, 8, layers.car);
  const goal = trip.status === "STARTED" ? [trip.pick_up_lat, trip.pick_up_lng] : trip.drop_off_lat != null ? [trip.drop_off_lat, trip.drop_off_lng] : null;
  if (!goal) {
    $("driver-eta").textContent = "";
    return;
  }
  const where = trip.status === "STARTED" ? "the pick-up" : "the drop-off";
  const km = distanceKm(point, goal);
  // eta_s arrives with the service's arrival estimates (PROTOCOL.md Part 2).
  const eta = state.car.eta != null ? `, about ${Math.max(1, Math.round(state.car.eta / 60))} min` : "";
  $("driver-eta").textContent = `Car ${km.toFixed(2)} km from ${where}${eta}`;
  $("driver-eta").dataset.km = km.toFixed(3);
}

function tickElapsed() {
  const trip = state.trip;
  if (!trip || trip.status !== "REQUESTED") {
    $("trip-elapsed").textContent = "";
    return;
  }
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(trip.created)) / 1000));
  $("trip-elapsed").textContent = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
}
setInterval(tickElapsed, 1000);

// --- the driver --------------------------------------------------------------------

for (const radio of document.querySelectorAll('input[name="position-source"]')) {
  radio.addEventListener("change", () => useSource(radio.value));
}

function useSource(source) {
  const driver = state.driver;
  driver.source = source;
  clearInterval(driver.drive);
  if (driver.watch !== null) navigator.geolocation.clearWatch(driver.watch);
  driver.watch = null;
  if (source !== "gps") {
    $("position-text").textContent = "Tap the map to place your car; tap again to move it.";
    return;
  }
  if (!navigator.geolocation) {
    toast("This browser cannot tell where it is; pick a position on the map.", "error");
    return;
  }
  $("position-text").textContent = "Waiting for this device's position…";
  driver.watch = navigator.geolocation.watchPosition(
    (found) => moveCar([found.coords.latitude, found.coords.longitude], found.coords.heading),
    (failure) => toast(`No position from this device: ${failure.message}`, "error"),
    { enableHighAccuracy: true, maximumAge: 5000 },
  );
}

// A car picked on the map: placed there while offline; once online it drives
// there at city speed, a position a second, as a phone's positions would
// come (the service refuses a jump no car could make, LOCATION_MAX_SPEED_KMH).
const DRIVE_KMH = 50;
const DRIVE_STEP_MS = 1000;

function placeCar(point) {
  const driver = state.driver;
  if (driver.source !== "map") return;
  clearInterval(driver.drive);
  if (!driver.online || !driver.position) return moveCar(point);
  $("position-text").textContent = `Driving to ${fmt(point)}…`;
  const stepKm = (DRIVE_KMH * DRIVE_STEP_MS) / 3_600_000;
  driver.drive = setInterval(() => {
    const here = driver.position;
    const leftKm = distanceKm(here, point);
    if (leftKm <= stepKm) {
      clearInterval(driver.drive);
      return moveCar(point);
    }
    const f = stepKm / leftKm;
    moveCar([here[0] + (point[0] - here[0]) * f, here[1] + (point[1] - here[1]) * f], null, true);
  }, DRIVE_STEP_MS);
}

function moveCar(point, heading = null, driving = false) {
  const driver = state.driver;
  const before = driver.position;
  driver.position = point;
  driver.heading = heading ?? (before ? bearing(before, point) : null);
  layers.car = dot(point, COLORS.car, 8, layers.car);
  if (!driving) $("position-text").textContent = `Car at ${fmt(point)}`;
  $("go-online").disabled = false;
  if (driver.online) sendPosition();
  if (!state.trip) map.panTo(point);
}

function bearing(a, b) {
  const rad = Math.PI / 180;
  const y = Math.sin((b[1] - a[1]) * rad) * Math.cos(b[0] * rad);
  const x = Math.cos(a[0] * rad) * Math.sin(b[0] * rad) - Math.sin(a[0] * rad) * Math.cos(b[0] * rad) * Math.cos((b[1] - a[1]) * rad);
  return Math.round(((Math.atan2(y, x) / rad) + 360) % 360);
}

function sendPosition() {
  const { position, heading } = state.driver;
  if (!position) return;
  const data = { lat: position[0], lng: position[1] };
  if (heading != null) data.heading = heading;
  if (!stream || !stream.send("update.location", data)) {
    api.call("POST", "/api/driver/location/", data);
  }
}

$("go-online").addEventListener("click", async () => {
  const position = state.driver.position;
  if (!position) return toast("Place your car on the map first.", "error");
  const reply = await api.call("POST", "/api/driver/online/", { lat: position[0], lng: position[1] });
  if (!reply.ok) return toast(problem(reply), "error");
  state.driver.online = true;
  renderDriver();
});

$("go-offline").addEventListener("click", () => goOffline(true));

async function goOffline(render) {
  if (!state.driver.online) return;
  await api.call("POST", "/api/driver/offline/", {});
  state.driver.online = false;
  if (render) renderDriver();
}

function renderDriver() {
  const driver = state.driver;
  $("driver-state").textContent = driver.online ? "online" : "offline";
  $("driver-state").dataset.state = driver.online ? "online" : "offline";
  show("go-online", !driver.online);
  show("go-offline", driver.online);
  clearInterval(driver.heartbeat);
  // Silence past the presence window stops offers: a parked car still pings.
  driver.heartbeat = driver.online ? setInterval(sendPosition, HEARTBEAT_MS) : null;
}

function renderOffer() {
  const offer = state.offer;
  show("offer", Boolean(offer));
  if (!offer) {
    const driving = state.trip && ACTIVE.includes(state.trip.status);
    if (api.user && api.user.group === "driver" && !driving) clearLayer("pickUp");
    return;
  }
  const trip = offer.trip;
  layers.pickUp = dot([trip.pick_up_lat, trip.pick_up_lng], COLORS.pickUp, 9, layers.pickUp);
  const distance = trip.distance_km != null ? `${Number(trip.distance_km).toFixed(1)} km away. ` : "";
  $("offer-text").textContent = `${distance}Pick-up: ${trip.pick_up_address}. Drop-off: ${trip.drop_off_address}.`;
  tickOffer();
}

function tickOffer() {
  const offer = state.offer;
  if (!offer) return;
  if (offer.deadline === null) {
    $("offer-countdown").textContent = "";
    return;
  }
  const left = Math.ceil((offer.deadline - Date.now()) / 1000);
  if (left <= 0) {
    state.offer = null;
    show("offer", false);
    toast("The offer has expired.");
    return;
  }
  $("offer-countdown").textContent = `${left} s`;
}
setInterval(tickOffer, 250);

$("accept-offer").addEventListener("click", async () => {
  const offer = state.offer;
  if (!offer) return;
  const reply = await api.call("POST", `/api/trip/${offer.trip.id}/accept/`, {});
  state.offer = null;
  renderOffer();
  if (!reply.ok) return toast(problem(reply), "error");
  applyTrip(reply.data);
});

$("decline-offer").addEventListener("click", async () => {
  const offer = state.offer;
  if (!offer) return;
  state.offer = null;
  renderOffer();
  const reply = await api.call("POST", `/api/trip/${offer.trip.id}/decline/`, {});
  if (!reply.ok) toast(problem(reply), "error");
});

$("picked-up").addEventListener("click", () => move("IN_PROGRESS"));
$("dropped-off").addEventListener("click", () => move("COMPLETED"));

async function move(status) {
  const reply = await api.call("POST", `/api/trip/${state.trip.id}/status/`, { status });
  if (!reply.ok) {
    toast(problem(reply), "error");
    return refreshTrip(state.trip.id);
  }
  applyTrip(reply.data);
}

function renderDriverTrip() {
  const trip = state.trip;
  const live = trip && (ACTIVE.includes(trip.status) || FINAL.includes(trip.status));
  show("driver-trip", Boolean(live));
  if (!trip) {
    clearLayer("pickUp");
    clearLayer("dropOff");
    return;
  }
  $("dtrip-status").textContent = trip.status;
  $("dtrip-status").dataset.status = trip.status;
  const rider = trip.rider ? `${trip.rider.first_name} ${trip.rider.last_name}` : "the rider";
  const text = {
    STARTED: `Drive to the pick-up: ${trip.pick_up_address}. Pick up ${rider}.`,
    IN_PROGRESS: `Drive ${rider} to ${trip.drop_off_address}.`,
    COMPLETED: "Trip complete.",
    CANCELED: "The trip was canceled.",
    EXPIRED: "The trip expired.",
  }[trip.status] || trip.status;
  $("dtrip-text").textContent = text;
  show("picked-up", trip.status === "STARTED");
  show("dropped-off", trip.status === "IN_PROGRESS");
  show("driver-cancel", trip.status === "STARTED");
  if (ACTIVE.includes(trip.status)) {
    layers.pickUp = dot([trip.pick_up_lat, trip.pick_up_lng], COLORS.pickUp, 9, layers.pickUp);
    if (trip.drop_off_lat != null) layers.dropOff = dot([trip.drop_off_lat, trip.drop_off_lng], COLORS.dropOff, 9, layers.dropOff);
  } else {
    clearLayer("pickUp");
    clearLayer("dropOff");
  }
}

// Test and debugging hook: what the map shows, read-only.
window.taxiApp = {
  car: () => (layers.car ? [layers.car.getLatLng().lat, layers.car.getLatLng().lng] : null),
  trip: () => (state.trip ? { id: state.trip.id, status: state.trip.status, version: state.trip.version } : null),
  map,
};

enter();
