"""Bad input to every command: one line on stderr naming what is wrong and what is allowed,
exit status 2, nothing written; and interruption: one line, status 130 / 143, no half-written
output, no child process left running (issue 15, item 7; docs/usage.md, "Errors")."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cimforge.cli import _descendants, _interrupts, main

SENTENCES = Path(__file__).resolve().parents[1] / "data" / "minilm_sentences.txt"

# every command that reads --config, with the least else it needs to get that far
CONFIG_COMMANDS = [
    ["generate", "--out", "{tmp}/out"],
    ["map"],
    ["flow", "--out", "{tmp}/out", "--sim", "verilator"],
    ["synth", "--out", "{tmp}/out"],
    ["estimate"],
    ["latency"],
    ["endurance"],
    ["decode", "--steps", "1"],
    ["sweep"],
    ["embed", "--mode", "int", "--input", "{tmp}/in.txt", "--output", "{tmp}/x.npy"],
]


def _fails(argv: list[str], capsys, message: str, tmp: Path, keep: set[str] = frozenset()):
    """``argv`` exits 2 with one line naming ``message`` and writes nothing into ``tmp`` beyond
    the files ``keep`` names (the test's own inputs)."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cimforge {argv[0]}: error: ") and message in err, err
    assert err.count("\n") == 1, err
    assert {p.name for p in tmp.iterdir()} <= keep


def _argv(command: list[str], tmp: Path, config: str) -> list[str]:
    return [a.replace("{tmp}", str(tmp)) for a in command] + ["--config", config]


@pytest.fixture
def inputs(tmp_path):
    (tmp_path / "in.txt").write_text("a sentence\n", encoding="utf-8")
    return {"in.txt"}


@pytest.mark.parametrize("command", CONFIG_COMMANDS, ids=lambda c: c[0])
def test_config_not_utf8(command, tmp_path, capsys, inputs):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'base = "tiny"\n# caf\xe9\n')
    _fails(_argv(command, tmp_path, str(bad)), capsys,
           f"{bad}: not UTF-8 text (byte 0xe9 at offset 19): a TOML file must be UTF-8",
           tmp_path, inputs | {"bad.toml"})


@pytest.mark.parametrize("command", CONFIG_COMMANDS, ids=lambda c: c[0])
def test_config_empty_file_name_or_folder(command, tmp_path, capsys, inputs):
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    keep = inputs | {"empty.toml"}
    _fails(_argv(command, tmp_path, str(empty)), capsys,
           "is empty: a config names a base (base = \"tiny\")", tmp_path, keep)
    _fails(_argv(command, tmp_path, ""), capsys,
           "an empty name is neither a preset nor a TOML file: must be one of ", tmp_path, keep)
    _fails(_argv(command, tmp_path, str(tmp_path)), capsys,
           "is a folder: must be a preset name or a .toml file", tmp_path, keep)


