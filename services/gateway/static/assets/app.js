// The page's wiring: account forms, the upload form with drag-and-drop, the job list.
import * as api from "./api.js";
import { createItem, releaseBlobs, updateItem } from "./jobs.js";
import { Live } from "./live.js";
import { chosenOptions, uploadVideo } from "./upload.js";

const $ = (id) => document.getElementById(id);
const EMAIL_KEY = "vid2mp3.email";
const items = new Map(); // job id → its list item
const live = new Live(show, gone, failed);

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
}

function logOut() {
  api.session.token = null;
  sessionStorage.removeItem(EMAIL_KEY);
  live.stop();
  releaseBlobs();
  items.clear();
  $("jobs").replaceChildren();
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
function chosenFile(file) {
  const input = $("file");
  if (file && input.files[0] !== file) {
    const transfer = new DataTransfer();
    transfer.items.add(file);
    input.files = transfer.files;
  }
  $("drop-hint").textContent = input.files[0] ? "Chosen: " + input.files[0].name : "Choose a file, or drop it here.";
}

async function convert(event) {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) { say("Choose a video file first."); $("file").focus(); return; }
  if (!file.size) { say("That file is empty: choose another one."); return; }
  const button = $("convert-button");
  const bar = $("upload-progress");
  button.disabled = true;
  $("upload-status").hidden = false;
  $("upload-label").textContent = "Uploading " + file.name;
  bar.value = 0;
  say("", "info");
  await attempt(async () => {
    const jobId = await uploadVideo(file, chosenOptions($("upload-form")), (f) => { bar.value = Math.min(100, f * 100); });
    say("Uploaded " + file.name + ". The conversion is on its way.", "info");
    $("file").value = "";
    chosenFile(null);
    if (jobId) show(await api.getJob(jobId)); else await refresh();
  });
  button.disabled = false;
  $("upload-status").hidden = true;
}

function dropZone() {
  const zone = $("drop");
  const over = (on) => (event) => { event.preventDefault(); zone.classList.toggle("over", on); };
  zone.addEventListener("dragenter", over(true));
  zone.addEventListener("dragover", over(true));
  zone.addEventListener("dragleave", over(false));
  zone.addEventListener("drop", (event) => {
    over(false)(event);
    const file = event.dataTransfer.files[0];
    if (file) chosenFile(file);
  });
  // a file dropped beside the zone would make the browser leave the page to show it
  for (const type of ["dragover", "drop"]) window.addEventListener(type, (event) => event.preventDefault());
}

function start() {
  $("account-form").addEventListener("submit", (event) => { event.preventDefault(); attempt(() => logIn(false)); });
  $("register").addEventListener("click", () => attempt(() => logIn(true)));
  $("logout").addEventListener("click", () => { logOut(); say("You are logged out.", "info"); });
  $("upload-form").addEventListener("submit", convert);
  $("file").addEventListener("change", () => chosenFile(null));
  dropZone();
  if (api.session.token) signedIn(false);
}

start();
