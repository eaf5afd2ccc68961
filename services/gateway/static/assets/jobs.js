// One list item per job: its file name, a status in words, and what can be done with it.
// Everything from the server is written with textContent (a file name is data, never markup).
import { formatBytes, showPlayer } from "./player.js";

export { releaseBlobs } from "./player.js";

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
    case "fetching": return "fetching" + fetchProgress(view.fetch);
    case "failed": return "failed: " + (view.reason || "the conversion did not succeed");
    case "done": return "done" + (view.audio_seconds ? ` (${formatSeconds(view.audio_seconds)})` : "");
    case "expired": return "expired: the file was removed after its retention period";
    default: return view.status;
  }
}

// "fetching 40% (4.0 MB of 10 MB)", or only the bytes while the server has not said how many come.
function fetchProgress(fetched) {
  if (!fetched || !fetched.bytes) return "";
  const got = formatBytes(fetched.bytes);
  return fetched.total ? ` ${Math.floor((100 * fetched.bytes) / fetched.total)}% (${got} of ${formatBytes(fetched.total)})`
    : ` (${got})`;
}

function fetchPercent(view) {
  const fetched = view.fetch;
  return view.status === "fetching" && fetched && fetched.total ? (100 * fetched.bytes) / fetched.total : null;
}

function formatSeconds(total) {
  const s = Math.round(total);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

// The item's parts are made once and then updated, so focus (a keyboard user on Cancel) survives updates.
export function createItem(view, handlers) {
  const li = el("li", { class: "job", "data-job-id": view.job_id });
  const nameId = "job-name-" + view.job_id;
  const name = el("span", { class: "job-name", id: nameId }, view.filename || view.source_url || "video");
  const about = [view.preset && "preset " + view.preset, view.source_url && "from " + view.source_url].filter(Boolean);
  const meta = el("span", { class: "job-meta" }, about.join(" · "));
  meta.hidden = !about.length;
  const status = el("span", { class: "job-status", role: "status" });
  const progress = el("progress", { max: "100", "aria-labelledby": nameId });
  const result = el("div", { class: "job-result" });
  const actions = el("div", { class: "job-actions" });
  const cancel = el("button", { type: "button", "aria-describedby": nameId }, "Cancel");
  const remove = el("button", { type: "button", "aria-describedby": nameId }, "Delete");
  cancel.addEventListener("click", () => handlers.cancel(view.job_id, cancel));
  remove.addEventListener("click", () => handlers.remove(view.job_id, remove));
  actions.append(cancel, remove);
  li.append(name, meta, status, progress, result, actions);
  li.parts = { status, progress, result, cancel };
  updateItem(li, view);
  return li;
}

export function updateItem(li, view) {
  const { status, progress, result, cancel } = li.parts;
  li.dataset.status = view.status;
  status.textContent = statusText(view);
  const percent = view.status === "converting" ? view.progress : fetchPercent(view);
  progress.hidden = percent == null;
  if (percent != null) progress.value = percent;
  cancel.hidden = isFinal(view);
  if (view.status === "done" && !result.firstChild) showPlayer(result, view);
  if (view.status !== "done") result.replaceChildren();
}