@pytest.mark.parametrize("text, message", [
    ('base = "tiny"\n[analog]\nt_inference = inf\n',
     "analog.t_inference: inf must be a finite number"),
    ('base = "tiny"\n[analog]\nt_inference = 1e400\n',
     "analog.t_inference: inf must be a finite number"),
    ('base = "tiny"\n[analog]\nt_inference = nan\n', "analog.t_inference: nan must be a number"),
    ('base = "tiny"\n[model]\nd_model = 1000000000\n',
     "model.d_model: 1000000000 is too large: LayerNorm's exact variance sum over d_model = "
     "1000000000 with nonlinear.residual_bits = 16 is 92 bits wide, more than the 62 the "
     "golden model's int64 arithmetic holds: must be <= 32767 with these residual_bits"),
    ('base = "tiny"\n[model]\nd_model = 65536\nn_heads = 4\n',
     "nonlinear.residual_bits: 16: LayerNorm's exact variance sum over d_model = 65536 with "
     "nonlinear.residual_bits = 16 is 66 bits wide, more than the 62 the golden model's int64 "
     "arithmetic holds: must be <= 14 for this d_model (or d_model <= 32767)"),
], ids=["inf", "1e400", "nan", "huge-d_model", "wide-residual"])
def test_config_values(text, message, tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    _fails(["generate", "--config", str(cfg), "--out", str(tmp_path / "out")], capsys,
           message, tmp_path, {"c.toml"})


def test_missing_base_names_the_file_that_includes_it(tmp_path, capsys):
    outer = tmp_path / "outer.toml"
    outer.write_text('base = "middle.toml"\n')
    (tmp_path / "middle.toml").write_text('base = "nope.toml"\n')
    _fails(["map", "--config", str(outer)], capsys,
           f"nope.toml: file not found (the base of {tmp_path / 'middle.toml'})", tmp_path,
           {"outer.toml", "middle.toml"})


@pytest.mark.parametrize("command", ["generate", "flow", "synth"])
def test_out_is_a_file_or_empty(command, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    t0 = time.monotonic()
    _fails([command, "--out", str(afile)], capsys,
           f"--out '{afile}': is a file: must be a directory (new or existing)", tmp_path,
           {"afile"})
    assert time.monotonic() - t0 < 5  # refused before any elaboration
    assert afile.read_text() == "keep me"
    _fails([command, "--out", str(afile / "sub")], capsys,
           f"'{afile}' is a file, not a directory", tmp_path, {"afile"})
    with pytest.raises(SystemExit) as info:
        main([command, "--out", ""])
    assert info.value.code == 2
    assert "argument --out: an empty path: name a file or folder" in capsys.readouterr().err


def test_sweep_bounds_seeds_and_points(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    t0 = time.monotonic()
    _fails(["sweep", "--config", "minilm", "--seeds", "1000000000"], capsys,
           "--seeds 1000000000: must be an integer in [1, 1000]", tmp_path)
    _fails(["sweep", "--config", "minilm", "--seeds", "1000", "--adc-bits", "4,6,8"], capsys,
           "12,000 points (ADC widths x bits per cell x rows per read x times x seeds): at "
           "most 10,000 per sweep", tmp_path)
    assert time.monotonic() - t0 < 10  # counted, not built


def test_sweep_output_cannot_replace_its_input(tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_text("a sentence\n")
    _fails(["sweep", "--config", "minilm", "--input", str(src), "--output", str(src)], capsys,
           f"--output '{src}': is the --input file: writing it would destroy the input",
           tmp_path, {"in.csv"})
    assert src.read_text() == "a sentence\n"


def test_embed_output_cannot_replace_its_input(tmp_path, capsys):
    src = tmp_path / "in.npy"
    src.write_text("a sentence\n")
    link = tmp_path / "link.npy"
    link.symlink_to(src)
    for out in (src, link):
        _fails(["embed", "--input", str(src), "--output", str(out)], capsys,
               f"--output '{out}': is the --input file", tmp_path, {"in.npy", "link.npy"})
    assert src.read_text() == "a sentence\n"


@pytest.mark.parametrize("content, message", [
    (b"\xef\xbb\xbf", "no sentences: the file must have at least one non-empty line"),
    (b"\xef\xbb\xbf\n  \n", "no sentences"),
    (b"\0\0\0", "a NUL byte on line 1: not a text file"),
    (b"one\ntwo\x00\n", "a NUL byte on line 2: not a text file"),
], ids=["bom", "bom-blank", "nul", "nul-line-2"])
def test_embed_input_that_is_not_sentences(content, message, tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_bytes(content)
    _fails(["embed", "--input", str(src), "--output", str(tmp_path / "x.npy")], capsys,
           message, tmp_path, {"in.txt"})


def test_embed_bom_is_not_part_of_the_first_sentence(tmp_path):
    import numpy as np

    plain, bom = tmp_path / "plain.txt", tmp_path / "bom.txt"
    plain.write_text("hello world\n", encoding="utf-8")
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    for src in (plain, bom):
        assert main(["embed", "--input", str(src), "--output", str(src.with_suffix(".npy"))]) == 0
    assert np.array_equal(np.load(tmp_path / "plain.npy"), np.load(tmp_path / "bom.npy"))


def test_embed_warns_of_truncated_sentences(tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("short\n" + " ".join(["word"] * 300) + "\n\nalso short\n")
    assert main(["embed", "--input", str(src), "--output", str(tmp_path / "x.npy")]) == 0
    err = capsys.readouterr().err
    assert ("cimforge embed: warning: 1 sentence(s) of " in err and "longer than minilm's 256 "
            "tokens are truncated to their first 256 (sentence 2, counting non-empty lines)"
            in err), err


@pytest.mark.parametrize("name, cut, what", [
    ("model.safetensors", 100_000, "not a readable safetensors weights file"),
    ("tokenizer.json", 5000, "not a readable tokenizer file"),
    ("config.json", 10, "invalid JSON"),
])
def test_embed_damaged_model_files(name, cut, what, tmp_path, capsys, monkeypatch):
    from cimforge.model_files import MINILM_ENV, minilm_dir

    src = minilm_dir()
    files = tmp_path / "model"
    files.mkdir()
    for f in src.iterdir():
        if f.is_file():
            (files / f.name).symlink_to(f)
    (files / name).unlink()
    (files / name).write_bytes((src / name).read_bytes()[:cut])  # truncated
    monkeypatch.setenv(MINILM_ENV, str(files))
    out = tmp_path / "x.npy"
    (tmp_path / "in.txt").write_text("a sentence\n")
    assert main(["embed", "--input", str(tmp_path / "in.txt"), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cimforge embed: error: cannot load model 'minilm': ") and what in err
    assert str(files / name) in err and err.count("\n") == 1
    assert not out.exists()


def test_plot_paths_checked_first(tmp_path, capsys):
    _fails(["estimate", "--plot", str(tmp_path / "x.jpg")], capsys,
           "--plot '" + str(tmp_path / "x.jpg") + "': must be a .png file", tmp_path)
    _fails(["latency", "--plot", str(tmp_path / "no" / "x.png")], capsys,
           f"directory '{tmp_path / 'no'}' does not exist: create it first", tmp_path)


# -- interruption ---------------------------------------------------------------------------

def _cimforge(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cimforge.cli", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_generate(sig, tmp_path):
    proc = _cimforge(["generate", "--config", "tiny", "--out", "out"], tmp_path)
    _wait_for(proc, "[generate] elaborating", 120)
    time.sleep(1)  # in the middle of elaborating: tiny takes far longer
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, (proc.returncode, err)
    assert err.endswith(f"cimforge generate: interrupted ({sig.name}); outputs are written "
                        "whole or not at all\n"), err
    assert "Traceback" not in err and "Warning" not in err, err
    assert not (tmp_path / "out" / "manifest.json").exists()
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_interrupt_terminates_child_processes():
    """A signal reaches the command's grandchildren too: a simulator under a ``make`` that is
    killed would otherwise keep running."""
    script = (
        "import os, subprocess, time\n"
        "from cimforge.cli import _interrupts\n"
        "with _interrupts():\n"
        "    try:\n"
        "        p = subprocess.Popen(['sh', '-c', 'sleep 300 & echo $!; wait'],"
        " stdout=subprocess.PIPE, text=True)\n"
        "        print(p.stdout.readline().strip(), flush=True)\n"
        "        time.sleep(300)\n"
        "    except KeyboardInterrupt:\n"
        "        print('interrupted', flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    grandchild = int(proc.stdout.readline())
    os.kill(grandchild, 0)  # running
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout.readline().strip() == "interrupted"
    proc.wait(timeout=30)
    for _ in range(100):
        try:
            with open(f"/proc/{grandchild}/stat") as f:
                if f.read().rpartition(")")[2].split()[0] == "Z":
                    break  # dead, waiting for its parent to reap it
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"process {grandchild} still runs after the interrupt")


def test_interrupt_in_a_destructor_is_not_lost():
    """A signal that arrives while a ``__del__`` runs (Amaranth's unused-elaboratable check,
    during garbage collection) is raised again after it, not printed and dropped."""
    script = (
        "import time\n"
        "from cimforge.cli import _interrupts\n"
        "class Slow:\n"
        "    def __del__(self):\n"
        "        print('in del', flush=True)\n"
        "        time.sleep(5)\n"
        "with _interrupts():\n"
        "    try:\n"
        "        x = Slow()\n"
        "        del x\n"
        "        time.sleep(5)\n"
        "        print('not interrupted', flush=True)\n"
        "    except KeyboardInterrupt:\n"
        "        print('interrupted', flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "in del"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert out.split() == ["interrupted"] and err == "", (out, err)


def test_descendants_and_signal_handlers_restored():
    before = signal.getsignal(signal.SIGTERM)
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert child.pid in _descendants()
        with _interrupts():
            assert signal.getsignal(signal.SIGTERM) is not before
    finally:
        child.kill()
        child.wait()
    assert signal.getsignal(signal.SIGTERM) is before


def test_unwritable_output_found_before_the_model_runs(tmp_path, capsys):
    t0 = time.monotonic()
    _fails(["embed", "--input", str(SENTENCES), "--output", "/proc/cimforge-emb.npy"], capsys,
           "--output '/proc/cimforge-emb.npy': cannot write into '/proc' (", tmp_path)
    assert time.monotonic() - t0 < 2  # no model was loaded


def _wait_for(proc: subprocess.Popen, text: str, timeout: float) -> list[str]:
    """stderr lines of ``proc`` up to the first that holds ``text``."""
    lines, t0 = [], time.monotonic()
    while time.monotonic() - t0 < timeout:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"no {text!r} on stderr: {lines}")


def _processes_in(folder: Path) -> list[int]:
    """Processes whose working directory is inside ``folder``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cwd = Path(os.readlink(f"/proc/{entry}/cwd"))
            except OSError:
                continue
            if cwd == folder or folder in cwd.parents:
                found.append(int(entry))
    return found


@pytest.mark.parametrize("argv, wait_for, sig, outputs", [
    (["embed", "--mode", "accel", "--config", "minilm-adc8", "--input", str(SENTENCES),
      "--output", "emb.npy"], None, signal.SIGTERM, ["emb.npy"]),
    (["sweep", "--config", "minilm-pcm", "--adc-bits", "4,6", "--seeds", "2",
      "--output", "sw.csv"], "float reference done", signal.SIGINT,
     ["sw.csv", "sw.png", "sw-pareto.png"]),
], ids=["embed", "sweep"])
def test_interrupted_model_runs_leave_nothing(argv, wait_for, sig, outputs, tmp_path):
    proc = _cimforge(argv, tmp_path)
    if wait_for:
        _wait_for(proc, wait_for, 300)
    else:
        time.sleep(5)  # calibrating and running: the accelerator model takes far longer
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert err.endswith(f"cimforge {argv[0]}: interrupted ({sig.name}); outputs are written "
                        "whole or not at all\n"), err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [], outputs


def test_interrupted_synth_leaves_no_tool_running(tmp_path):
    proc = _cimforge(["synth", "--config", "tiny", "--blocks", "activation", "--out", "out",
                      "--cache", "cache"], tmp_path)
    _wait_for(proc, "nextpnr-ecp5 seed", 600)
    time.sleep(1)
    tools = _descendants(proc.pid)
    assert tools  # place and route running, in processes of their own
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.endswith("cimforge synth: interrupted (SIGTERM); outputs are written whole or "
                        "not at all\n"), err
    time.sleep(1)
    assert [pid for pid in tools if Path(f"/proc/{pid}").exists()] == []
    assert not (tmp_path / "out" / "synth.json").exists()



@pytest.mark.parametrize("command", [
    ["flow", "--sim", "verilator"],
    ["regress", "--blocks", "softmax", "--seeds", "4", "--jobs", "2"],
], ids=["flow", "regress"])
def test_interrupted_simulations_leave_no_simulator(command, tmp_path, cache_root):
    config = str(Path(__file__).parents[1] / "data" / "configs" / "tiny-blocks.toml")
    proc = _cimforge([*command, "--config", config, "--out", "out", "--build-cache",
                      str(cache_root)], tmp_path)
    out = tmp_path / "out"
    if command[0] == "flow":
        _wait_for(proc, "running the bench", 600)
        time.sleep(1)
        assert _processes_in(out)  # the simulator runs in the block's folder under --out
    else:
        _wait_for(proc, "[regress] 4 run(s)", 600)
        time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.endswith(f"cimforge {command[0]}: interrupted (SIGTERM); outputs are written "
                        "whole or not at all\n"), err
    time.sleep(1)
    assert _processes_in(out) == []
    assert not (out / "report.md").exists() and not (out / "report.json").exists()
