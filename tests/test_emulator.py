"""The useapi.net emulator over real loopback HTTP: JSON shape, auth, signed URLs, Range, faults."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import ffmpeg
import pytest
from multidict import CIMultiDict
from yarl import URL

from archiver.testing import (
    SCENARIOS,
    ArtifactSpec,
    Emulator,
    Hook,
    MediaLibrary,
    Upload,
    VideoSpec,
)

TASK_KEYS = {
    "taskId",
    "id",
    "name",
    "image",
    "createdAt",
    "updatedAt",
    "taskType",
    "options",
    "status",
    "error",
    "progressText",
    "progressRatio",
    "estimatedTimeToStartSeconds",
    "artifacts",
    "sharedAsset",
}
OPTION_KEYS = {
    "name",
    "seconds",
    "text_prompt",
    "seed",
    "exploreMode",
    "watermark",
    "enhance_prompt",
    "init_image",
    "resolution",
    "assetGroupName",
    "recordingEnabled",
}
ARTIFACT_KEYS = {
    "assetId",
    "id",
    "createdAt",
    "updatedAt",
    "userId",
    "createdBy",
    "taskId",
    "parentAssetGroupId",
    "filename",
    "url",
    "fileSize",
    "isDirectory",
    "previewUrls",
    "private",
    "privateInTeam",
    "deleted",
    "reported",
    "metadata",
    "favorite",
}


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> MediaLibrary:
    return MediaLibrary(tmp_path_factory.mktemp("media"))


@pytest.fixture
async def emu(media: MediaLibrary) -> AsyncIterator[Emulator]:
    async with Emulator(media) as emulator:
        yield emulator


def auth(emu: Emulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {emu.token}"}


async def get_task(http: aiohttp.ClientSession, emu: Emulator, task_id: str) -> dict[str, Any]:
    async with http.get(f"{emu.api_url}/runwayml/tasks/{task_id}", headers=auth(emu)) as resp:
        assert resp.status == 200
        data: dict[str, Any] = await resp.json()
        return data


async def fetch(
    http: aiohttp.ClientSession, url: str, **kwargs: Any
) -> tuple[int, bytes, CIMultiDict[str]]:
    async with http.get(URL(url, encoded=True), **kwargs) as resp:
        return resp.status, await resp.read(), resp.headers.copy()


async def test_task_json_matches_page_and_served_media(
    emu: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A SUCCEEDED task has every field of the page's example and metadata matching ffprobe."""
    task_id = emu.add_task()
    data = await get_task(http, emu, task_id)
    assert set(data) == TASK_KEYS and set(data["options"]) == OPTION_KEYS
    assert data["taskId"] == task_id and task_id.endswith(data["id"])
    (art,) = data["artifacts"]
    assert set(art) == ARTIFACT_KEYS and "." not in art["filename"]
    status, body, headers = await fetch(http, art["url"])
    assert status == 200 and headers["Content-Type"] == "video/mp4"
    assert art["fileSize"] == str(len(body))
    (tmp_path / "a.mp4").write_bytes(body)
    probe = ffmpeg.probe(str(tmp_path / "a.mp4"))
    stream = probe["streams"][0]
    meta = art["metadata"]
    assert meta["dimensions"] == [stream["width"], stream["height"]]
    assert meta["size"] == {"width": stream["width"], "height": stream["height"]}
    assert meta["duration"] == pytest.approx(float(probe["format"]["duration"]), abs=0.001)
    assert meta["frameRate"] == 24 and stream["avg_frame_rate"] == "24/1"
    files = emu.media_of(task_id)
    assert body == files[0].read_bytes() and len(art["previewUrls"]) == 3
    for url, path in zip(art["previewUrls"], files[1:4], strict=True):
        status, preview, headers = await fetch(http, url)
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        assert preview == path.read_bytes() and preview[:2] == b"\xff\xd8"


async def test_auth_and_unknown_id_bodies(emu: Emulator, http: aiohttp.ClientSession) -> None:
    """A wrong token gets the page's 401 body and an unknown id its 404 body."""
    task_id = emu.add_task()
    url = f"{emu.api_url}/runwayml/tasks/{task_id}"
    async with http.get(url, headers={"Authorization": "Bearer nope"}) as resp:
        assert (resp.status, await resp.json()) == (401, {"error": "Unauthorized", "code": 401})
    async with http.get(url) as resp:
        assert resp.status == 401
    emu.remove_task(task_id)
    async with http.get(url, headers=auth(emu)) as resp:
        assert (resp.status, await resp.json()) == (404, {"error": "Not found.", "code": 404})


