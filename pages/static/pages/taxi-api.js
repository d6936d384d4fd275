// The public REST and WebSocket API as a browser client uses it
// (PROTOCOL.md). Tokens live in this tab's sessionStorage only: never in a
// URL but the socket's documented `?token=`, never in a cookie.

const STORE = "taxi.session";

function tokenExpiry(token) {
  try {
    const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return payload.exp * 1000;
  } catch {
    return 0;
  }
}

export class Api {
  constructor() {
    this.session = JSON.parse(sessionStorage.getItem(STORE) || "null");
    this.onLoggedOut = () => {};
  }

  get user() {
    return this.session ? this.session.user : null;
  }

  save(session) {
    this.session = session;
    if (session) sessionStorage.setItem(STORE, JSON.stringify(session));
    else sessionStorage.removeItem(STORE);
  }

  // {status, ok, data}; a network failure is status 0. An expired access
  // token is refreshed once and the call retried.
  async call(method, path, body, { auth = true, headers = {}, retry = true } = {}) {
    const sent = { Accept: "application/json", ...headers };
    if (body !== undefined) sent["Content-Type"] = "application/json";
    if (auth && this.session) sent.Authorization = `Bearer ${this.session.access}`;
    let response;
    try {
      // Cookies are left out: this client is a token client, like a phone app.
      response = await fetch(path, {
        method,
        headers: sent,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
      });
    } catch {
      return { status: 0, ok: false, data: { detail: "The service cannot be reached." } };
    }
    if (response.status === 401 && auth && retry && this.session && (await this.refresh())) {
      return this.call(method, path, body, { auth, headers, retry: false });
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = { detail: text };
    }
    return { status: response.status, ok: response.ok, data };
  }

  async logIn(username, password) {
    const reply = await this.call("POST", "/api/log_in/", { username, password }, { auth: false });
    if (reply.ok) {
      const { access, refresh, ...user } = reply.data;
      this.save({ user, access, refresh });
    }
    return reply;
  }

  async logOut() {
    if (this.session) {
      await this.call("POST", "/api/log_out/", { refresh: this.session.refresh }, { retry: false });
    }
    this.save(null);
  }

  async refresh() {
    if (!this.session) return false;
    const reply = await this.call(
      "POST", "/api/token/refresh/", { refresh: this.session.refresh }, { auth: false },
    );
    if (!reply.ok) {
      if (reply.status !== 0) {
        this.save(null);
        this.onLoggedOut();
      }
      return false;
    }
    this.save({ ...this.session, ...reply.data });
    return true;
  }

  // An access token good for at least another 30 s, or null.
  async freshAccess() {
    if (!this.session) return null;
    if (tokenExpiry(this.session.access) - Date.now() < 30_000 && !(await this.refresh())) {
      return null;
    }
    return this.session ? this.session.access : null;
  }

  // Which Part 2 calls this service has, from its public OpenAPI document:
  // the app shows a feature only when the service offers it.
  async features() {
    const reply = await this.call("GET", "/api/schema/?format=json", undefined, { auth: false });
    const paths = Object.keys((reply.ok && reply.data && reply.data.paths) || {});
    const has = (pattern) => paths.some((path) => pattern.test(path));
    return {
      quotes: has(/^\/api\/quotes\/$/),
      rating: has(/^\/api\/trip\/\{[^}]+\}\/rating\/$/),
      history: has(/^\/api\/trip\/\{[^}]+\}\/events\/$/),
    };
  }
}

// The `/taxi/` socket, reopened with backoff (0.5 s doubling to 30 s, with
// jitter) whenever it drops; `onOpen` runs on every (re)connection so the app
// re-reads REST, the truth after any gap.
export class Stream {
  constructor(api, { onFrame, onOpen, onState }) {
    this.api = api;
    this.onFrame = onFrame;
    this.onOpen = onOpen;
    this.onState = onState;
    this.attempt = 0;
    this.ws = null;
    this.stopped = true;
    this.timer = null;
    this.credentialsEnded = false;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  get isOpen() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN);
  }

  async open() {
    // Closed because its credentials ended (4001 token expired, 4003 logged
    // out elsewhere or revoked): a new access token, or the session is over.
    if (this.credentialsEnded) {
      this.credentialsEnded = false;
      if (!(await this.api.refresh())) {
        this.onState("logged-out");
        return;
      }
    }
    const access = await this.api.freshAccess();
    if (this.stopped) return;
    if (!access) {
      this.onState("logged-out");
      return;
    }
    this.onState(this.attempt ? "reconnecting" : "connecting");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/taxi/?token=${encodeURIComponent(access)}`);
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.onState("open");
      this.onOpen();
    };
    ws.onmessage = (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.onFrame(frame);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws || this.stopped) return;
      this.ws = null;
      this.credentialsEnded = event.code === 4001 || event.code === 4003;
      const delay = Math.min(30_000, 500 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
      this.attempt += 1;
      this.onState("closed", delay);
      this.timer = setTimeout(() => this.open(), delay);
    };
  }

  send(type, data) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify({ type, data }));
    return true;
  }
}
