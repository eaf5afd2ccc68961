// One list item per job: its file name, a status in words, and what can be done with it.
// Everything from the server is written with textContent (a file name is data, never markup).
import { call } from "./api.js";

const FINAL = new Set(["done", "failed", "cancelled", "expired"]);
export const isFinal = (view) => FINAL.has(view.status);

function el(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text) node.textContent = text;
  return node;
}

export function statusText(view) {
  switch (view.status) {
    case "converting": {
      if (view.progress == null) return "converting";
      const left = view.eta_seconds != null ? `, about ${Math.max(1, Math.round(view.eta_seconds))} s left` : "";
      return `converting ${Math.round(view.progress)}%${left}`;
    }
    case "failed": return "failed: " + (view.reason || "the conversion did not succeed");
    case "done": return "done" + (view.audio_seconds ? ` (${formatSeconds(view.audio_seconds)})` : "");
    case "expired": return "expired: the file was removed after its retention period";
    default: return view.status;
  }
}

function formatSeconds(total) {
  const s = Math.round(total);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

// The item's parts are made once and then updated, so focus (a keyboard user on Cancel) survives updates.
export function createItem(view, handlers) {
  const li = el("li", { class: "job", "data-job-id": view.job_id });
  const nameId = "job-name-" + view.job_id;
  const name = el("span", { class: "job-name", id: nameId }, view.filename || "video");
  const status = el("span", { class: "job-status", role: "status" });
  const progress = el("progress", { max: "100", "aria-labelledby": nameId });
  const result = el("div", { class: "job-result" });
  const actions = el("div", { class: "job-actions" });
  const cancel = el("button", { type: "button", "aria-describedby": nameId }, "Cancel");
  const remove = el("button", { type: "button", "aria-describedby": nameId }, "Delete");
  cancel.addEventListener("click", () => handlers.cancel(view.job_id, cancel));
  remove.addEventListener("click", () => handlers.remove(view.job_id, remove));
  actions.append(cancel, remove);
  li.append(name, status, progress, result, actions);
  li.parts = { status, progress, result, cancel };
  updateItem(li, view);
  return li;
}

export function updateItem(li, view) {
  const { status, progress, result, cancel } = li.parts;
  li.dataset.status = view.status;
  status.textContent = statusText(view);
  const converting = view.status === "converting" && view.progress != null;
  progress.hidden = !converting;
  if (converting) progress.value = view.progress;
  cancel.hidden = isFinal(view);
  if (view.status === "done" && !result.firstChild) showResult(result, view);
  if (view.status !== "done") result.replaceChildren();
}

// The player and the Download link: the signed link when the server gives one (works without a token,
// seeks with Range requests), else the file fetched with the token into a Blob URL.
function showResult(result, view) {
  const audio = el("audio", { controls: "", preload: "metadata" });
  audio.setAttribute("aria-label", "Play " + (view.filename || "the result"));
  const download = el("a", { class: "download", download: resultName(view) }, "Download");
  result.append(audio, download);
  if (view.link) {
    audio.src = view.link;
    download.href = view.link;
    return;
  }
  download.href = "#";
  download.addEventListener("click", (event) => { // clicked before the file arrived: go on once it has
    if (download.dataset.ready) return;
    event.preventDefault();
    blobUrl(view).then(() => download.click(), () => {});
  });
  blobUrl(view).then((url) => { audio.src = url; download.href = url; download.dataset.ready = "1"; })
    .catch((error) => { download.removeAttribute("href"); download.textContent = "Download unavailable: " + error.message; });
}

function resultName(view) {
  const stem = (view.filename || "audio").replace(/\.[^.]*$/, "") || "audio";
  return `${stem}.${(view.options && view.options.format) || "mp3"}`;
}

const blobs = new Map(); // mp3 id → object URL, one fetch per result
function blobUrl(view) {
  if (!blobs.has(view.mp3_id)) {
    blobs.set(view.mp3_id, call("/download?fid=" + encodeURIComponent(view.mp3_id))
      .then((response) => response.blob()).then((blob) => URL.createObjectURL(blob))
      .catch((error) => { blobs.delete(view.mp3_id); throw error; }));
  }
  return blobs.get(view.mp3_id);
}

export function releaseBlobs() {
  for (const pending of blobs.values()) pending.then((url) => URL.revokeObjectURL(url), () => {});
  blobs.clear();
}
