"""Copy loadtest/locustfile.py and loadtest/media.py next to the kustomization (it may not read outside its folder)."""
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
for name in ("locustfile.py", "media.py"):
    shutil.copyfile(HERE.parent / name, HERE / name)
    print(f"copied {name}")
