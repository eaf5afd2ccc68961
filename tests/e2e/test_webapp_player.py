"""The web app's player in Debian's Chromium: a done job's waveform (drawn, the played part in another
colour, a click or an arrow key seeks the audio), its outputs, chapters and loudness report; the upload
form's presets, extra outputs and import by URL.

test_waveform_module_* load only the page's waveform module with a fixture (a WAV and its peaks served
on the app's own origin by Playwright): unit-level checks of the drawing and seeking code. The
test_player_* and test_import_* tests drive the real stack end to end."""
from __future__ import annotations

import array
import base64
import json
import re
import subprocess
import time
import wave
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from devkit.client import Client
from devkit.media import make_media, unique_mp4

from .conftest import SHOTS, static_site
from .test_webapp import LONG, job, log_in, shot

PLAYED = (0x1F, 0x4E, 0x79)  # waveform.js's colours
AHEAD = (0x9F, 0xB3, 0xC8)
CHAPTERS = [("Opening", 0, 4), ("The middle part", 4, 8), ("Closing words", 8, 12)]
# a tone whose loudness swells and fades every 5 s: a waveform with a shape, not a flat band
SWELL = "aevalsrc=0.8*sin(2*PI*440*t)*(0.55+0.45*sin(2*PI*0.2*t)):s={rate}:d={seconds}"


def peaks(wav: Path, per_pixel: int) -> dict:
    """BBC audiowaveform JSON v2 (8 bits, one channel) of a 16-bit mono WAV, made here for the fixture."""
    with wave.open(str(wav)) as reader:
        rate = reader.getframerate()
        samples = array.array("h", reader.readframes(reader.getnframes()))  # the machine's order: little-endian
    data = []
    for start in range(0, len(samples) - per_pixel + 1, per_pixel):
        block = samples[start:start + per_pixel]
        data += [min(block) >> 8, max(block) >> 8]
    return {"version": 2, "channels": 1, "sample_rate": rate, "samples_per_pixel": per_pixel, "bits": 8,
            "length": len(data) // 2, "data": data}


@pytest.fixture(scope="module")
def account(stack):
    return Client(stack["gateway"]).signed_up()


@pytest.fixture(scope="module")
def media_short(tmp_path_factory) -> Path:
    return make_media(tmp_path_factory.mktemp("form") / "form clip.mp4", seconds=2)


@pytest.fixture(scope="module")
def fixture_audio(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("player")
    wav = folder / "swell.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", SWELL.format(rate=8000, seconds=20),
                    "-c:a", "pcm_s16le", str(wav)], check=True)
    return {"wav": wav.read_bytes(), "peaks": peaks(wav, 80), "seconds": 20.0}


def ranged(route, body: bytes, content_type: str) -> None:
    """The answer with Range support, as the gateway's downloads have: without it a player cannot seek."""
    match = re.fullmatch(r"bytes=(\d+)-(\d*)", route.request.headers.get("range", ""))
    if not match:
        route.fulfill(body=body, content_type=content_type, headers={"Accept-Ranges": "bytes"})
        return
    start = int(match.group(1))
    end = min(int(match.group(2) or len(body) - 1), len(body) - 1)
    route.fulfill(status=206, body=body[start:end + 1], content_type=content_type,
                  headers={"Accept-Ranges": "bytes", "Content-Range": f"bytes {start}-{end}/{len(body)}"})


def serve_fixture(page: Page, audio: dict) -> None:
    """/fixture/swell.wav and /fixture/swell.json on the app's own origin (what the CSP allows)."""
    page.route("**/fixture/swell.wav", lambda route: ranged(route, audio["wav"], "audio/wav"))
    page.route("**/fixture/swell.json", lambda route: route.fulfill(body=json.dumps(audio["peaks"]),
                                                                    content_type="application/json"))


