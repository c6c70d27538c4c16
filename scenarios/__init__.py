"""The chaos scenario catalog: failures production sees, each with what the platform promises."""
