"""The `vid2mp3` command line, built on the SDK (sdk.py). Exit codes: errors.py and README.md."""
from __future__ import annotations

import functools
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import click

from . import __version__, config
from .errors import AUTH, INTERRUPTED, OK, USAGE, JobFailed, Vid2mp3Error
from .models import Job, Preset
from .sdk import Client

# The upload API's output options (README "Output options"), sent as tus Upload-Metadata.
TEXT_OPTIONS = (
    ("format", "mp3, m4a, opus, flac or wav (default mp3)"),
    ("bitrate", "constant bitrate in kbit/s, e.g. 192k"),
    ("quality", "mp3 VBR quality, 0 (best) to 9"),
    ("sample-rate", "sample rate in Hz, e.g. 44100"),
    ("channels", "1 (mono) or 2 (stereo)"),
    ("start", "start of the audio kept, seconds or [hh:]mm:ss"),
    ("end", "end of the audio kept, seconds or [hh:]mm:ss"),
    ("audio-track", "index of the audio track, from 0"),
    ("title", "title tag"),
    ("artist", "artist tag"),
    ("album", "album tag"),
    ("callback-url", "URL the server POSTs a signed webhook to when the job ends"),
    ("preset", "a server preset: podcast, music, voice, audiobook or one of yours (`vid2mp3 presets`); the "
               "options given override its own"),
)
FLAGS = (("normalize", "normalize the loudness"), ("cover", "keep the video's picture as cover art"))
NOT_PRESET_FIELDS = ("callback-url", "preset")  # upload fields a preset does not hold


def output_options(command: Callable, for_preset: bool = False) -> Callable:
    if not for_preset:
        command = click.option("--output", "outputs", metavar="OPTIONS", multiple=True,
                               help="one more result from the same video, as name=value pairs separated by commas "
                                    "(e.g. 'format=opus,bitrate=64k'); repeat it for several. The other options "
                                    "are the defaults of each")(command)
    for name, text in reversed(FLAGS):
        command = click.option(f"--{name}/--no-{name}", default=None, help=text)(command)
    for name, text in reversed(TEXT_OPTIONS):
        if not (for_preset and name in NOT_PRESET_FIELDS):
            command = click.option(f"--{name}", metavar="VALUE", help=text)(command)
    return command


def split_options(given: Dict[str, Any]) -> Dict[str, Any]:
    """The options as the API names them (callback_url and preset among them) from the command's arguments."""
    names = [name.replace("-", "_") for name, _ in TEXT_OPTIONS + FLAGS]
    options = {name: given.pop(name) for name in names if given.get(name) is not None}
    outputs = [output_fields(text) for text in given.pop("outputs", None) or ()]
    if outputs:
        options["outputs"] = outputs
    return options


def output_fields(text: str) -> Dict[str, str]:
    """One --output: 'format=opus,bitrate=64k' → {"format": "opus", "bitrate": "64k"} (names as the options'
    flags, dashes or underscores; the server checks the values)."""
    fields: Dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        name, equals, value = pair.partition("=")
        if not equals or not name.strip():
            raise click.BadParameter(f"{pair!r} is not name=value (e.g. format=opus,bitrate=64k)",
                                     param_hint="--output")
        fields[name.strip().replace("-", "_")] = value.strip()
    if not fields:
        raise click.BadParameter("give at least one name=value, e.g. format=flac", param_hint="--output")
    return fields


def json_option(command: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")(command)


class State:
    def __init__(self, url: Optional[str], as_json: bool):
        self.url, self.as_json = config.resolve_url(url), as_json

    def client(self, **kwargs: Any) -> Client:
        return Client(self.url, token=config.resolve_credential(self.url), **kwargs)


def _state(as_json: bool = False) -> State:
    state = click.get_current_context().find_object(State)
    state.as_json = state.as_json or as_json
    return state


def emit(state: State, data: Any, text: str) -> None:
    click.echo(json.dumps(data, indent=1) if state.as_json else text)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", metavar="URL",
              help=f"the server (or VID2MP3_URL; default: the last login's, else {config.DEFAULT_URL})")
