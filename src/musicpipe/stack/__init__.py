"""Stack lifecycle: settings, safety rails, managed processes, the embedded AWS, persistence."""
