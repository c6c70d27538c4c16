"""What every other package stands on: errors, running commands, waiting with a deadline,
reading durations and rates. Imports nothing of the rest of the harness."""