@json_option
@click.version_option(__version__, prog_name="vid2mp3")
@click.pass_context
def cli(ctx: click.Context, url: Optional[str], as_json: bool) -> None:
    """Convert videos to MP3 (and other audio) with a vid2mp3 server."""
    ctx.obj = State(url, as_json)


@cli.command()
@click.option("--email", help="your account's email (asked if not given)")
@click.option("--password", help="asked if not given (better: VID2MP3_PASSWORD or the prompt)",
              envvar="VID2MP3_PASSWORD")
@click.option("--api-key", metavar="KEY", help="store this API key (v2m_…) instead of logging in")
@json_option
def login(email: Optional[str], password: Optional[str], api_key: Optional[str], as_json: bool) -> None:
    """Log in and keep the credential (readable by you only) in your config folder."""
    state = _state(as_json)
    if api_key:
        account = Client(state.url, api_key=api_key).me()  # refused keys fail here, not at the next upload
        path = config.save_credential(state.url, api_key=api_key, email=account.email)
    else:
        email = email or click.prompt("Email")
        password = password or click.prompt("Password", hide_input=True)
        token = Client.login(state.url, email, password)
        account = Client(state.url, token=token).me()
        path = config.save_credential(state.url, token=token, email=account.email)
    emit(state, {"url": state.url, "email": account.email, "credential_file": str(path)},
         f"Logged in to {state.url} as {account.email}; credential stored in {path}")


@cli.command()
@json_option
def logout(as_json: bool) -> None:
    """Forget the stored credential of the server."""
    state = _state(as_json)
    forgot = config.forget_credential(state.url)
    emit(state, {"url": state.url, "forgotten": forgot}, f"Forgot the credential for {state.url}" if forgot
         else f"No credential stored for {state.url}")


@cli.command()
@json_option
def whoami(as_json: bool) -> None:
    """Your account: email, usage and limits."""
    state = _state(as_json)
    account = state.client().me()
    limits = account.limits or {}
    lines = [f"{account.email}{' (admin)' if account.admin else ''} on {state.url}"]
    lines += [f"  {name}: {used}" + (f" of {limits[name]}" if name in limits else "")
              for name, used in account.usage.items()]
    emit(state, {"email": account.email, "admin": account.admin, "usage": account.usage, "limits": account.limits},
         "\n".join(lines))


@cli.command()
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--source-url", "source_urls", multiple=True, metavar="URL",
              help="convert the video at this http(s) URL: the server fetches it (repeatable)")
@output_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="folder for the results (default: beside each video; for --source-url the current folder)")
@click.option("--parallel", default=3, show_default=True, type=click.IntRange(1, 16), help="files at once")
@click.option("--chunk-size", default=8, show_default=True, type=click.IntRange(1, 1024),
              help="MiB sent per request")
@json_option
def convert(files: List[Path], source_urls: Tuple[str, ...], out: Optional[Path], parallel: int, chunk_size: int,
            as_json: bool, **given: Any) -> None:
    """Convert FILES (and videos at --source-url URLs): resumable uploads, live progress, results downloaded.

    Run it again after an interruption: unfinished uploads resume where they stopped."""
    from . import batch  # rich: only for the commands that show progress

    if not files and not source_urls:
        raise click.UsageError("give FILES to upload or --source-url URL to import")
    state = _state(as_json)
    options = split_options(given)
    if out:
        out.mkdir(parents=True, exist_ok=True)
    client = state.client(chunk_size=chunk_size * 1024 * 1024)
    with batch.Display(enabled=not state.as_json and sys.stderr.isatty()) as display:
        results = batch.convert_all(client, list(files), options, out, parallel, display, list(source_urls))
    if state.as_json:
        click.echo(json.dumps([r.as_dict() for r in results], indent=1))
    else:
        for r in results:
            text = r.output if r.output else f"{r.status or 'error'}: {r.reason or (r.error or {}).get('message')}"
            click.echo(f"{r.file} → {text}", err=r.exit_code != OK)
    raise SystemExit(batch.exit_code(results))


