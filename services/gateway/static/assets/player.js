// A done job's results: one player (audio and its waveform as a seek bar) that switches between the
// job's outputs, each output with its format, size and Download link, the source's chapters (a click
// seeks, or plays that chapter's file when the job was split) and the loudness report.
// Everything from the server is written with textContent.
import { call } from "./api.js";
import { WaveformSeeker, clockTime, parseWaveform } from "./waveform.js";

function el(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text) node.textContent = text;
  return node;
}

// The view's results; a job from before several outputs existed has only its top-level fields.
export function outputsOf(view) {
  if (Array.isArray(view.outputs) && view.outputs.length) return view.outputs;
  const options = view.options || {};
  return [{ mp3_id: view.mp3_id, output: 0, filename: view.filename, format: options.format || "mp3",
            size: null, audio_seconds: view.audio_seconds, options, download_url: view.download_url,
            link: view.link, loudness: view.loudness && view.loudness.output, chapter: null }];
}

export function formatBytes(bytes) {
  if (bytes == null) return "";
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function describe(output) {
  const options = output.options || {};
  const format = String(output.format || options.format || "mp3").toUpperCase();
  const bitrate = options.bitrate ? ` ${String(options.bitrate).replace(/k?$/, "k")}` : "";
  const channels = options.channels === 1 || options.channels === "1" ? " mono" : "";
  const piece = output.chapter ? `${output.chapter.index} of ${output.chapter.count} ${output.chapter.title || ""}: ` : "";
  return `${piece}${format}${bitrate}${channels}`;
}

function fileName(output, view) {
  if (output.filename && /\.[a-z0-9]{2,4}$/i.test(output.filename) && output.filename !== view.filename) {
    return output.filename;
  }
  const stem = (output.filename || view.filename || "audio").replace(/\.[^.]*$/, "") || "audio";
  return `${stem}.${String(output.format || (output.options || {}).format || "mp3").toLowerCase()}`;
}

// ---- where a file comes from: its signed link (no token, Range requests) or /download with the token
const blobs = new Map(); // result id → object URL, one fetch per result
function blobUrl(id, path) {
  if (!blobs.has(id)) {
    blobs.set(id, call(path).then((response) => response.blob()).then((blob) => URL.createObjectURL(blob))
      .catch((error) => { blobs.delete(id); throw error; }));
  }
  return blobs.get(id);
}

export function releaseBlobs() {
  for (const pending of blobs.values()) pending.then((url) => URL.revokeObjectURL(url), () => {});
  blobs.clear();
}

const downloadPath = (output) => output.download_url || "/download?fid=" + encodeURIComponent(output.mp3_id);

// The peaks by the signed link when it is on this page's origin (connect-src 'self'), else by the
// token; a link on another public host name would need that host's CORS as well.
const waves = new Map();
function loadWave(output) {
  const key = output.waveform_url || output.waveform_link;
  if (!key) return Promise.resolve(null);
  if (!waves.has(key)) {
    const link = output.waveform_link && new URL(output.waveform_link, location.href);
    const request = link && link.origin === location.origin
      ? fetch(link.href, { credentials: "omit", cache: "no-store" }).then((r) => {
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        return r;
      })
      : call(output.waveform_url);
    waves.set(key, request.then((r) => r.json()).then(parseWaveform)
      .catch((error) => { waves.delete(key); throw error; }));
  }
  return waves.get(key);
}

// ---- the panel
export function showPlayer(result, view) {
  const outputs = outputsOf(view);
  const nameId = "job-name-" + view.job_id;
  const audio = el("audio", { controls: "", preload: "metadata" });
  const canvas = el("canvas", { class: "waveform", height: "64", "aria-describedby": nameId });
  const nowPlaying = el("p", { class: "now-playing" });
  const seeker = new WaveformSeeker(canvas, audio);
  const loudness = el("p", { class: "loudness" });
  const list = el("ul", { class: "outputs", "aria-label": "Results" });
  const rows = outputs.map((output, index) => outputRow(output, index, view, outputs.length, () => choose(index)));
  list.append(...rows.map((row) => row.li));
  const player = el("div", { class: "player" });
  player.append(nowPlaying, audio, canvas);
  result.append(player, list);
  const chapters = chapterList(view, outputs, (chapter, index) => {
    const piece = outputs.findIndex((output) => output.chapter && output.chapter.index === index + 1);
    if (piece >= 0) { choose(piece); audio.play().catch(() => {}); return; }
    audio.currentTime = chapter.start || 0;
    seeker.draw();
  });
  if (chapters) result.append(chapters);
  result.append(loudness);
  let current = -1;

  function choose(index) {
    if (index === current) return;
    const previous = current;
    current = index;
    const output = outputs[index];
    const name = fileName(output, view);
    rows.forEach((row, i) => row.play.setAttribute("aria-pressed", String(i === index)));
    nowPlaying.textContent = outputs.length > 1 ? "Playing: " + describe(output) : "";
    nowPlaying.hidden = outputs.length < 2;
    audio.setAttribute("aria-label", "Play " + name);
    canvas.setAttribute("aria-label", "Waveform of " + name + ": click or use the arrow keys to seek");
    // the same recording in another format goes on where it was; a chapter's own file starts at its start
    const resume = previous >= 0 && !output.chapter && !outputs[previous].chapter ? audio.currentTime : 0;
    const wasPlaying = !audio.paused;
    const play = (url) => {
      if (current !== index) return;
      audio.src = url;
      if (resume) audio.addEventListener("loadedmetadata", () => { audio.currentTime = resume; }, { once: true });
      if (wasPlaying) audio.play().catch(() => {});
    };
    if (output.link) play(output.link);
    else blobUrl(output.mp3_id, downloadPath(output)).then(play, () => {});
    seeker.setWave(null);
    canvas.hidden = !(output.waveform_url || output.waveform_link);
    loadWave(output).then((wave) => { if (current === index) seeker.setWave(wave); })
      .catch(() => { if (current === index) canvas.hidden = true; });
    showLoudness(loudness, output, view);
  }
  choose(0);
}

function outputRow(output, index, view, count, onPlay) {
  const li = el("li", { class: "output" });
  const name = fileName(output, view);
  const label = el("span", { class: "output-label" }, describe(output));
  const size = el("span", { class: "output-size" }, formatBytes(output.size));
  const play = el("button", { type: "button", "aria-pressed": "false", "aria-label": "Play " + describe(output) }, "Play");
  play.addEventListener("click", onPlay);
  play.hidden = count < 2;
  const download = el("a", { class: "download", download: name }, "Download");
  if (count > 1) download.setAttribute("aria-label", "Download " + name);
  if (output.link) download.href = output.link;
  else {
    download.href = "#";
    download.addEventListener("click", (event) => { // clicked before the file arrived: go on once it has
      if (download.dataset.ready) return;
      event.preventDefault();
      blobUrl(output.mp3_id, downloadPath(output)).then(() => download.click(), () => {});
    });
    blobUrl(output.mp3_id, downloadPath(output))
      .then((url) => { download.href = url; download.dataset.ready = "1"; })
      .catch((error) => { download.removeAttribute("href"); download.textContent = "Download unavailable: " + error.message; });
  }
  li.append(label, size, play, download);
  return { li, play };
}

function chapterList(view, outputs, onChoose) {
  const chapters = Array.isArray(view.chapters) ? view.chapters : [];
  if (!chapters.length) return null;
  const box = el("div", { class: "chapters" });
  const headingId = "chapters-" + view.job_id;
  box.append(el("h3", { id: headingId }, "Chapters"));
  const list = el("ol", { "aria-labelledby": headingId });
  chapters.forEach((chapter, index) => {
    const button = el("button", { type: "button", class: "chapter" });
    button.append(el("span", { class: "chapter-time" }, clockTime(chapter.start)),
                  el("span", { class: "chapter-title" }, chapter.title || `Chapter ${index + 1}`));
    button.addEventListener("click", () => onChoose(chapter, index));
    const li = el("li");
    li.append(button);
    list.append(li);
  });
  box.append(list);
  return box;
}

const number = (value, digits = 1) => (value == null || !Number.isFinite(Number(value)) ? "?" : Number(value).toFixed(digits));
const measured = (l) => `${number(l.integrated_lufs)} LUFS integrated, range ${number(l.range_lu)} LU, true peak ${number(l.true_peak_dbtp)} dBTP`;

function showLoudness(node, output, view) {
  const report = view.loudness || {};
  const after = output.loudness || report.output;
  node.replaceChildren();
  node.hidden = !after;
  if (!after) return;
  node.append(el("span", { class: "loudness-title" }, "Loudness: "), el("span", { class: "loudness-after" }, measured(after)));
  if (report.source) {
    node.append(el("br"), el("span", { class: "loudness-title" }, "Before (the source): "),
                el("span", { class: "loudness-before" }, measured(report.source)));
  }
}
