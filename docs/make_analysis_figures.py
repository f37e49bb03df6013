"""Regenerate the README's analysis pictures: ``compare_example.png`` (two synthetic samples whose
rings differ in size, compared with ``nanoseg compare``) and ``report_example.png`` (a screenshot of
the ``report.html`` that ``nanoseg measure --report`` writes for one of them, taken with headless
Chromium when it is installed). Run: `.venv/bin/python docs/make_analysis_figures.py [--keep DIR]`.

The samples are the ``realistic`` generator at 1 nm/px, 16 images of 512x512 each; sample
"small rings" draws ring radii of 15-45 px, "large rings" 25-70 px; the masks are measured as any
hand-labelled folder would be.
"""

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from nanoseg.cli import main as nanoseg

HERE = Path(__file__).parent
SAMPLES = {"small rings": (21, "[15, 45]"), "large rings": (22, "[25, 70]")}


def run(*args) -> None:
    try:
        nanoseg([str(a) for a in args])
    except SystemExit as exc:
        if exc.code:
            raise


def screenshot(html: Path, png: Path, width: int = 1200, height: int = 1500) -> bool:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        print("no headless Chromium found: report screenshot skipped")
        return False
    subprocess.run([browser, "--headless", "--no-sandbox", "--hide-scrollbars", f"--screenshot={png}",
                    f"--window-size={width},{height}", html.resolve().as_uri()], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return True


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", type=Path, default=None, help="keep the samples and results here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        results = []
        for name, (seed, radius) in SAMPLES.items():
            data = work / f"sd_{name.replace(' ', '_')}"
            out = work / name.replace(" ", "_")
            run("synth", "--out", data, "--n", 16, "--seed", seed, "--preset", "realistic", "--size", 512,
                "--set", "scale_nm_per_px=[1.0, 1.0]", "--set", f"ring_radius_px={radius}", "--overwrite")
            run("measure", "--masks", data, "--out", out, "--report", "--overwrite")
            results.append(out)
        run("compare", *results, "--names", ",".join(SAMPLES), "--figure", HERE / "compare_example.png",
            "--json", work / "compare.json")
        screenshot(results[1] / "report.html", HERE / "report_example.png")


if __name__ == "__main__":
    main()
