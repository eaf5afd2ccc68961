// Many files at once: a queue that uploads at most CONCURRENT files at a time, in the order chosen, and
// keeps going when the server says "not now". A 429 or 503 with a short Retry-After (too many unfinished
// jobs: USER_MAX_ACTIVE_JOBS; the gateway busy) holds the whole queue, not only that file, until the wait
// is over or one of the user's jobs ends (wake()), then the file is tried again. A refusal that waiting
// will not fix (storage full, the daily limit hours away, a bad file) fails that file and the rest go on.

// Two at a time: browsers open about 6 connections per host and the page's live job streams take up to
// 2 of them; more parallel uploads would not be faster, only share the same bandwidth.
export const CONCURRENT = 2;
const LONGEST_HOLD_SECONDS = 15 * 60; // a later Retry-After (the daily limit) fails the file instead

// Seconds from a Retry-After header (delta-seconds or an HTTP date), or null.
export function retryAfterSeconds(value) {
  if (value === null || value === undefined || value === "") return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const when = Date.parse(value);
  return Number.isNaN(when) ? null : Math.max(0, (when - Date.now()) / 1000);
}

export class UploadQueue {
  // upload(file, options, onProgress) → the job id; onChange(entry) after any change of an entry.
  constructor(upload, onChange) {
    this.upload = upload;
    this.onChange = onChange;
    this.entries = [];
    this.running = 0;
    this.heldUntil = 0; // ms: no new upload starts before this
    this.timer = null;
  }

  add(files, options) {
    const added = [...files].map((file) => ({ file, options, state: "waiting", progress: 0, message: "", jobId: null }));
    for (const entry of added) {
      if (!entry.file.size) this.settle(entry, "failed", "the file is empty");
      this.entries.push(entry);
      this.onChange(entry);
    }
    this.pump();
    return added;
  }

  // One of the user's jobs ended: an active-jobs place may be free, so a held queue tries at once.
  wake() {
    if (this.heldUntil > Date.now()) { this.heldUntil = 0; this.pump(); }
  }

  // The current batch: its counts, and whether anything is still to do.
  summary() {
    const count = (state) => this.entries.filter((e) => e.state === state).length;
    const done = count("done");
    const failed = count("failed");
    return { total: this.entries.length, done, failed, left: this.entries.length - done - failed,
             held: this.heldUntil > Date.now() };
  }

  // A new batch starts clean once everything of the last one has ended.
  clearIfFinished() {
    if (this.summary().left === 0) this.entries = [];
  }

  pump() {
    clearTimeout(this.timer);
    const wait = this.heldUntil - Date.now();
    if (wait > 0) { this.timer = setTimeout(() => this.pump(), wait); return; }
    while (this.running < CONCURRENT) {
      const entry = this.entries.find((e) => e.state === "waiting" || e.state === "held");
      if (!entry) return;
      this.run(entry);
    }
  }

  async run(entry) {
    this.running += 1;
    entry.state = "uploading";
    entry.message = "";
    this.onChange(entry);
    try {
      entry.jobId = await this.upload(entry.file, entry.options, (fraction) => {
        entry.progress = fraction;
        this.onChange(entry);
      });
      entry.progress = 1;
      this.settle(entry, "done", "");
    } catch (error) {
      const seconds = retryAfterSeconds(error.retryAfter);
      if ([429, 503].includes(error.status) && seconds !== null && seconds <= LONGEST_HOLD_SECONDS) {
        this.hold(entry, seconds, error.message);
      } else {
        entry.error = error;
        this.settle(entry, "failed", error.message || "the upload failed");
      }
    } finally {
      this.running -= 1;
      this.onChange(entry);
      this.pump();
    }
  }

  hold(entry, seconds, reason) {
    entry.state = "held";
    entry.progress = 0;
    entry.message = reason;
    this.heldUntil = Math.max(this.heldUntil, Date.now() + Math.max(1, seconds) * 1000);
  }

  settle(entry, state, message) {
    entry.state = state;
    entry.message = message;
  }
}
