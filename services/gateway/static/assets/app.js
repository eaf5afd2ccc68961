// The page's wiring: account forms, the upload form with drag-and-drop of many files, the job list.
import * as api from "./api.js";
import { createItem, isFinal, releaseBlobs, updateItem } from "./jobs.js";
import { Live } from "./live.js";
import { UploadQueue } from "./queue.js";
import { applyPreset, chosenOptions, fillPresets, importUrl, uploadVideo } from "./upload.js";

const $ = (id) => document.getElementById(id);
const EMAIL_KEY = "vid2mp3.email";
const items = new Map(); // job id → its list item
const live = new Live(show, gone, failed);
const queue = new UploadQueue(uploadVideo, uploadChanged);
const rows = new Map(); // queue entry → its row under the upload form
let presets = [];

function say(text, kind = "error") {
  const message = $("message");
  message.textContent = text;
  message.className = "message " + kind;
  message.hidden = !text;
}

// Every action goes through here: its errors become words on the page, a 401 ends the session.
async function attempt(action) {
  try {
    return await action();
  } catch (error) {
    if (error.status === 401 && api.session.token) { failed(error); return undefined; }
    say(error instanceof api.ApiError ? error.message : "Something went wrong: " + error.message);
    return undefined;
  }
}

function failed(error) {
  logOut();
  say(error.message || "Your session has ended. Please log in again.");
}

function signedIn(signedInNow) {
  const email = sessionStorage.getItem(EMAIL_KEY);
  $("account").hidden = true;
  for (const id of ["convert", "jobs-section", "logout", "who"]) $(id).hidden = false;
  $("who").textContent = email ? "Logged in as " + email : "Logged in";
  if (signedInNow) $("file").focus();
  attempt(refresh);
  loadPresets();
}

// A server without presets (or a failure to list them) leaves the selector at "None": uploads still work.
async function loadPresets() {
  try {
    presets = await api.listPresets();
  } catch (error) {
    if (error.status === 401 && api.session.token) { failed(error); return; }
    presets = [];
  }
  fillPresets($("preset"), presets);
}

function logOut() {
  api.session.token = null;
  sessionStorage.removeItem(EMAIL_KEY);
  live.stop();
  releaseBlobs();
  items.clear();
  $("jobs").replaceChildren();
  queue.entries = []; // what is still running ends on its own; its rows and summary go now
  rows.clear();
  $("uploads").replaceChildren();
  $("upload-status").hidden = true;
  $("account").hidden = false;
  for (const id of ["convert", "jobs-section", "logout", "who"]) $(id).hidden = true;
  $("password").value = "";
  say("", "info");
  $("email").focus();
}

function credentials() {
  const email = $("email").value.trim();
  const password = $("password").value;
  if (!email || !email.includes("@")) throw new api.ApiError(400, "input", "Enter your email address.");
  if (password.length < 8) throw new api.ApiError(400, "input", "Enter a password of at least 8 characters.");
  return { email, password };
}

async function logIn(creating) {
  const { email, password } = credentials();
  if (creating) await api.register(email, password);
  api.session.token = await api.login(email, password);
  sessionStorage.setItem(EMAIL_KEY, email);
  say(creating ? "Account created. You are logged in." : "", "info");
  signedIn(true);
}

// ---- jobs
async function refresh() {
  const views = await api.listJobs();
  const seen = new Set(views.map((view) => view.job_id));
  for (const id of [...items.keys()]) if (!seen.has(id)) gone(id);
  for (const view of views.reverse()) show(view); // oldest first, each new one goes on top
}

function show(view) {
  let li = items.get(view.job_id);
  if (li) updateItem(li, view);
  else {
    li = createItem(view, { cancel, remove });
    items.set(view.job_id, li);
    $("jobs").prepend(li);
  }
  $("no-jobs").hidden = items.size > 0;
  live.track(view);
  if (isFinal(view)) queue.wake(); // an active-jobs place may be free for a held upload
}

function gone(id) {
  live.forget(id);
  const li = items.get(id);
  if (li) li.remove();
  items.delete(id);
  $("no-jobs").hidden = items.size > 0;
}

function cancel(id) {
  return attempt(async () => show(await api.cancelJob(id)));
}

function remove(id, button) {
  return attempt(async () => {
    const li = items.get(id);
    const next = li && (li.nextElementSibling || li.previousElementSibling);
    await api.deleteJob(id);
    const hadFocus = li && li.contains(document.activeElement);
    gone(id);
    say("Deleted.", "info");
    if (hadFocus || button === document.activeElement) (next ? next.querySelector("button") : $("jobs-title")).focus();
  });
}

