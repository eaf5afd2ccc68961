// Sending a video: tus 1.0.0 resumable uploads when the server offers them (OPTIONS /uploads/ answers
// with Tus-Resumable), else one multipart POST /upload. Both report the upload's own progress (XHR:
// fetch() has no upload progress events) and both carry the chosen output options.
import { ApiError, authHeaders } from "./api.js";

const TUS = "1.0.0";
const CHUNK = 8 * 1024 * 1024; // small enough that a lost chunk costs little, big enough to be fast
const RETRIES = 5;

const TEXT_FIELDS = ["format", "bitrate", "quality", "sample_rate", "channels", "start", "end", "title", "artist", "album"];
const FLAGS = ["normalize", "cover", "trim_silence"];
// what an extra output does not inherit from the first: its own format decides them
const PER_FORMAT = ["format", "bitrate", "quality", "sample_rate", "cover"];

// The output options as the API names them; empty fields are left out (the server's defaults apply).
// With a preset its name goes too (the form shows the preset's values, so sending them changes nothing
// unless the user changed them: explicit options override the preset's). Extra outputs ("Also make")
// go as `outputs`, a JSON list whose first entry is the main output.
export function chosenOptions(form) {
  const options = {};
  for (const name of TEXT_FIELDS) {
    const value = form.elements[name].value.trim();
    if (value) options[name] = value;
  }
  for (const name of FLAGS) options[name] = form.elements[name].checked ? "true" : "false";
  if (form.elements.split.checked) options.split = "chapters";
  const extras = [...form.querySelectorAll("input[name=extra]:checked")].map((box) => extraOutput(options, box.value));
  if (form.elements.preset.value) options.preset = form.elements.preset.value;
  if (extras.length) options.outputs = JSON.stringify([withoutPreset(options), ...extras]);
  return options;
}

function withoutPreset(options) {
  const { preset, ...fields } = options; // eslint-disable-line no-unused-vars
  return fields;
}

const WITH_COVER = new Set(["mp3", "m4a", "flac"]);

// The server takes the form's top-level fields as every entry's defaults: an extra output names its
// codec fields itself (null: none, the format's own default) so the main output's 192k or 22 kHz does
// not follow it into a format that cannot take them.
function extraOutput(main, choice) {
  const [format, bitrate] = choice.split(":");
  const extra = Object.fromEntries(Object.entries(withoutPreset(main)).filter(([name]) => !PER_FORMAT.includes(name)));
  Object.assign(extra, { format, bitrate: bitrate || null, quality: null, sample_rate: null,
                         cover: WITH_COVER.has(format) ? main.cover : "false" });
  return extra;
}

// ---- presets: GET /me/presets is a list of {name, fields, builtin} (bare, or as {"presets": [...]})
export function fillPresets(select, presets) {
  const chosen = select.value;
  select.replaceChildren(select.options[0]);
  for (const preset of presets) {
    const option = document.createElement("option");
    option.value = preset.name;
    option.textContent = preset.builtin ? preset.name : preset.name + " (yours)";
    select.append(option);
  }
  select.value = presets.some((p) => p.name === chosen) ? chosen : "";
}

// Shows the preset's values in the form, and all of them in words under the selector.
export function applyPreset(form, preset, hint) {
  const fields = (preset && preset.fields) || {};
  for (const name of TEXT_FIELDS) {
    const input = form.elements[name];
    const value = fields[name] == null ? (name === "format" ? "mp3" : "") : String(fields[name]);
    if (input.tagName === "SELECT" && value && ![...input.options].some((o) => o.value === value)) {
      const option = document.createElement("option"); // a value the list does not offer (64k)
      option.value = option.textContent = value;
      input.append(option);
    }
    input.value = value;
  }
  for (const name of FLAGS) form.elements[name].checked = fields[name] === true || fields[name] === "true";
  form.elements.split.checked = fields.split === "chapters";
  hint.hidden = !preset;
  const values = Object.entries(fields).map(([name, value]) => `${name} ${value}`).join(", ");
  hint.textContent = preset ? `Preset ${preset.name}: ${preset.description ? preset.description + " (" + values + ")" : values}` : "";
}

// Uploads `file` with `options`; calls onProgress(fraction). Resolves with the new job's id (or null when
// a resumed upload turns out to be complete already: its job exists, the list shows it).
export async function uploadVideo(file, options, onProgress) {
  if (await tusOffered()) return tusUpload(file, options, onProgress);
  return multipartUpload(file, options, onProgress);
}

// A video the server fetches itself: POST /jobs with a JSON body of `source_url` and the options (the
// answer is the new job's view); a server without that route (404, 405) takes `source_url` as a field of
// POST /upload with no file. Resolves with the job id.
export async function importUrl(url, options) {
  const body = JSON.stringify({ ...options, source_url: url });
  const result = await send("POST", "/jobs", { "Content-Type": "application/json" }, body);
  if (result.status === 202) return JSON.parse(result.text).job_id;
  if (![404, 405].includes(result.status)) throw failure(result);
  const form = new FormData();
  for (const [name, value] of Object.entries(options)) form.append(name, value);
  form.append("source_url", url);
  const fallback = await send("POST", "/upload", {}, form);
  if (fallback.status !== 202) throw failure(fallback);
  return JSON.parse(fallback.text).job_id;
}