def colours(page: Page, canvas: str, left: float, right: float) -> dict:
    """How many pixels of the canvas's columns from `left` to `right` (shares of its width) have each
    of the two waveform colours, and how many are blank."""
    return page.evaluate("""([selector, left, right]) => {
        const canvas = document.querySelector(selector);
        const from = Math.floor(canvas.width * left), to = Math.floor(canvas.width * right);
        const { data } = canvas.getContext("2d").getImageData(from, 0, to - from, canvas.height);
        const counts = { played: 0, ahead: 0, blank: 0, other: 0 };
        for (let i = 0; i < data.length; i += 4) {
            const rgb = data[i] * 65536 + data[i + 1] * 256 + data[i + 2];
            if (data[i + 3] === 0) counts.blank++;
            else if (rgb === 0x1f4e79) counts.played++;
            else if (rgb === 0x9fb3c8) counts.ahead++;
            else counts.other++;
        }
        return counts;
    }""", [canvas, left, right])


def test_waveform_module_parses_and_draws(page, fixture_audio):
    drawn = page.evaluate("""async (json) => {
        const { parseWaveform, drawWaveform } = await import("/assets/waveform.js");
        const wave = parseWaveform(json);
        const canvas = document.createElement("canvas");
        canvas.id = "fixture-canvas";
        canvas.style.width = "500px"; canvas.style.height = "80px";
        document.body.append(canvas);
        drawWaveform(canvas, wave, 0.5);
        const refused = [];
        for (const bad of [null, {}, { ...json, bits: 12 }, { ...json, data: "x" }, { ...json, version: 3 }]) {
            try { parseWaveform(bad); } catch (_) { refused.push(true); }
        }
        return { length: wave.length, seconds: wave.seconds, low: Math.min(...wave.min), high: Math.max(...wave.max),
                 width: canvas.width, refused: refused.length };
    }""", fixture_audio["peaks"])
    assert drawn["length"] == fixture_audio["peaks"]["length"] == 2000
    assert drawn["seconds"] == pytest.approx(fixture_audio["seconds"])
    assert -1 <= drawn["low"] < -0.5 and 0.5 < drawn["high"] <= 1, drawn  # 8-bit peaks scaled to -1..1
    assert drawn["refused"] == 5
    first, second = colours(page, "#fixture-canvas", 0, 0.49), colours(page, "#fixture-canvas", 0.51, 1)
    assert first["played"] > 1000 and first["ahead"] == 0, first  # the played half in its own colour
    assert second["ahead"] > 1000 and second["played"] == 0, second
    # the swell: the tallest column (near 1.25 s) is much taller than the quietest (near 3.75 s)
    heights = page.evaluate("""() => {
        const canvas = document.querySelector("#fixture-canvas");
        const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
        const height = (x) => {
            let n = 0;
            for (let y = 0; y < canvas.height; y++) n += data[(y * canvas.width + x) * 4 + 3] > 0;
            return n;
        };
        return [height(Math.round(canvas.width * 1.25 / 20)), height(Math.round(canvas.width * 3.75 / 20))];
    }""")
    assert heights[0] > 4 * heights[1], heights