@cli.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@output_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="folder for the results (default: FOLDER)")
@click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(0.1), help="seconds between looks")
@click.option("--parallel", default=2, show_default=True, type=click.IntRange(1, 16), help="files at once")
@json_option
def watch(folder: Path, out: Optional[Path], interval: float, parallel: int, as_json: bool, **given: Any) -> None:
    """Convert every video that appears in FOLDER, until interrupted (Ctrl-C).

    With --json, one JSON line per converted file."""
    from . import batch

    state = _state(as_json)
    options = split_options(given)
    if out:
        out.mkdir(parents=True, exist_ok=True)

    def report(result: "batch.Result") -> None:
        if state.as_json:
            click.echo(json.dumps(result.as_dict()))
        else:
            click.echo(f"{result.file} → {result.output or result.reason or (result.error or {}).get('message')}")

    watcher = batch.Watcher(state.client(), folder, out, options, parallel, batch.Display(False), report)
    if not state.as_json:
        click.echo(f"Watching {folder} (Ctrl-C stops)", err=True)
    watcher.run(interval)


def _job_line(job: Job) -> str:
    progress = f" {job.progress:.0f}%" if job.progress is not None else ""
    extra = f"  {job.reason}" if job.reason else ""
    return f"{job.id}  {job.status + progress:<16} {job.created_at or '':<28} {job.filename or ''}{extra}"


def _instant(value: Optional[str]) -> Optional[str]:
    """--since/--before as the API takes them: RFC 3339 with an offset. A date is its midnight UTC, and
    a time without an offset is UTC."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a date (2026-01-31) nor an RFC 3339 time") from None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).isoformat()


@cli.command()
@click.option("--status", multiple=True, help="only jobs with this status (repeat for several: any of them)")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100),
              help="jobs per page (with --all: per request)")
@click.option("--all", "every", is_flag=True, help="every job, page after page")
@click.option("--since", metavar="TIME", help="only jobs created after this date or RFC 3339 time")
@click.option("--before", metavar="TIME", help="only jobs created before this date or RFC 3339 time")
@click.option("--cursor", help="the page after the one that printed this next_cursor (same filters)")
@json_option
def jobs(status: Tuple[str, ...], limit: int, every: bool, since: Optional[str], before: Optional[str],
         cursor: Optional[str], as_json: bool) -> None:
    """Your jobs, newest first: one page, or all of them with --all. While more follow, a single page
    ends with `next_cursor: <cursor>` on stderr (stdout stays the list)."""
    state = _state(as_json)
    client, after, until = state.client(), _instant(since), _instant(before)
    if every:
        found, cursor = list(client.all_jobs(status, limit, after, until, cursor)), None
    else:
        found, cursor = client.jobs_page(status, limit, cursor, after, until)
    emit(state, [job.raw for job in found], "\n".join(_job_line(job) for job in found) or "no jobs")
    if cursor:
        click.echo(f"next_cursor: {cursor}", err=True)


@cli.command()
@click.argument("job_id")
@json_option
def show(job_id: str, as_json: bool) -> None:
    """One job: status, progress, options, result."""
    state = _state(as_json)
    job = state.client().job(job_id)
    emit(state, job.raw, "\n".join(f"{key}: {value}" for key, value in job.raw.items() if value not in (None, {})))


@cli.command()
@click.argument("job_id")
@json_option
def wait(job_id: str, as_json: bool) -> None:
    """Wait for a job to end (exit 1 unless it is done)."""
    state = _state(as_json)
    job = state.client().wait(job_id)
    emit(state, job.raw, f"{job.id} {job.status}" + (f": {job.reason}" if job.reason else ""))
    if not job.done:
        raise JobFailed(job)


@cli.command()
@click.argument("job_id")
@json_option
def cancel(job_id: str, as_json: bool) -> None:
    """Stop a queued or converting job."""
    state = _state(as_json)
    job = state.client().cancel(job_id)
    emit(state, job.raw, f"{job.id} {job.status}")


@cli.command()
@click.argument("job_id")
@json_option
def delete(job_id: str, as_json: bool) -> None:
    """Remove a job and its files."""
    state = _state(as_json)
    state.client().delete(job_id)
    emit(state, {"job_id": job_id, "deleted": True}, f"{job_id} deleted")


@cli.command()
@click.argument("job_id")
@click.option("--out", type=click.Path(path_type=Path), default=Path("."),
              help="folder (the server's name for the file) or file name  [default: .]")
@click.option("--all", "every", is_flag=True, help="every result of the job (several outputs, chapters) into the "
                                                     "folder --out")
@json_option
def download(job_id: str, out: Path, every: bool, as_json: bool) -> None:
    """Save a done job's result (its first; --all: every one)."""
    state = _state(as_json)
    if every:
        saved = state.client().download_all(job_id, out)
        emit(state, {"job_id": job_id, "output": str(saved[0]) if saved else None,
                     "outputs": [str(each) for each in saved]}, "\n".join(str(each) for each in saved))
        return
    saved_one = state.client().download(job_id, out)
    emit(state, {"job_id": job_id, "output": str(saved_one)}, str(saved_one))


