"""The lab's facts: its services and topology, its published ports and settings, its secrets,
and the timing presets. Everything that renders, starts or tests the lab reads them here."""
