"""Two processes filling one cache folder: one fills it, the other waits and reuses it; a holder
killed with SIGKILL does not leave the folder locked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from compoundai.cache_lock import filling, lock_path

# Fill `folder` unless complete, the way the model store, the indexes and the adapters do.
FILL = """
import sys, time
from pathlib import Path
from compoundai.cache_lock import filling
folder = Path(sys.argv[1])
with filling(folder, "the test folder"):
    if not (folder / "done").is_file():
        folder.mkdir(exist_ok=True)
        with (folder.parent / "fills.txt").open("a") as fh:
            fh.write(sys.argv[2] + "\\n")
        while not Path(sys.argv[3]).exists():  # hold the lock until the test says so
            time.sleep(0.05)
        (folder / "done").write_text("ok")
"""


def _start(folder: Path, name: str, release: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", FILL, str(folder), name, str(release)],
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_second_process_waits_and_finds_the_folder_filled(tmp_path: Path):
    folder, release = tmp_path / "index", tmp_path / "release"
    first = _start(folder, "first", release)
    deadline = time.monotonic() + 60
    while not (tmp_path / "fills.txt").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = _start(folder, "second", release)
    assert second.stderr is not None
    line = second.stderr.readline()  # the second says it waits, while the first holds on
    assert "waiting for another compoundai process to finish the test folder" in line
    release.touch()
    assert first.wait(timeout=60) == 0 and second.wait(timeout=60) == 0
    assert (tmp_path / "fills.txt").read_text().split() == ["first"]
    assert lock_path(folder).is_file() and not (folder / lock_path(folder).name).exists()


def test_a_killed_holder_releases_the_lock(tmp_path: Path):
    folder = tmp_path / "adapter"
    holder = _start(folder, "killed", tmp_path / "never")
    deadline = time.monotonic() + 30
    while not (tmp_path / "fills.txt").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    started = time.monotonic()
    with filling(folder, "the test folder"):  # not stuck behind the dead process
        assert not (folder / "done").exists()  # ... which never finished: fill it again
    assert time.monotonic() - started < 10


def test_training_an_adapter_first_lets_go_of_an_idle_shared_generator(tmp_path: Path):
    from compoundai.context import RunContext
    from compoundai.lanes.finetune_data import _train_cached

    ctx = RunContext(cache_dir=tmp_path, progress=False)
    ctx.shared(("generator", "local", "idle"), dict)
    held = ctx.shared(("generator", "local", "held"), dict)  # a built system still uses it
    ctx.shared(("embedder", "minilm"), dict)
    seen: list[list[tuple[str, ...]]] = []

    def train(resume: bool) -> None:
        seen.append(list(ctx.loaded))
        (tmp_path / "run" / "adapter").mkdir(parents=True)

    _train_cached(tmp_path / "run", train, ctx)
    assert seen == [[("generator", "local", "held"), ("embedder", "minilm")]]
    assert ctx.loaded[("generator", "local", "held")] is held  # kept: never loaded twice
