// Keeps the shown jobs current: a live event stream (fetch + the Bearer header) for each job that can
// still change, a few at a time; the rest, and any stream the server refuses (503 too_busy: it bounds
// streams per process; 429 too_many_streams: it bounds them per user), are polled. Final jobs cost nothing.
import { followJob, getJob } from "./api.js";
import { isFinal } from "./jobs.js";

// Browsers open about six connections per host over HTTP/1.1: leave room for uploads and clicks. The
// server lets one user hold EVENT_STREAMS_PER_USER (2 by default) per process; beyond, it answers 429.
const MAX_STREAMS = 2;
const POLL_MS = 2000;

export class Live {
  constructor(onView, onGone, onError) {
    this.onView = onView;   // (view) → show it
    this.onGone = onGone;   // (id) → the job was deleted
    this.onError = onError; // (ApiError) → a 401 ends the session
    this.streams = new Map(); // id → AbortController
    this.polled = new Set();
    this.timer = null;
  }

  track(view) {
    const id = view.job_id;
    if (isFinal(view)) { this.forget(id); return; }
    if (this.streams.has(id) || this.polled.has(id)) return;
    if (this.streams.size < MAX_STREAMS) this.stream(id); else this.poll(id);
  }

  forget(id) {
    const stream = this.streams.get(id);
    if (stream) stream.abort();
    this.streams.delete(id);
    this.polled.delete(id);
  }

  stop() {
    for (const id of [...this.streams.keys(), ...this.polled]) this.forget(id);
    clearInterval(this.timer);
    this.timer = null;
  }

  async stream(id) {
    const controller = new AbortController();
    this.streams.set(id, controller);
    let lastId = null;
    let final = false;
    for (let failures = 0; failures < 3 && !controller.signal.aborted && !final;) {
      try {
        lastId = await followJob(id, (view) => {
          if (view === null) { final = true; this.onGone(id); return; }
          final = isFinal(view);
          this.onView(view);
        }, controller.signal, lastId);
        failures = 0; // the server ended it: final, or cut short (resume with Last-Event-ID)
      } catch (error) {
        if (controller.signal.aborted) return;
        if (error.status === 404) { this.streams.delete(id); this.onGone(id); return; }
        if (error.status === 401) { this.onError(error); return; }
        if (error.status === 503 || error.status === 429) break; // too busy, or this user's cap: poll instead
        failures += 1;
        await new Promise((ok) => setTimeout(ok, 1000 * failures));
      }
    }
    if (this.streams.get(id) !== controller) return;
    this.streams.delete(id);
    if (!final && !controller.signal.aborted) this.poll(id);
  }

  poll(id) {
    this.polled.add(id);
    if (!this.timer) this.timer = setInterval(() => this.pollAll(), POLL_MS);
  }

  async pollAll() {
    for (const id of [...this.polled]) {
      try {
        const view = await getJob(id);
        this.onView(view);
        if (isFinal(view)) this.polled.delete(id);
      } catch (error) {
        if (error.status === 404) { this.polled.delete(id); this.onGone(id); }
        if (error.status === 401) { this.onError(error); return; }
      }
    }
    if (!this.polled.size) { clearInterval(this.timer); this.timer = null; }
  }
}
