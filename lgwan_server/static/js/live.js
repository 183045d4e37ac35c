// The event WebSocket: reconnects with back-off and resumes from the last event id it saw.
const SESSION_ENDED = 4001;

export class Live {
  /** handlers: {event(frame), resync(), sessionEnded(), status(online: boolean), checkSession(): Promise<bool>} */
  constructor(handlers) {
    this.handlers = handlers;
    this.lastId = null;
    this.ws = null;
    this.stopped = false;
    this.failures = 0;
    this.timer = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  connect() {
    const url = new URL("/api/ws", window.location.href);
    url.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
    if (this.lastId !== null) url.searchParams.set("since", String(this.lastId));
    const ws = new WebSocket(url.href);
    this.ws = ws;
    ws.addEventListener("message", (ev) => this.onFrame(ev.data));
    ws.addEventListener("close", (ev) => this.onClose(ws, ev));
  }

  onFrame(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (frame.type === "hello") {
      this.failures = 0;
      if (this.lastId === null || frame.last_event_id > this.lastId) this.lastId = frame.last_event_id;
      this.handlers.status(true);
    } else if (frame.type === "resync_required") {
      this.lastId = frame.last_event_id;
      this.handlers.resync();
    } else if (typeof frame.id === "number") {
      this.lastId = frame.id;
      if (frame.type === "session.ended") this.handlers.sessionEnded();
      else this.handlers.event(frame);
    }
  }

  async onClose(ws, ev) {
    if (ws !== this.ws || this.stopped) return;
    this.handlers.status(false);
    if (ev.code === SESSION_ENDED) {
      this.stopped = true;
      this.handlers.sessionEnded();
      return;
    }
    this.failures += 1;
    if (this.failures >= 2 && !(await this.handlers.checkSession())) {
      this.stopped = true;
      this.handlers.sessionEnded();
      return;
    }
    const delay = Math.min(30000, 500 * 2 ** Math.min(this.failures, 6));
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