async def test_task_id_encoded_or_malformed(emu: Emulator, http: aiohttp.ClientSession) -> None:
    """A percent-encoded id is decoded once; a malformed one gets a 400 error body."""
    task_id = emu.add_task()
    encoded = URL(f"{emu.api_url}/runwayml/tasks/{quote(task_id, safe='')}", encoded=True)
    assert "%3A" in str(encoded) and "%40" in str(encoded)
    async with http.get(encoded, headers=auth(emu)) as resp:
        assert resp.status == 200 and (await resp.json())["taskId"] == task_id
    bad = URL(f"{emu.api_url}/runwayml/tasks/{quote(task_id + ' x', safe='')}", encoded=True)
    async with http.get(bad, headers=auth(emu)) as resp:
        body = await resp.json()
        assert resp.status == 400 and body["code"] == 400 and body["error"]


async def test_cdn_rejects_requoted_url(emu: Emulator, http: aiohttp.ClientSession) -> None:
    """The CDN answers 403 to a URL whose escapes were altered and 200 to the exact one."""
    url = (await get_task(http, emu, emu.add_task()))["artifacts"][0]["url"]
    assert "%3B" in url
    status, body, _ = await fetch(http, url.replace("%3B", ";"))
    assert status == 403 and json.loads(body) == {"error": "signature mismatch"}
    assert (await fetch(http, url))[0] == 200


async def test_expire_urls(emu: Emulator, http: aiohttp.ClientSession) -> None:
    """expire_urls makes issued URLs 403 'expired'; URLs from a fresh fetch of the JSON work."""
    task_id = emu.add_task()
    old = (await get_task(http, emu, task_id))["artifacts"][0]
    emu.expire_urls()
    status, body, _ = await fetch(http, old["url"])
    assert status == 403 and json.loads(body) == {"error": "expired"}
    new = (await get_task(http, emu, task_id))["artifacts"][0]
    assert new["url"] != old["url"]
    assert (await fetch(http, new["url"]))[0] == 200
    assert (await fetch(http, new["previewUrls"][0]))[0] == 200


@pytest.mark.parametrize("mode", ["sendfile", "paced"])
async def test_range_gives_206(emu: Emulator, http: aiohttp.ClientSession, mode: str) -> None:
    """Range: bytes=N- gives 206 with the tail bytes, from sendfile and from the paced stream."""
    task_id = emu.add_task()
    if mode == "paced":
        emu.cdn_rate = 50_000_000
    url = (await get_task(http, emu, task_id))["artifacts"][0]["url"]
    whole = emu.media_of(task_id)[0].read_bytes()
    status, body, headers = await fetch(http, url, headers={"Range": "bytes=1000-"})
    assert status == 206 and body == whole[1000:]
    assert headers["Content-Range"] == f"bytes 1000-{len(whole) - 1}/{len(whole)}"
    etag = headers["ETag"]
    stale = {"Range": "bytes=1000-", "If-Range": '"stale"'}
    assert (await fetch(http, url, headers=stale))[:2] == (200, whole)
    fresh = {"Range": "bytes=1000-", "If-Range": etag}
    assert (await fetch(http, url, headers=fresh))[0] == 206
    emu.range_support = False
    assert (await fetch(http, url, headers={"Range": "bytes=1000-"}))[:2] == (200, whole)


async def test_truncate_at_closes_early(emu: Emulator, http: aiohttp.ClientSession) -> None:
    """truncate_at sends the full Content-Length, then N bytes, then closes the connection."""
    task_id = emu.add_task()
    url = (await get_task(http, emu, task_id))["artifacts"][0]["url"]
    size = emu.media_of(task_id)[0].stat().st_size
    emu.asset_fault(".mp4", truncate_at=5000)
    received = bytearray()
    async with http.get(URL(url, encoded=True)) as resp:
        assert resp.content_length == size
        with pytest.raises(aiohttp.ClientPayloadError):
            async for chunk in resp.content.iter_any():
                received += chunk
    assert len(received) == 5000
    assert (await fetch(http, url))[1] == emu.media_of(task_id)[0].read_bytes()


async def test_body_faults(emu: Emulator, http: aiohttp.ClientSession) -> None:
    """Status faults are consumed `times` times; extra_bytes lengthens the body; hang stalls."""
    task_id = emu.add_task()
    emu.api_fault(task_id, status=503, times=2, headers={"Retry-After": "1"})
    url = f"{emu.api_url}/runwayml/tasks/{task_id}"
    for _ in range(2):
        async with http.get(url, headers=auth(emu)) as resp:
            assert resp.status == 503 and resp.headers["Retry-After"] == "1"
    art = (await get_task(http, emu, task_id))["artifacts"][0]
    whole = emu.media_of(task_id)[0].read_bytes()
    emu.asset_fault("previews/", status=429, headers={"Retry-After": "2"})
    assert (await fetch(http, art["previewUrls"][0]))[0] == 429
    emu.asset_fault(art["id"], extra_bytes=10)
    status, body, _ = await fetch(http, art["url"])
    assert status == 200 and body[: len(whole)] == whole and len(body) == len(whole) + 10
    emu.asset_fault(art["id"], hang=True)
    with pytest.raises(asyncio.TimeoutError):
        await fetch(http, art["url"], timeout=aiohttp.ClientTimeout(sock_read=0.3))


