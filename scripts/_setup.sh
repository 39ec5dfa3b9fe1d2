# Sourced by scripts/test, scripts/demo, scripts/bench and scripts/screenshot: make sure ffmpeg,
# Chromium (the gallery's browser tests) and the venv exist.
# Works on a fresh Debian machine with Python 3.11 (as root, apt-get installs ffmpeg).

# apt-get install Debian packages: as root here, else through sudo.
apt_install() {
    echo "setup: installing $* (apt-get)" >&2
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

ensure_ffmpeg() {
    command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null && return
    apt_install ffmpeg
}

# Debian's chromium and chromium-driver: the gallery is tested in a real headless browser.
ensure_chromium() {
    command -v chromium >/dev/null && command -v chromedriver >/dev/null && return
    apt_install chromium chromium-driver
}

ensure_venv() {
    local python="${PYTHON:-python3}"
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "setup: $python is older than 3.11" >&2
        exit 2
    fi
    if [ ! -x .venv/bin/python ]; then
        echo "setup: creating .venv" >&2
        "$python" -m venv .venv
    fi
    # Reinstall only when the project's metadata changed since the last install.
    local stamp=.venv/.installed-pyproject
    if ! cmp -s pyproject.toml "$stamp"; then
        echo "setup: installing runway-archiver with its test and emulator extras into .venv" >&2
        .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,emulator]'
        cp pyproject.toml "$stamp"
    fi
}
