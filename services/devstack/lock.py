"""Write requirements.lock: the exact installed versions of the runtime dependency closure of vid2mp3.

    python -m services.devstack.lock > requirements.lock
"""
from __future__ import annotations

import re
from importlib import metadata


def closure(root: str = "vid2mp3") -> dict[str, str]:
    seen: dict[str, str] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        dist = metadata.distribution(name)
        seen[key] = dist.version
        for requirement in dist.requires or []:
            if ";" in requirement and "extra ==" in requirement:
                continue  # optional extras are not runtime dependencies
            if ";" in requirement and "python_version" in requirement and "<" in requirement.split(";")[1]:
                continue  # back-ports for older Pythons
            todo.append(re.split(r"[\s<>=!~\[;(]", requirement.strip(), maxsplit=1)[0])
    seen.pop("vid2mp3")
    return seen


if __name__ == "__main__":
    for name, version in sorted(closure().items()):
        print(f"{name}=={version}")
