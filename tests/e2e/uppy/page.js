// A page on another origin that uploads to the gateway's tus endpoint with Uppy (@uppy/core + @uppy/tus),
// as a third-party web app would. The test drives it through window.uppyTest; the page only reports.
import Uppy from "@uppy/core";
import Tus from "@uppy/tus";

const log = (text) => { document.getElementById("log").textContent += text + "\n"; };
const state = { events: [], progress: 0, jobId: null, error: null, paused: false };

// endpoint: the gateway's /uploads/; token: a Bearer token; chunkSize: bytes per PATCH;
// pauseAfter: bytes after which the upload is paused once (the test resumes it), 0 for never.
function start({ endpoint, token, chunkSize, pauseAfter }) {
  const uppy = new Uppy({ autoProceed: false, restrictions: { maxNumberOfFiles: 1 } });
  uppy.use(Tus, { endpoint, chunkSize, headers: { Authorization: "Bearer " + token },
                  retryDelays: [200, 500, 1000, 2000], removeFingerprintOnSuccess: true });
  uppy.on("upload-progress", (file, progress) => {
    state.progress = progress.bytesUploaded;
    if (pauseAfter && !state.paused && progress.bytesUploaded >= pauseAfter) {
      state.paused = true;
      uppy.pauseResume(file.id);
      state.events.push("paused");
      log("paused at " + progress.bytesUploaded);
    }
  });
  uppy.on("upload-success", (file, response) => {
    state.jobId = response.body.xhr.getResponseHeader("Job-Id");
    state.events.push("success");
    log("uploaded: job " + state.jobId);
  });
  uppy.on("upload-error", (file, error) => { state.error = String(error); state.events.push("error"); log("error: " + error); });
  const input = document.getElementById("file");
  const file = input.files[0];
  uppy.addFile({ name: file.name, type: file.type, data: file, source: "Local" });
  window.uppyTest.uppy = uppy;
  uppy.upload().catch((error) => { state.error = String(error); });
}

function resume() {
  const [file] = window.uppyTest.uppy.getFiles();
  window.uppyTest.uppy.pauseResume(file.id);
  state.events.push("resumed");
  log("resumed");
}

window.uppyTest = { start, resume, state };