async def test_task_states_and_mismatch(emu: Emulator, http: aiohttp.ClientSession) -> None:
    """Non-SUCCEEDED tasks carry no artifacts; set_status adds them; `serve` swaps the file."""
    failed = await get_task(http, emu, emu.add_task("FAILED"))
    assert failed["artifacts"] == [] and failed["error"]["tally_asimov"] is False
    pending_id = emu.add_task("PENDING")
    pending = await get_task(http, emu, pending_id)
    assert pending["artifacts"] == [] and pending["estimatedTimeToStartSeconds"] is not None
    emu.set_status(pending_id, "SUCCEEDED")
    assert len((await get_task(http, emu, pending_id))["artifacts"]) == 1
    short = VideoSpec(seconds=1.0)
    task_id = emu.add_task(artifacts=[ArtifactSpec(serve=short, previews=0)], quirks=True)
    data = await get_task(http, emu, task_id)
    assert data["artifacts"][0]["metadata"]["duration"] == 2.0 and data["progressRatio"] is None
    assert emu.media_of(task_id)[:1] == [emu.media.video(short).path]
    assert emu.media_of(task_id)[1:] == list(emu.inputs_of(task_id).values())  # init_image
    emu.task_json(task_id)["artifacts"][0]["fileSize"] = "123"
    assert (await get_task(http, emu, task_id))["artifacts"][0]["fileSize"] == "123"


async def test_requests_are_recorded(emu: Emulator, http: aiohttp.ClientSession) -> None:
    """Every request to either origin is logged in order with its raw path, headers and status."""
    task_id = emu.add_task(previews=0)
    url = (await get_task(http, emu, task_id))["artifacts"][0]["url"]
    await fetch(http, url, headers={"X-Probe": "yes"})
    api, cdn = emu.requests
    assert (api.origin, api.status, api.headers["Authorization"]) == (
        "api",
        200,
        "Bearer test-token",
    )
    assert (cdn.origin, cdn.method, cdn.status) == ("cdn", "GET", 200)
    assert cdn.raw_path == url.removeprefix(emu.cdn_url) and cdn.headers["X-Probe"] == "yes"
    emu.clear_requests()
    assert emu.requests == []


def test_running_in_thread(media: MediaLibrary) -> None:
    """running_in_thread serves synchronous clients and stops cleanly on exit."""
    with Emulator(media).running_in_thread() as emu:
        task_id = emu.add_task()
        req = urllib.request.Request(f"{emu.api_url}/runwayml/tasks/{task_id}", headers=auth(emu))
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert json.load(resp)["status"] == "SUCCEEDED"


async def test_reset_and_redirect(emu: Emulator, http: aiohttp.ClientSession) -> None:
    """reset drops the connection (logged as status 0); redirect_to answers 302 with Location."""
    task_id = emu.add_task(previews=0)
    url = f"{emu.api_url}/runwayml/tasks/{task_id}"
    # Two resets: aiohttp's client silently retries a request once after a disconnect.
    emu.api_fault(task_id, reset=True, times=2)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await get_task(http, emu, task_id)
    assert [seen.status for seen in emu.requests] == [0, 0]
    emu.api_fault(redirect_to=url)
    async with http.get(url, headers=auth(emu), allow_redirects=False) as resp:
        assert resp.status == 302 and resp.headers["Location"] == url
    assert (await get_task(http, emu, task_id))["status"] == "SUCCEEDED"


# -- inputs on the uploads host, and the 2025 scenarios -------------------------------------