def test_waveform_module_seeks_on_click_and_keys(page, fixture_audio):
    serve_fixture(page, fixture_audio)
    page.evaluate("""async () => {
        const { WaveformSeeker, parseWaveform } = await import("/assets/waveform.js");
        const audio = document.createElement("audio");
        audio.controls = true; audio.preload = "auto"; audio.id = "fixture-audio";
        const canvas = document.createElement("canvas");
        canvas.id = "fixture-seek"; canvas.setAttribute("aria-label", "Waveform");
        canvas.style.width = "600px"; canvas.style.height = "64px"; canvas.style.display = "block";
        document.querySelector("main").prepend(audio, canvas);
        const seeker = new WaveformSeeker(canvas, audio);
        audio.src = "/fixture/swell.wav";
        seeker.setWave(parseWaveform(await (await fetch("/fixture/swell.json")).json()));
    }""")
    # a function, not an expression: Playwright polls an expression with eval, which the app's CSP refuses
    page.wait_for_function("() => document.querySelector('#fixture-audio').readyState >= 1")
    canvas = page.locator("#fixture-seek")
    expect(canvas).to_have_attribute("aria-valuemax", "20")  # the seeker knows the duration
    box = canvas.bounding_box()
    canvas.click(position={"x": box["width"] * 0.5, "y": box["height"] / 2})
    now = lambda: page.evaluate("document.querySelector('#fixture-audio').currentTime")  # noqa: E731
    assert now() == pytest.approx(10, abs=0.3)
    expect(canvas).to_be_focused()  # the click focused it: the keys go on from there
    page.keyboard.press("ArrowRight")
    assert now() == pytest.approx(15, abs=0.3)
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert now() == pytest.approx(5, abs=0.3)
    expect(canvas).to_have_attribute("aria-valuetext", "0:05 of 0:20")
    page.keyboard.press("End")
    assert now() == pytest.approx(20, abs=0.3)
    page.keyboard.press("Home")
    assert now() == pytest.approx(0, abs=0.1)
    canvas.click(position={"x": box["width"] * 0.75, "y": 5})
    assert colours(page, "#fixture-seek", 0, 0.7)["ahead"] == 0  # redrawn: three quarters played
    assert colours(page, "#fixture-seek", 0.8, 1)["played"] == 0


def fixture_view(job_id: str, seconds: float) -> dict:
    """A done job as the job view shows it after issue 23 (two outputs, chapters, a loudness report), its
    files served by serve_fixture: for the screenshot and the panel's check before the backend exists."""
    loudness = {"integrated_lufs": -16.1, "range_lu": 5.2, "true_peak_dbtp": -1.6}
    result = {"mp3_id": "f1", "output": 0, "filename": "Talk on waveforms.mp3", "format": "mp3",
              "media_type": "audio/mpeg", "size": 482_304, "audio_seconds": seconds,
              "options": {"format": "mp3", "bitrate": "192k"}, "download_url": "/download?fid=f1",
              "link": "/fixture/swell.wav", "loudness": loudness, "waveform_url": "/download?fid=w1",
              "waveform_link": "/fixture/swell.json", "chapter": None}
    opus = dict(result, mp3_id="f2", output=1, filename="Talk on waveforms.opus", format="opus",
                media_type="audio/ogg", size=161_002, options={"format": "opus", "bitrate": "64k"})
    return {"job_id": job_id, "status": "done", "filename": "Talk on waveforms.mp4", "audio_seconds": seconds,
            "mp3_id": "f1", "link": result["link"], "options": result["options"], "outputs": [result, opus],
            "preset": None, "source_url": None,
            "chapters": [{"title": t, "start": s * seconds / 12, "end": e * seconds / 12} for t, s, e in CHAPTERS],
            "loudness": {"output": loudness, "source": {"integrated_lufs": -23.4, "range_lu": 6.0,
                                                       "true_peak_dbtp": -4.2}}}


def test_player_panel_with_a_fixture_view(page, fixture_audio):
    """The whole panel (jobs.js's list item) from a job view of the contract, its files faked on this
    origin: outputs, chapters, loudness, waveform. Its picture (22-player-fixture.png) is the README's until
    the real stack has waveforms (test_player_of_a_chaptered_job_with_two_outputs checks the same with real
    jobs and takes 23-player.png)."""
    serve_fixture(page, fixture_audio)
    page.set_viewport_size({"width": 700, "height": 900})
    page.evaluate("""async (view) => {
        const { createItem } = await import("/assets/jobs.js");
        document.querySelector("#account").hidden = true;
        document.querySelector("#jobs-section").hidden = false;
        document.querySelector("#no-jobs").hidden = true;
        document.querySelector("#jobs").append(createItem(view, { cancel() {}, remove() {} }));
    }""", fixture_view("fixture", fixture_audio["seconds"]))
    item = job(page, "Talk on waveforms.mp4")
    check_panel(page, item, fixture_audio["seconds"], ["MP3", "OPUS"], before=True)
    picture(page, item, "22-player-fixture")