def _preset_line(preset: Preset) -> str:
    fields = " ".join(f"{key}={value}" for key, value in preset.fields.items())
    kind = "built-in" if preset.builtin else "yours"
    return f"{preset.name:<16} {kind:<9} {fields}" + (f"  ({preset.description})" if preset.description else "")


@cli.group(invoke_without_command=True)
@json_option
@click.pass_context
def presets(ctx: click.Context, as_json: bool) -> None:
    """Named sets of output options: list them (built in, then yours), or show, set or delete one.

    Name one with `convert --preset NAME`; the options given with it override the preset's."""
    if ctx.invoked_subcommand is None:
        state = _state(as_json)
        found = state.client().presets()
        emit(state, [_preset_dict(p) for p in found], "\n".join(_preset_line(p) for p in found))


def _preset_dict(preset: Preset) -> Dict[str, Any]:
    return {"name": preset.name, "builtin": preset.builtin, "description": preset.description,
            "fields": preset.fields}


@presets.command("show")
@click.argument("name")
@json_option
def show_preset(name: str, as_json: bool) -> None:
    """One preset's options."""
    state = _state(as_json)
    preset = state.client().preset(name)
    emit(state, _preset_dict(preset), _preset_line(preset))


@presets.command("set")
@click.argument("name")
@functools.partial(output_options, for_preset=True)
@json_option
def set_preset(name: str, as_json: bool, **given: Any) -> None:
    """Store (or replace) your preset NAME with the options given (a-z, 0-9, _ and -, at most 40)."""
    state = _state(as_json)
    options = split_options(given)
    if not options:
        raise click.UsageError("give the preset's options, e.g. --format mp3 --bitrate 96k --channels 1")
    preset = state.client().save_preset(name, options)
    emit(state, _preset_dict(preset), _preset_line(preset))


@presets.command("delete")
@click.argument("name")
@json_option
def delete_preset(name: str, as_json: bool) -> None:
    """Forget your preset NAME (jobs that named it keep their options)."""
    state = _state(as_json)
    state.client().delete_preset(name)
    emit(state, {"name": name, "deleted": True}, f"preset {name} deleted")


def main(argv: Optional[List[str]] = None) -> None:
    """The console script: click's own handling, plus our errors as exit codes (and JSON with --json)."""
    try:
        code = cli.main(args=argv, prog_name="vid2mp3", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        code = INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except Vid2mp3Error as exc:
        code = _report(exc, sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else OK
    sys.stdout.flush()
    os._exit(code or OK) if code == INTERRUPTED else sys.exit(code or OK)  # Ctrl-C: no wait for upload threads


def _report(exc: Vid2mp3Error, argv: List[str]) -> int:
    """The error on stderr, and as {"error": {...}} on stdout for --json."""
    if "--json" in argv:
        error = {"code": getattr(exc, "code", type(exc).__name__), "message": str(exc),
                 "status": getattr(exc, "status", None), "exit_code": exc.exit_code}
        click.echo(json.dumps({"error": error}))
    hint = " (run `vid2mp3 login`, or set VID2MP3_TOKEN or VID2MP3_API_KEY)" \
        if exc.exit_code == AUTH and getattr(exc, "code", "") != "no_credential" else ""
    click.echo(f"vid2mp3: {exc}{hint}", err=True)
    return exc.exit_code if exc.exit_code is not None else USAGE
