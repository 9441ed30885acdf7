"""musicpipe: a local-first AWS mirror for the music-streaming analytics pipeline."""

__version__ = "0.1.0"
