// The public API as the page uses it: the token, JSON requests, errors in words, live job events.

// sessionStorage, not localStorage: the token lives as long as this tab (a shared computer's next user
// does not inherit it), yet a reload does not log out. Not a cookie: the API takes only a Bearer
// header, so no request is ever authorised by the browser on its own (no CSRF).
const TOKEN_KEY = "vid2mp3.token";

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
  },
};

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter; // the Retry-After header of a refusal (429, 503), when it had one
  }
}

const WORDS = {
  0: "The server cannot be reached. Check your connection and try again.",
  401: "Your session has ended. Please log in again.",
  404: "That job no longer exists.",
  413: "The file is too large.",
  429: "Too many attempts. Please wait a moment and try again.",
  503: "The service is busy or partly down. Please try again shortly.",
};

// An ApiError with the server's own message (it is written for people), or words for the status:
// never the raw body, which may be JSON or an HTML page from a proxy.
export async function errorFrom(response) {
  let code = "http_" + response.status;
  let message = WORDS[response.status] || `The request failed (HTTP ${response.status}).`;
  try {
    const body = await response.json();
    if (body && body.error && typeof body.error.message === "string") {
      code = String(body.error.code || code);
      message = sentence(body.error.message);
    }
  } catch (_) { /* not JSON: keep the words above */ }
  return new ApiError(response.status, code, message);
}

function sentence(text) {
  const trimmed = text.trim();
  if (!trimmed) return trimmed;
  const first = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(first) ? first : first + ".";
}

export function authHeaders(extra = {}) {
  const token = session.token;
  return token ? { ...extra, Authorization: "Bearer " + token } : extra;
}

// fetch() with the token, turning network failures and error statuses into ApiError.
export async function call(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: authHeaders(options.headers || {}),
                                   credentials: "omit", cache: "no-store" });
  } catch (_) {
    throw new ApiError(0, "network", WORDS[0]);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export async function register(email, password) {
  await call("/register", { method: "POST", headers: { "Content-Type": "application/json" },
                            body: JSON.stringify({ email, password }) });
}

export async function login(email, password) {
  // HTTP Basic with UTF-8 credentials (btoa alone only takes Latin-1)
  const basic = btoa(String.fromCharCode(...new TextEncoder().encode(email + ":" + password)));
  const response = await call("/login", { method: "POST", headers: { Authorization: "Basic " + basic } });
  return (await response.text()).trim();
}

export async function listJobs() {
  return (await (await call("/jobs?limit=50")).json()).jobs;
}

// The built-in presets and the user's own: [{name, fields, builtin}] (also accepted wrapped in {presets}).
export async function listPresets() {
  const body = await (await call("/me/presets")).json();
  const presets = Array.isArray(body) ? body : (body && body.presets) || [];
  return presets.filter((preset) => preset && typeof preset.name === "string");
}

export async function getJob(id) {
  return (await call("/jobs/" + encodeURIComponent(id))).json();
}

export async function cancelJob(id) {
  return (await call("/jobs/" + encodeURIComponent(id) + "/cancel", { method: "POST" })).json();
}

export async function deleteJob(id) {
  await call("/jobs/" + encodeURIComponent(id), { method: "DELETE" });
}

// The job's Server-Sent Events through fetch(): EventSource cannot send the Authorization header, and
// a token in the URL would land in logs and history. Calls onView(view) per event; resolves when the
// stream ends ("deleted" → onView(null)); rejects with ApiError (503 too_busy: the caller polls).
export async function followJob(id, onView, signal, lastEventId) {
  const headers = { Accept: "text/event-stream" };
  if (lastEventId) headers["Last-Event-ID"] = lastEventId;
  const response = await call("/jobs/" + encodeURIComponent(id) + "/events", { headers, signal });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let lastId = lastEventId;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return lastId;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = parseEvent(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (event.id) lastId = event.id;
      if (event.type === "deleted") onView(null);
      else if (event.data) onView(JSON.parse(event.data));
    }
  }
}

function parseEvent(block) {
  const event = { type: "message", data: "", id: null };
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // comments keep the connection alive
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "data") data.push(value);
    else if (field === "event") event.type = value;
    else if (field === "id") event.id = value;
  }
  event.data = data.join("\n");
  return event;
}
