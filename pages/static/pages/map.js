// Leaflet (vendored, global `L`) on a plain grid, or on the configured tiles.

const Grid = L.GridLayer.extend({
  createTile() {
    const tile = document.createElement("div");
    tile.className = "grid-tile";
    return tile;
  },
});

export function makeMap(elementId, config, options = {}) {
  const map = L.map(elementId, { attributionControl: Boolean(config.tileUrl), ...options });
  map.setView(config.center, 13);
  if (config.tileUrl) {
    L.tileLayer(config.tileUrl, { attribution: config.tileAttribution, maxZoom: 19 }).addTo(map);
  } else {
    new Grid().addTo(map);
  }
  return map;
}

// Straight-line distance in km.
export function distanceKm(a, b) {
  const rad = Math.PI / 180;
  const dLat = (b[0] - a[0]) * rad;
  const dLng = (b[1] - a[1]) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a[0] * rad) * Math.cos(b[0] * rad) * Math.sin(dLng / 2) ** 2;
  return 12742 * Math.asin(Math.sqrt(h));
}

export const COLORS = {
  free: "#1a9850",
  offered: "#f39c12",
  on_trip: "#2266cc",
  silent: "#9aa0a6",
  REQUESTED: "#f39c12",
  STARTED: "#2266cc",
  IN_PROGRESS: "#7b3fb8",
  COMPLETED: "#1a9850",
  CANCELED: "#9aa0a6",
  EXPIRED: "#c0392b",
  pickUp: "#1a9850",
  dropOff: "#c0392b",
  car: "#2266cc",
};
