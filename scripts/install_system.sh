#!/usr/bin/env bash
# System packages the harness needs: FluidSynth (renders the embedded corpus), the FluidR3 GM soundfont (the
# second soundfont of near-copy queries) and espeak-ng (speech among the out-of-domain queries). Installed with
# apt-get when missing and we are root.
set -u
need=()
command -v fluidsynth >/dev/null 2>&1 || need+=(fluidsynth)
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || need+=(fluid-soundfont-gm)
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
# Headless Chromium: the browser tests of the HTML report (docs/report.md#browser-checks) drive it with Playwright.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing system packages: ${need[*]}"
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "error: ${need[*]} missing and not root; install them with your package manager" \
         "(Debian/Ubuntu: apt-get install ${need[*]}) and run make again" >&2
    exit 1
  fi
else SUDO=""; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: ${need[*]} missing and no apt-get here; install FluidSynth and the FluidR3 GM soundfont" \
       "with your package manager (macOS: brew install fluid-synth) and run make again" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
  || { $SUDO apt-get update >/dev/null 2>&1 && $SUDO apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; } \
  || { echo "error: apt-get could not install ${need[*]}; install them by hand and run make again" >&2; exit 1; }