def picture(page: Page, item, name: str) -> None:
    """The player with the first output a third played, in the screenshots folder (docs/webapp-player.png
    is a copy of it: a test run leaves the repository's files alone)."""
    item.get_by_role("button", name=re.compile("^Play MP3")).click()
    audio = item.locator("audio").element_handle()
    page.wait_for_function("a => a.readyState >= 1", arg=audio, timeout=LONG)
    canvas = item.get_by_role("slider", name=re.compile("^Waveform of"))
    box = canvas.bounding_box()
    canvas.click(position={"x": box["width"] / 3, "y": box["height"] / 2})
    page.locator("#jobs-section").screenshot(path=str(SHOTS / f"{name}.png"))


def test_split_panel_with_a_fixture_view(page, fixture_audio):
    """A job split by chapters (a view of the contract, files faked on this origin): one output per
    chapter, titled; a chapter of the list plays its own file from its start."""
    serve_fixture(page, fixture_audio)
    view = fixture_view("split", fixture_audio["seconds"])
    first = view["outputs"][0]
    view["outputs"] = [dict(first, mp3_id=f"c{n}", filename=f"Talk {n:02d} {title}.mp3", size=100_000 * n,
                            chapter={"index": n, "count": 3, "title": title, "start": start, "end": end})
                       for n, (title, start, end) in enumerate(CHAPTERS, start=1)]
    page.evaluate("""async (view) => {
        const { createItem } = await import("/assets/jobs.js");
        document.querySelector("#jobs-section").hidden = false;
        document.querySelector("#jobs").append(createItem(view, { cancel() {}, remove() {} }));
    }""", view)
    item = job(page, "Talk on waveforms.mp4")
    rows = item.locator(".output")
    expect(rows).to_have_count(3)
    for row, (title, _, _) in zip(rows.all(), CHAPTERS, strict=True):
        expect(row.locator(".output-label")).to_contain_text(title)
    expect(item.get_by_role("link", name="Download Talk 02 The middle part.mp3")).to_have_count(1)
    audio = item.locator("audio").element_handle()
    page.wait_for_function("a => a.readyState >= 1", arg=audio, timeout=LONG)
    page.evaluate("a => { a.currentTime = 7; }", audio)
    item.locator(".chapters").get_by_role("button", name=re.compile(CHAPTERS[1][0])).click()
    expect(item.get_by_role("button", name=re.compile("^Play 2 of 3"))).to_have_attribute("aria-pressed", "true")
    expect(item.get_by_role("button", name=re.compile("^Play 1 of 3"))).to_have_attribute("aria-pressed", "false")
    expect(item.locator(".now-playing")).to_have_text("Playing: 2 of 3 The middle part: MP3 192k")
    page.wait_for_function("a => a.readyState >= 1 && a.currentTime < 1", arg=audio, timeout=LONG)