async def test_inputs_are_served_signed_from_the_uploads_host(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    """init_image is a /datasets/ URL on its own host with only ?_jwt=, re-signed per retrieve."""
    task_id = emu.add_task()
    first = (await get_task(http, emu, task_id))["options"]["init_image"]
    path, _, query = first.removeprefix(emu.uploads_url).partition("?")
    assert first.startswith(emu.uploads_url + "/datasets/") and query.startswith("_jwt=")
    status, body, headers = await fetch(http, first)
    source = emu.inputs_of(task_id)["options.init_image"]
    assert (status, body, headers["Content-Type"]) == (200, source.read_bytes(), "image/jpeg")
    assert emu.media_of(task_id)[-1] == source
    again = (await get_task(http, emu, task_id))["options"]["init_image"]
    assert again != first and again.partition("?")[0] == first.partition("?")[0]
    assert (await fetch(http, f"{emu.cdn_url}{path}?{query}"))[0] == 404  # not on the CDN
    emu.expire_urls()
    assert (await fetch(http, again))[0] == 403
    assert (await fetch(http, (await get_task(http, emu, task_id))["options"]["init_image"]))[
        0
    ] == 200
    assert [r.origin for r in emu.requests].count("uploads") == 3


async def test_one_upload_in_two_places_is_one_url(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    """An Upload given twice is one asset; callbacks are URLs on the uploads host, not assets."""
    pic = Upload(image=(64, 64), name="pic")
    task_id = emu.add_task(previews=0, options={"a": pic, "b": [{"url": pic}], "replyUrl": Hook()})
    options = (await get_task(http, emu, task_id))["options"]
    assert options["a"] == options["b"][0]["url"]
    assert options["replyUrl"].startswith(f"{emu.uploads_url}/hooks/reply?")
    assert (await fetch(http, options["replyUrl"]))[0] == 404
    assert list(emu.inputs_of(task_id)) == ["options.a", "options.b[0].url"]
    assert len(emu.media_of(task_id)) == 2  # the video, and one input


async def test_scenarios_have_todays_shapes(
    emu: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """2025 metadata, /<model>/<id>/<name> paths, an AAC track, 4 images, both error shapes."""
    i2v = await get_task(http, emu, emu.add_scenario("gen4_turbo_i2v"))
    art = i2v["artifacts"][0]
    assert i2v["taskType"] == "gen4_turbo" and i2v["options"]["init_image"].startswith(
        emu.uploads_url
    )
    assert set(art["metadata"]) == {
        "frameRate",
        "duration",
        "width",
        "height",
        "hasAlphaChannel",
        "hasAudio",
    }
    assert art["metadata"]["hasAudio"] is False
    assert URL(art["url"]).path.startswith(f"/gen4_turbo/{art['id']}/") and URL(
        art["url"]
    ).path.endswith(".mp4")
    camel_id = emu.add_scenario("camel_references")
    camel = await get_task(http, emu, camel_id)
    assert camel["artifacts"][0]["metadata"]["hasAudio"] is True
    assert [r["type"] for r in camel["options"]["referenceImages"]] == ["image", "image"]
    streams = ffmpeg.probe(str(emu.media_of(camel_id)[0]))["streams"]
    assert sorted((s["codec_type"], s["codec_name"]) for s in streams) == [
        ("audio", "aac"),
        ("video", "h264"),
    ]
    t2i = await get_task(http, emu, emu.add_scenario("text_to_image"))
    assert len(t2i["artifacts"]) == 4
    assert all(
        "duration" not in a["metadata"] and URL(a["url"]).path.endswith(".png")
        for a in t2i["artifacts"]
    )
    safety = await get_task(http, emu, emu.add_scenario("failed_safety"))
    assert (safety["status"], safety["error"]["reason"]) == ("FAILED", "SAFETY.OUTPUT.THIRD_PARTY")
    plain = await get_task(http, emu, emu.add_scenario("failed_string_error"))
    assert isinstance(plain["error"], str) and plain["artifacts"] == []
    act = emu.add_scenario("act_two")
    kinds = sorted(p.suffix for p in emu.inputs_of(act).values())
    assert kinds == [".jpg", ".mp4"]
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        emu.add_scenario("nope")


def test_command_line_seeds_scenarios(media: MediaLibrary, tmp_path: Path) -> None:
    """python -m archiver.testing --scenarios all serves each, ids written, stops on SIGTERM."""
    ids, ready = tmp_path / "ids.txt", tmp_path / "ready.json"
    cmd = [sys.executable, "-m", "archiver.testing", "--tasks", "1", "--scenarios", "all"]
    cmd += ["--cache", str(media.cache_dir), "--ids-out", str(ids), "--ready-file", str(ready)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the emulator did not get ready"
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        assert info["uploads_url"].startswith("http://127.0.0.1:")
        task_ids = ids.read_text().split()
        assert len(task_ids) == 1 + len(SCENARIOS)
        request = urllib.request.Request(
            f"{info['api_url']}/runwayml/tasks/{task_ids[-1]}",
            headers={"Authorization": f"Bearer {info['token']}"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert json.load(resp)["taskType"] == "lipsync"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_command_line_refuses_an_unknown_scenario(tmp_path: Path) -> None:
    """--scenarios with an unknown name exits 2 naming it and the known ones."""
    done = subprocess.run(
        [sys.executable, "-m", "archiver.testing", "--scenarios", "gen4,nope"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "unknown scenario 'gen4'" in done.stderr and "gen4_turbo_i2v" in done.stderr
