"""atomic_write, the one way the package writes files: whole or not at all, never through a link.

Every writer goes through it (tg.save, viz.render, Monitor.plot, the demo's files), so these
tests check the helper itself and then that each writer really uses it.
"""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu._files import atomic_write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def temporaries(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".tgtmp"))


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_writes_the_file_with_the_mode_of_an_ordinary_new_file(tmp_path, umask_022):
    with atomic_write(tmp_path / "a.bin") as file:
        file.write(b"abc")
    assert (tmp_path / "a.bin").read_bytes() == b"abc"
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o644
    assert temporaries(tmp_path) == []


@pytest.mark.parametrize("error", [OSError("disk full (simulated)"), KeyboardInterrupt()])
def test_an_error_mid_write_leaves_the_old_file_and_no_temporary(tmp_path, error):
    path = tmp_path / "notes.txt"
    path.write_text("old")
    with pytest.raises(type(error)):
        with atomic_write(path, text=True) as file:
            file.write("half of the new")
            raise error
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_a_symlink_at_the_target_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "out.txt").symlink_to(victim)
    with atomic_write(tmp_path / "out.txt", text=True) as file:
        file.write("new")
    assert victim.read_text() == "precious"
    assert not (tmp_path / "out.txt").is_symlink()
    assert (tmp_path / "out.txt").read_text() == "new"


def test_old_fixed_temporary_names_with_planted_symlinks_are_not_followed(tmp_path):
    """The demo once wrote through `.explain.txt.tmp` and `.curves.png.tmp.png`: plant links there."""
    from tinygrad_edu import __main__ as cli

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for name in (".explain.txt.tmp", ".curves.png.tmp.png", ".diagnostics.txt.tmp", ".graph.dot.tmp"):
        (tmp_path / name).symlink_to(victim)
    cli._write_text(tmp_path / "explain.txt", "explained\n")
    assert victim.read_text() == "precious"
    assert (tmp_path / "explain.txt").read_text() == "explained\n"


def test_stale_temporaries_from_a_killed_save_are_removed_by_the_next_save(tmp_path):
    """SIGKILL a process in the middle of a save, then save again: its temporary is gone."""
    script = (
        "import os, sys, time\n"
        "from tinygrad_edu._files import atomic_write\n"
        "with atomic_write(sys.argv[1]) as file:\n"
        "    file.write(b'x' * 100000); file.flush()\n"
        "    print('writing', flush=True); time.sleep(60)\n"
    )
    target = tmp_path / "model.npz"
    child = subprocess.Popen([sys.executable, "-c", script, str(target)], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline().strip() == b"writing"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    left = temporaries(tmp_path)
    assert len(left) == 1 and not target.exists()  # SIGKILL skips every cleanup
    foreign = tmp_path / ".notes.tmp"  # not our naming pattern: never touched
    foreign.write_text("someone else's")
    an_hour_ago = time.time() - 3700
    os.utime(tmp_path / left[0], (an_hour_ago, an_hour_ago))
    os.utime(foreign, (an_hour_ago, an_hour_ago))

    tg.save({"w": np.ones(2)}, tmp_path / "other.npz")
    assert temporaries(tmp_path) == []
    assert foreign.exists()


def test_a_recent_temporary_is_kept_it_may_belong_to_a_save_in_progress(tmp_path):
    in_progress = tmp_path / ".model.npz.0123456789abcdef.tgtmp"
    in_progress.write_bytes(b"partial")
    tg.save({"w": np.ones(2)}, tmp_path / "other.npz")
    assert in_progress.exists()


@pytest.mark.filterwarnings("ignore:Data has no positive values")
def test_monitor_plot_writes_an_ordinary_mode_file(tmp_path, umask_022):
    pytest.importorskip("matplotlib")
    from tinygrad_edu import nn
    from tinygrad_edu.diagnostics import Monitor

    model = nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 1))
    monitor = Monitor(model)
    loss = (model(tg.Tensor(np.ones((4, 2), dtype=np.float32))) ** 2).mean()
    loss.backward()
    monitor.step(loss)
    monitor.plot(tmp_path / "monitor.png")
    assert (tmp_path / "monitor.png").stat().st_mode & 0o777 == 0o644
    assert temporaries(tmp_path) == []


@pytest.mark.filterwarnings("ignore:Data has no positive values")
@pytest.mark.parametrize("writer", ["save", "render", "plot"])
def test_every_writer_goes_through_atomic_write(tmp_path, monkeypatch, writer):
    from tinygrad_edu import _files, nn, viz

    used = []
    real = _files.atomic_write

    def spy(path, *args, **kwargs):
        used.append(os.path.basename(os.fspath(path)))
        return real(path, *args, **kwargs)

    for module in ("serialization", "viz", "diagnostics.monitor"):
        monkeypatch.setattr(f"tinygrad_edu.{module}.atomic_write", spy)
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    if writer == "save":
        tg.save({"w": np.ones(2)}, tmp_path / "out.npz")
    elif writer == "render":
        pytest.importorskip("graphviz")
        try:
            viz.render(viz.draw_graph((x * x).sum()), tmp_path / "out.svg")
        except viz.GraphvizNotFoundError:
            pytest.skip("Graphviz's dot is not installed")
    else:
        pytest.importorskip("matplotlib")
        from tinygrad_edu.diagnostics import Monitor

        model = nn.Sequential(nn.Linear(2, 1))
        monitor = Monitor(model)
        loss = model(tg.Tensor(np.ones((3, 2), dtype=np.float32))).sum()
        loss.backward()
        monitor.step(loss)
        monitor.plot(tmp_path / "out.png")
    assert len(used) == 1 and used[0].startswith("out.")
