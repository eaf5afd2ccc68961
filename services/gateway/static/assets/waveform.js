// A result's waveform: the peaks file (BBC audiowaveform JSON, version 2) drawn on a canvas, the part
// already played in another colour, and the canvas as a seek bar (click, or the arrow keys when focused).

const PLAYED = "#1f4e79";
const AHEAD = "#9fb3c8";
const KEY_STEP = 5; // seconds per arrow key
const PAGE_STEP = 0.1; // share of the whole per Page Up / Page Down

// {length, min, max (Float32Array in -1..1, first channel), seconds} from the parsed JSON; throws on
// anything that is not a waveform, so a bad file shows as "no waveform" rather than as a wrong picture.
export function parseWaveform(json) {
  const { version, channels = 1, sample_rate: rate, samples_per_pixel: perPixel, bits, length, data } = json || {};
  if (![1, 2].includes(version) || !Array.isArray(data) || !(rate > 0) || !(perPixel > 0) || ![8, 16].includes(bits)) {
    throw new Error("not an audiowaveform JSON file");
  }
  const stride = 2 * Math.max(1, channels);
  const count = Math.min(length ?? Infinity, Math.floor(data.length / stride));
  const full = bits === 8 ? 128 : 32768;
  const min = new Float32Array(count);
  const max = new Float32Array(count);
  for (let i = 0; i < count; i++) { // channels interleave per pixel: the first one stands for all
    min[i] = data[i * stride] / full;
    max[i] = data[i * stride + 1] / full;
  }
  return { length: count, min, max, seconds: (count * perPixel) / rate };
}

// Draws `wave` over the canvas's whole width (device pixels, so it is sharp on any screen); columns left
// of `played` (0..1) in the played colour.
export function drawWaveform(canvas, wave, played = 0) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio)) || canvas.width;
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio)) || canvas.height;
  if (canvas.width !== width) canvas.width = width;
  if (canvas.height !== height) canvas.height = height;
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, width, height);
  if (!wave || !wave.length) return;
  const middle = height / 2;
  const playedUpTo = Math.round(Math.min(1, Math.max(0, played)) * width);
  for (let x = 0; x < width; x++) {
    const [low, high] = columnPeaks(wave, x, width);
    const top = middle - high * middle;
    const bar = Math.max(1, (high - low) * middle); // silence still shows as a line
    context.fillStyle = x < playedUpTo ? PLAYED : AHEAD;
    context.fillRect(x, Math.min(top, middle - bar / 2), 1, bar);
  }
}

// The lowest and highest peak of the waveform's pixels that fall in canvas column x.
function columnPeaks(wave, x, width) {
  const from = Math.floor((x * wave.length) / width);
  const to = Math.max(from + 1, Math.floor(((x + 1) * wave.length) / width));
  let low = 1;
  let high = -1;
  for (let i = from; i < Math.min(to, wave.length); i++) {
    if (wave.min[i] < low) low = wave.min[i];
    if (wave.max[i] > high) high = wave.max[i];
  }
  return high < low ? [0, 0] : [low, high];
}

export function clockTime(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  const hours = Math.floor(s / 3600);
  const rest = `${String(Math.floor((s % 3600) / 60)).padStart(hours ? 2 : 1, "0")}:${String(s % 60).padStart(2, "0")}`;
  return hours ? `${hours}:${rest}` : rest;
}

// Binds a canvas to an <audio>: redraws as it plays, seeks on click and keys, and tells screen readers
// where it stands (role slider). setWave(wave or null) changes the picture (another output).
export class WaveformSeeker {
  constructor(canvas, audio) {
    this.canvas = canvas;
    this.audio = audio;
    this.wave = null;
    canvas.tabIndex = 0;
    canvas.setAttribute("role", "slider");
    canvas.setAttribute("aria-valuemin", "0");
    canvas.addEventListener("click", (event) => this.seekTo(this.fractionAt(event.clientX)));
    canvas.addEventListener("keydown", (event) => this.key(event));
    for (const type of ["timeupdate", "seeked", "loadedmetadata", "durationchange"]) {
      audio.addEventListener(type, () => this.draw());
    }
    audio.addEventListener("play", () => this.follow());
    if (typeof ResizeObserver === "function") new ResizeObserver(() => this.draw()).observe(canvas);
  }

  setWave(wave) {
    this.wave = wave;
    this.draw();
  }

  duration() {
    const own = this.audio.duration;
    return Number.isFinite(own) && own > 0 ? own : (this.wave ? this.wave.seconds : 0);
  }

  fractionAt(clientX) {
    const box = this.canvas.getBoundingClientRect();
    return box.width ? Math.min(1, Math.max(0, (clientX - box.left) / box.width)) : 0;
  }

  seekTo(fraction) {
    const total = this.duration();
    if (!total) return;
    this.audio.currentTime = Math.min(total, Math.max(0, fraction * total));
    this.draw();
  }

  key(event) {
    const total = this.duration();
    const now = this.audio.currentTime;
    const target = {
      ArrowRight: now + KEY_STEP, ArrowUp: now + KEY_STEP, ArrowLeft: now - KEY_STEP, ArrowDown: now - KEY_STEP,
      PageUp: now + total * PAGE_STEP, PageDown: now - total * PAGE_STEP, Home: 0, End: total,
    }[event.key];
    if (target === undefined || !total) return;
    event.preventDefault(); // the page does not scroll
    this.seekTo(target / total);
  }

  // Smooth colour while playing (timeupdate alone comes about 4 times a second).
  follow() {
    const step = () => {
      this.draw();
      if (!this.audio.paused && !this.audio.ended && this.canvas.isConnected) requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  }

  draw() {
    const total = this.duration();
    const now = this.audio.currentTime || 0;
    drawWaveform(this.canvas, this.wave, total ? now / total : 0);
    this.canvas.setAttribute("aria-valuemax", String(Math.round(total)));
    this.canvas.setAttribute("aria-valuenow", String(Math.round(now)));
    this.canvas.setAttribute("aria-valuetext", `${clockTime(now)} of ${clockTime(total)}`);
  }
}
