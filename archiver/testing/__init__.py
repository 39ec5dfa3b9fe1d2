"""A local useapi.net emulator with real media and switchable faults, for tests and demos.

Start it with `Emulator(MediaLibrary(cache_dir))`, or run `python -m archiver.testing`.
"""

from archiver.testing.accounts import ACCOUNTS
from archiver.testing.faults import Seen
from archiver.testing.lifecycle import Lifecycle
from archiver.testing.media import Media, MediaLibrary, VideoSpec
from archiver.testing.origins import LISTING
from archiver.testing.scenarios import SCENARIOS, Scenario
from archiver.testing.server import Emulator
from archiver.testing.tasks import ArtifactSpec, Hook, Upload

__all__ = [
    "ACCOUNTS",
    "LISTING",
    "SCENARIOS",
    "ArtifactSpec",
    "Emulator",
    "Hook",
    "Lifecycle",
    "Media",
    "MediaLibrary",
    "Scenario",
    "Seen",
    "Upload",
    "VideoSpec",
]