def check_panel(page: Page, item, seconds: float, formats: list[str], before: bool) -> None:
    """What a done job's panel must show and do: every output (format, size, Download), the waveform
    drawn and seeking, the chapters seeking, the loudness report."""
    outputs = item.locator(".output")
    expect(outputs).to_have_count(len(formats))
    for row, name in zip(outputs.all(), formats, strict=True):
        expect(row.locator(".output-label")).to_contain_text(name)
        expect(row.locator(".output-size")).to_have_text(re.compile(r"^\d+(\.\d)? (B|KB|MB)$"))
        expect(row.get_by_role("link", name=re.compile("^Download"))).to_have_attribute("href", re.compile("."))
    audio = item.locator("audio")
    expect(audio).to_have_count(1)
    page.wait_for_function("a => a.readyState >= 1", arg=audio.element_handle(), timeout=LONG)
    canvas = item.get_by_role("slider", name=re.compile("^Waveform of"))
    expect(canvas).to_be_visible()
    page.wait_for_function("c => Number(c.getAttribute('aria-valuemax')) > 0", arg=canvas.element_handle())
    handle = canvas.element_handle()
    page.evaluate("c => { c.id = c.id || 'panel-canvas-' + Math.random().toString(36).slice(2); }", handle)
    selector = "#" + handle.get_attribute("id")
    page.wait_for_function("c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                           " for (let i = 3; i < d.length; i += 4) if (d[i]) return true; return false; }", arg=handle)
    drawn = colours(page, selector, 0, 1)
    assert drawn["ahead"] + drawn["played"] > 500, drawn  # not blank
    box = canvas.bounding_box()
    canvas.click(position={"x": box["width"] / 2, "y": box["height"] / 2})
    duration = page.evaluate("a => a.duration", audio.element_handle())
    assert duration == pytest.approx(seconds, rel=0.1)
    assert page.evaluate("a => a.currentTime", audio.element_handle()) == pytest.approx(duration / 2, rel=0.05)
    assert colours(page, selector, 0, 0.45)["ahead"] == 0  # redrawn: the first half played
    chapters = item.locator(".chapters li")
    expect(chapters).to_have_count(len(CHAPTERS))
    for row, (title, _, _) in zip(chapters.all(), CHAPTERS, strict=True):
        expect(row).to_contain_text(title)
    item.locator(".chapters").get_by_role("button", name=re.compile(CHAPTERS[2][0])).click()
    chapter_start = float(page.evaluate("a => a.currentTime", audio.element_handle()))
    assert chapter_start == pytest.approx(CHAPTERS[2][1] * seconds / 12, abs=0.6)
    loudness = item.locator(".loudness")
    expect(loudness).to_contain_text(
        re.compile(r"-?\d+\.\d LUFS integrated, range \d+\.\d LU, true peak -?\d+\.\d dBTP"))
    if before:
        expect(loudness).to_contain_text("Before (the source)")
    if len(formats) > 1:  # the player switches to the second output
        first_src = audio.get_attribute("src")
        item.get_by_role("button", name=re.compile("^Play " + formats[1])).click()
        switch = item.get_by_role("button", name=re.compile("^Play " + formats[1]))
        expect(switch).to_have_attribute("aria-pressed", "true")
        if "fixture" not in first_src:
            expect(audio).not_to_have_attribute("src", first_src)
        page.wait_for_function("([a, t]) => a.readyState >= 1 && Math.abs(a.currentTime - t) < 0.6",
                               arg=[audio.element_handle(), chapter_start], timeout=LONG)  # went on where it was


# ---------------------------------------------------------------- the real stack (after issue 23's merge)


