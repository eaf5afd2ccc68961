"""trim_silence's first pass, read: where the audio is louder than the threshold, from what ffmpeg's
silencedetect filter printed (command.silence_filters puts it in; encode.py runs the pass)."""
from __future__ import annotations

import math
import re

_SILENCE = re.compile(r"silence_(start|end): (-?[\d.]+)")
_TIME = re.compile(r"time=(\d+):(\d\d):(\d\d(?:\.\d+)?)")  # ffmpeg's stats line: how far it got
NEAR_END = 0.1  # a silence ending this close to the decoded length runs to the end (stats show 1/100 s)


def audible_part(stderr_path: str) -> tuple[float, float | None] | None:
    """Where the audio is louder than trim_silence's threshold, as a first pass with the silencedetect
    filter printed it into `stderr_path` (at info level, with ffmpeg's stats): from the end of a silence
    at its start to the start of a silence that lasts to its end (None: no such silence, the end is kept).
    None: silence throughout."""
    leading_end, last, length = 0.0, None, 0.0  # last: the latest silence, [start, end or None]
    with open(stderr_path, "r", errors="replace") as printed:
        for line in printed:  # line by line: a long talk can print thousands of pauses
            for match in _TIME.finditer(line):
                hours, minutes, seconds = match.groups()
                length = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
            match = _SILENCE.search(line)
            if match and match.group(1) == "start":
                last = [float(match.group(2)), None]
            elif match and last is not None:
                last[1] = float(match.group(2))
                if last[0] <= 0.001:
                    leading_end = last[1]
    # Without ffmpeg's stats (length 0) the end is not known: the tail is kept rather than guessed.
    trailing = last is not None and length > 0 and (last[1] is None or last[1] >= length - NEAR_END)
    if trailing and last[0] <= 0.001:
        return None
    # silencedetect prints 6 significant digits (0.1 s past 10000 s): widen by that, never clip a sound.
    margin = 10 ** (math.floor(math.log10(max(length, 1))) - 5)
    return max(leading_end - margin, 0.0), (last[0] + margin if trailing else None)
