# Sourced by scripts/test, scripts/demo, scripts/bench and scripts/screenshot: make sure ffmpeg,
# Chromium (the gallery's browser tests), PostgreSQL's server (the shared catalog's tests) and the
# venv exist.
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

# Debian's postgresql: the tests start a throwaway cluster of their own (archiver/testing/postgres.py)
# from its server binaries, /usr/lib/postgresql/<version>/bin; no cluster of the package is used.
ensure_postgres() {
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && return
    command -v initdb >/dev/null && return
    apt_install postgresql
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
    # Every extra: the tests and the demo exercise each optional engine.
    local extras="test,emulator,s3,postgres,libav"
    # Reinstall only when the project's metadata or the extras asked for changed since the last
    # install: the stamp is both.
    local stamp=.venv/.installed-pyproject
    if ! { cat pyproject.toml; echo "extras: $extras"; } | cmp -s - "$stamp"; then
        echo "setup: installing runway-archiver with the extras $extras into .venv" >&2
        .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]"
        { cat pyproject.toml; echo "extras: $extras"; } > "$stamp"
    fi
}