// ---- upload
function chosenFiles(files) {
  const input = $("file");
  if (files) {
    const transfer = new DataTransfer();
    for (const file of files) transfer.items.add(file);
    input.files = transfer.files;
  }
  const chosen = [...input.files];
  $("drop-hint").textContent = !chosen.length ? "Choose one or more files, or drop them here."
    : chosen.length === 1 ? "Chosen: " + chosen[0].name : `Chosen: ${chosen.length} files`;
}

function convert(event) {
  event.preventDefault();
  const files = [...$("file").files];
  const url = $("source_url").value.trim();
  if (files.length && url) { say("Choose files or give a URL, not both."); $("source_url").focus(); return; }
  if (!files.length && !url) { say("Choose a video file or give its URL first."); $("file").focus(); return; }
  if (url && !/^https?:\/\/\S+$/i.test(url)) { say("The URL must start with http:// or https://."); $("source_url").focus(); return; }
  say("", "info");
  const options = chosenOptions($("upload-form"));
  if (url) { fetchUrl(url, options); return; }
  queue.clearIfFinished();
  if (!queue.entries.length) { rows.clear(); $("uploads").replaceChildren(); }
  queue.add(files, options);
  $("file").value = "";
  chosenFiles(null);
}

// The server fetches the video: one request, the job appears at once in status "fetching".
function fetchUrl(url, options) {
  const button = $("convert-button");
  button.disabled = true;
  attempt(async () => {
    const id = await importUrl(url, options);
    $("source_url").value = "";
    say("The server is fetching the video.", "info");
    show(await api.getJob(id));
  }).finally(() => { button.disabled = false; });
}

const STATES = { waiting: "waiting", uploading: "uploading", held: "waiting for a free place", done: "uploaded",
                 failed: "failed" };

// One row per file of the batch: its name, its progress, its state in words.
function uploadRow(entry) {
  let row = rows.get(entry);
  if (!row) {
    row = document.createElement("div");
    row.className = "upload";
    const name = document.createElement("span");
    name.className = "upload-name";
    name.textContent = entry.file.name;
    const state = document.createElement("span");
    state.className = "upload-state";
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.setAttribute("aria-label", "Upload of " + entry.file.name);
    row.append(name, state, bar);
    rows.set(entry, row);
    $("uploads").append(row);
  }
  return row;
}

function uploadChanged(entry) {
  if (!queue.entries.includes(entry)) return; // logged out meanwhile
  const row = uploadRow(entry);
  const before = row.dataset.state;
  row.dataset.state = entry.state;
  const percent = Math.round(entry.progress * 100);
  row.querySelector("progress").value = percent;
  row.querySelector(".upload-state").textContent = STATES[entry.state]
    + (entry.state === "uploading" ? ` ${percent} %` : "") + (entry.message ? ": " + entry.message : "");
  $("upload-status").hidden = false;
  const { total, done, failed, left, held } = queue.summary();
  $("upload-summary").textContent = `${done} of ${total} uploaded, ${failed} failed`
    + (left ? (held ? "; waiting for a free place" : "; uploading") : ".");
  if (entry.state === "failed" && entry.error && entry.error.status === 401 && api.session.token) {
    failed(entry.error); // the session ended: log out, as for any other request
    return;
  }
  if (entry.state === "done" && before !== "done") {
    attempt(async () => { if (entry.jobId) show(await api.getJob(entry.jobId)); else await refresh(); });
  }
}

function dropZone() {
  const zone = $("drop");
  const over = (on) => (event) => { event.preventDefault(); zone.classList.toggle("over", on); };
  zone.addEventListener("dragenter", over(true));
  zone.addEventListener("dragover", over(true));
  zone.addEventListener("dragleave", over(false));
  zone.addEventListener("drop", (event) => {
    over(false)(event);
    if (event.dataTransfer.files.length) chosenFiles(event.dataTransfer.files);
  });
  // a file dropped beside the zone would make the browser leave the page to show it
  for (const type of ["dragover", "drop"]) window.addEventListener(type, (event) => event.preventDefault());
}

function start() {
  $("account-form").addEventListener("submit", (event) => { event.preventDefault(); attempt(() => logIn(false)); });
  $("register").addEventListener("click", () => attempt(() => logIn(true)));
  $("logout").addEventListener("click", () => { logOut(); say("You are logged out.", "info"); });
  $("upload-form").addEventListener("submit", convert);
  $("file").addEventListener("change", () => chosenFiles(null));
  $("preset").addEventListener("change", () => {
    const chosen = presets.find((preset) => preset.name === $("preset").value);
    applyPreset($("upload-form"), chosen, $("preset-hint"));
  });
  dropZone();
  if (api.session.token) signedIn(false);
}

start();
