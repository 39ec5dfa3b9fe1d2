#!/usr/bin/env bash
# The peer: what a user would write instead of runway-archiver. Fetch every task's JSON with curl
# (16 at once), pull the URLs out with jq, download them with aria2c -j 16, then ffprobe every
# video (one per core) and compare its bytes on disk and duration with the JSON; any mismatch
# stops it with an error. Usage: USEAPI_TOKEN=... USEAPI_BASE_URL=... peer.sh IDS OUT [CORES]
set -euo pipefail
ids=$1
out=$2
cores=${3:-$(nproc)}
: "${USEAPI_TOKEN:?}" "${USEAPI_BASE_URL:?}"
export out
mkdir -p "$out/json" "$out/media"

# 1. The task JSON, 16 requests at once; a task id ends in -task:<uuid>, which names the file.
xargs -P 16 -n 1 sh -c 'curl -sfS -H "Authorization: Bearer $USEAPI_TOKEN" \
    -o "$out/json/${1##*-task:}.json" "$USEAPI_BASE_URL/runwayml/tasks/$1"' _ <"$ids"

# 2. URLs for aria2c (url, then its output name) and the claims to check (path, bytes, seconds).
find "$out/json" -name '*.json' -print0 | xargs -0 jq -r '
    select(.status == "SUCCEEDED") | .id as $t | .artifacts | to_entries[] | .key as $i
    | .value | "\(.url)\n  out=\($t)/\($i).mp4",
      (.previewUrls | to_entries[] | "\(.value)\n  out=\($t)/\($i).preview-\(.key).jpg")' \
    >"$out/aria2.txt"
find "$out/json" -name '*.json' -print0 | xargs -0 jq -r '
    select(.status == "SUCCEEDED") | .id as $t | .artifacts | to_entries[]
    | "\($t)/\(.key).mp4 \(.value.fileSize) \(.value.metadata.duration)"' >"$out/checks.txt"

# 3. Download everything.
aria2c -j 16 -d "$out/media" -i "$out/aria2.txt" --file-allocation=none \
    --auto-file-renaming=false --allow-overwrite=true --console-log-level=error \
    --summary-interval=0 --download-result=hide

# 4. One ffprobe per video, one per core; 255 makes xargs stop at the first mismatch.
xargs -P "$cores" -n 3 sh -c '
    f="$out/media/$1"
    size=$(stat -c %s "$f")
    dur=$(ffprobe -v error -show_entries format=duration -of default=nw=1:nk=1 "$f")
    if [ "$size" != "$2" ] || ! awk -v a="$dur" -v b="$3" \
            "BEGIN { d = a - b; exit !(d <= 0.1 && d >= -0.1) }"; then
        echo "MISMATCH $f: $size bytes, $dur s; the JSON says $2 bytes, $3 s" >&2
        exit 255
    fi' _ <"$out/checks.txt"
echo "peer: $(wc -l <"$out/checks.txt") videos checked, all match"