async function tusOffered() {
  try {
    const response = await fetch("/uploads/", { method: "OPTIONS", headers: authHeaders({ "Tus-Resumable": TUS }),
                                                 credentials: "omit" });
    return response.ok && response.headers.has("Tus-Resumable");
  } catch (_) {
    return false;
  }
}

// One XHR request as a promise: {status, text, header(name)}; a network failure is ApiError(0).
function send(method, url, headers, body, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    for (const [name, value] of Object.entries(authHeaders(headers))) xhr.setRequestHeader(name, value);
    if (onProgress) xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => resolve({ status: xhr.status, text: xhr.responseText,
                                 header: (name) => xhr.getResponseHeader(name) });
    xhr.onerror = xhr.ontimeout = () =>
      reject(new ApiError(0, "network", "The upload was interrupted: the server cannot be reached."));
    xhr.send(body);
  });
}

// The error of a finished XHR in words (the JSON error's message, never the raw body).
function failure(result) {
  let message = `The upload failed (HTTP ${result.status}).`;
  let code = "http_" + result.status;
  try {
    const body = JSON.parse(result.text);
    if (body && body.error && body.error.message) { message = body.error.message; code = body.error.code; }
  } catch (_) { /* not JSON */ }
  if (result.status === 401) message = "Your session has ended. Please log in again."; // the page logs out
  return new ApiError(result.status, code, message, result.header("Retry-After"));
}

async function multipartUpload(file, options, onProgress) {
  const form = new FormData();
  for (const [name, value] of Object.entries(options)) form.append(name, value); // before the file: a streaming
  form.append("file", file, file.name);                                          // server has them in time
  const result = await send("POST", "/upload", {}, form, (loaded) => onProgress(loaded / (file.size || 1)));
  if (result.status !== 202) throw failure(result);
  onProgress(1);
  return JSON.parse(result.text).job_id;
}

// ---- tus: create (POST), send in chunks (PATCH), after a failure ask where to go on (HEAD).
function metadata(file, options) {
  const b64 = (text) => btoa(String.fromCharCode(...new TextEncoder().encode(text)));
  return Object.entries({ filename: file.name, ...options }).map(([k, v]) => `${k} ${b64(v)}`).join(",");
}

// The same file (name, size, modification time) picks up where an interrupted upload stopped, even
// after a reload; localStorage because that survives closing the tab.
const resumeKey = (file) => `vid2mp3.tus:${file.name}:${file.size}:${file.lastModified}`;

async function tusUpload(file, options, onProgress) {
  const key = resumeKey(file);
  let url = localStorage.getItem(key);
  let state = url ? await tusState(url) : null;
  if (state === null) {
    const created = await send("POST", "/uploads/", {
      "Tus-Resumable": TUS, "Upload-Length": String(file.size), "Upload-Metadata": metadata(file, options) });
    if (created.status !== 201 || !created.header("Location")) throw failure(created);
    url = new URL(created.header("Location"), new URL("/uploads/", location.href)).href;
    localStorage.setItem(key, url);
    state = { offset: 0, jobId: null };
  }
  for (let failures = 0; ;) {
    if (state.offset >= file.size) { localStorage.removeItem(key); onProgress(1); return state.jobId; }
    try {
      const offset = state.offset;
      const result = await send("PATCH", url, {
        "Tus-Resumable": TUS, "Upload-Offset": String(offset), "Content-Type": "application/offset+octet-stream",
      }, file.slice(offset, Math.min(offset + CHUNK, file.size)), (sent) => onProgress((offset + sent) / file.size));
      if (result.status !== 204) throw failure(result);
      state = { offset: Number(result.header("Upload-Offset")), jobId: result.header("Job-Id") };
      failures = 0;
    } catch (error) {
      // the connection, the server, or another writer (409 moved offset, 423 locked): ask where it stands
      const retryable = [0, 409, 423].includes(error.status) || error.status >= 500;
      if (!retryable || ++failures > RETRIES) {
        if (error.status === 404 || error.status === 410) localStorage.removeItem(key);
        throw error;
      }
      await new Promise((ok) => setTimeout(ok, 500 * 2 ** failures));
      state = await tusState(url);
      if (state === null) { localStorage.removeItem(key); throw error; }
    }
  }
}

// Where the server's copy of the upload ends (HEAD) and, once complete, its job; null when it is gone
// (expired, or not this user's).
async function tusState(url) {
  try {
    const result = await send("HEAD", url, { "Tus-Resumable": TUS });
    const offset = result.header("Upload-Offset");
    return result.status === 200 && offset !== null ? { offset: Number(offset), jobId: result.header("Job-Id") } : null;
  } catch (_) {
    return null;
  }
}
