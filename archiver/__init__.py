"""runway-archiver: archive RunwayML generations retrieved through useapi.net, verified on disk."""

__version__ = "0.1.0"