def chaptered_video(path: Path, seconds: float = 12) -> Path:
    """A video with three chapters (ffmpeg metadata) and a swelling tone, new bytes each time (no dedup)."""
    meta = path.with_suffix(".txt")
    lines = [";FFMETADATA1"]
    for title, start, end in CHAPTERS:
        scale = 1000 * seconds / 12
        lines += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={int(start * scale)}", f"END={int(end * scale)}",
                  f"title={title}"]
    meta.write_text("\n".join(lines) + "\n")
    subprocess.run(["ffmpeg", "-v", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc=size=160x120:rate=10:duration={seconds}",
                    "-f", "lavfi", "-i", SWELL.format(rate=44100, seconds=seconds), "-i", str(meta),
                    "-map", "0:v", "-map", "1:a", "-map_chapters", "2", "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)], check=True)
    path.write_bytes(unique_mp4(path.read_bytes()))
    return path


def test_player_of_a_chaptered_job_with_two_outputs(page, stack, tmp_path):
    """Needs issue 23's backend: outputs, chapters, loudness and waveforms in the job view."""
    user = Client(stack["gateway"]).signed_up()
    log_in(page, user)
    video = chaptered_video(tmp_path / "chaptered talk.mp4")
    page.get_by_text("Output options").click()
    page.get_by_label("Normalize loudness").check()
    page.get_by_label("Opus 64 kbit/s").check()
    page.get_by_label("Video file").set_input_files(video)
    page.get_by_role("button", name="Convert").click()
    item = job(page, "chaptered talk.mp4")
    expect(item.get_by_role("status")).to_have_text(re.compile("^done"), timeout=LONG)
    check_panel(page, item, 12, ["MP3", "OPUS"], before=True)
    shot(page, "20-player")
    picture(page, item, "23-player")  # docs/webapp-player.png
    view = requests.get(f"{user.base}/jobs", headers=user.auth, timeout=10).json()["jobs"][0]
    assert [o["format"] for o in view["outputs"]] == ["mp3", "opus"], view
    assert [c["title"] for c in view["chapters"]] == [t for t, _, _ in CHAPTERS], view


def test_player_of_a_job_split_by_chapters(page, stack, tmp_path):
    """Needs issue 23's backend: split=chapters makes one output per chapter; a chapter plays its own file."""
    user = Client(stack["gateway"]).signed_up()
    log_in(page, user)
    page.get_by_text("Output options").click()
    page.get_by_label("One file per chapter").check()
    page.get_by_label("Video file").set_input_files(chaptered_video(tmp_path / "split talk.mp4"))
    page.get_by_role("button", name="Convert").click()
    item = job(page, "split talk.mp4")
    expect(item.get_by_role("status")).to_have_text(re.compile("^done"), timeout=LONG)
    outputs = item.locator(".output")
    expect(outputs).to_have_count(3)
    for row, (title, _, _) in zip(outputs.all(), CHAPTERS, strict=True):
        expect(row.locator(".output-label")).to_contain_text(title)
    item.locator(".chapters").get_by_role("button", name=re.compile(CHAPTERS[1][0])).click()  # plays its file
    expect(item.get_by_role("button", name=re.compile("^Play 2 of 3"))).to_have_attribute("aria-pressed", "true")
    shot(page, "21-split")


def test_presets_fill_the_form_and_travel_with_the_upload(page, stack, tmp_path):
    """Needs issue 23's backend: GET /me/presets and preset= on uploads."""
    user = Client(stack["gateway"]).signed_up()
    log_in(page, user)
    preset = page.get_by_label("Preset")
    expect(preset.locator("option[value=podcast]")).to_have_count(1)
    preset.select_option("podcast")
    expect(page.locator("#preset-hint")).to_contain_text("Preset podcast:")
    page.get_by_text("Output options").click()
    expect(page.get_by_label("Channels")).to_have_value("1")  # the podcast preset is mono
    page.get_by_label("Video file").set_input_files(chaptered_video(tmp_path / "podcast.mp4", seconds=4))
    page.get_by_role("button", name="Convert").click()
    item = job(page, "podcast.mp4")
    expect(item.locator(".job-meta")).to_have_text("preset podcast")
    expect(item.get_by_role("status")).to_have_text(re.compile("^done"), timeout=LONG)
    view = requests.get(f"{user.base}/jobs", headers=user.auth, timeout=10).json()["jobs"][0]
    assert view["preset"] == "podcast" and int(view["options"]["channels"]) == 1, view


def test_import_by_url_shows_fetching_then_plays(page, stack, tmp_path):
    """Needs issue 23's backend: POST /jobs with source_url (a 127.0.0.1 server: the test stack's
    IMPORT_ALLOWED_NETWORKS)."""
    user = Client(stack["gateway"]).signed_up()
    log_in(page, user)
    chaptered_video(tmp_path / "remote talk.mp4", seconds=6)
    with static_site(tmp_path) as site:
        page.get_by_label("Or a video's URL").fill(f"{site}/remote%20talk.mp4")
        page.get_by_role("button", name="Convert").click()
        item = page.locator("#jobs > li").first
        expect(item.get_by_role("status")).to_have_text(re.compile("^(fetching|queued|converting|done)"))
        expect(item.locator(".job-meta")).to_contain_text("from " + site)
        expect(item.get_by_role("status")).to_have_text(re.compile("^done"), timeout=LONG)
    expect(item.locator(".output")).to_have_count(1)
    expect(item.get_by_role("slider", name=re.compile("^Waveform of"))).to_be_visible()


def test_fetching_status_shows_the_fetch_progress(page):
    """The status words and progress bar of a job in status fetching (a view of the contract)."""
    page.evaluate("""async () => {
        const { createItem } = await import("/assets/jobs.js");
        document.querySelector("#jobs-section").hidden = false;
        for (const fetch of [{ bytes: 4194304, total: 10485760 }, { bytes: 1572864, total: null }]) {
            document.querySelector("#jobs").append(createItem({ job_id: "f" + fetch.bytes, status: "fetching",
                filename: null, source_url: "https://example.com/talk.mp4", fetch }, { cancel() {}, remove() {} }));
        }
    }""")
    items = page.locator("#jobs > li")
    expect(items.nth(0).get_by_role("status")).to_have_text("fetching 40% (4.0 MB of 10 MB)")
    expect(items.nth(0).locator("progress")).to_have_js_property("value", 40)
    expect(items.nth(1).get_by_role("status")).to_have_text("fetching (1.5 MB)")
    expect(items.nth(1).locator("progress")).to_be_hidden()
    expect(items.nth(0).locator(".job-name")).to_have_text("https://example.com/talk.mp4")


def sent_fields(request) -> dict:
    """The option fields of an upload request as the page sent them: multipart form fields (POST /upload)
    or tus Upload-Metadata (POST /uploads/)."""
    metadata = request.headers.get("upload-metadata")
    if "json" in (request.headers.get("content-type") or ""):
        return request.post_data_json
    if metadata:
        pairs = (item.split(" ") for item in metadata.split(","))
        return {key: base64.b64decode(value).decode() for key, value in pairs}
    body = request.post_data_buffer.decode("utf-8", "replace")
    return dict(re.findall(r'name="([^"]+)"\r\n\r\n([^\r]*)\r\n', body))


def test_upload_form_sends_extra_outputs_and_urls(page, stack, account, media_short):
    """What the form sends (observed, not answered by the test): extra outputs as `outputs`, trim_silence
    and split; a URL as `source_url` with no file. The server's answer is the stack's own."""
    log_in(page, account)
    uploads = []
    page.on("request", lambda r: r.method == "POST" and re.search(r"/uploads?/?$", r.url) and uploads.append(r))
    page.get_by_text("Output options").click()
    page.get_by_label("Bitrate").select_option("128k")
    page.get_by_label("Trim silence").check()
    page.get_by_label("One file per chapter").check()
    page.get_by_label("Opus 64 kbit/s").check()
    page.get_by_label("FLAC (lossless)").check()
    page.get_by_label("Video file").set_input_files(media_short)
    page.get_by_role("button", name="Convert").click()
    expect(page.locator(".upload")).to_have_count(1)
    deadline = time.monotonic() + 15
    while not uploads and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    fields = sent_fields(uploads[0])
    assert fields["trim_silence"] == "true" and fields["split"] == "chapters" and fields["bitrate"] == "128k", fields
    outputs = json.loads(fields["outputs"])
    assert [(o["format"], o.get("bitrate")) for o in outputs] == [("mp3", "128k"), ("opus", "64k"), ("flac", None)]
    assert all(o["trim_silence"] == "true" and o["split"] == "chapters" for o in outputs), outputs
    assert outputs[2]["cover"] == "false" and outputs[1]["cover"] == "false"  # Opus has no cover; none chosen
    assert "preset" not in fields and "source_url" not in fields

    page.get_by_label("Or a video's URL").fill("ftp://example.com/talk.mp4")
    page.get_by_role("button", name="Convert").click()
    expect(page.get_by_role("alert")).to_have_text("The URL must start with http:// or https://.")
    page.get_by_label("Or a video's URL").fill("http://127.0.0.1:9/talk.mp4")
    with page.expect_request(lambda r: r.method == "POST" and re.search("/(jobs|upload)$", r.url)) as request:
        page.get_by_role("button", name="Convert").click()
    fields = sent_fields(request.value)  # POST /jobs as JSON (issue 23's import), the form field before it
    assert fields["source_url"] == "http://127.0.0.1:9/talk.mp4" and "file" not in fields, fields
    assert json.loads(fields["outputs"])[1]["format"] == "opus"
    assert 'filename="' not in request.value.post_data_buffer.decode("utf-8", "replace")
