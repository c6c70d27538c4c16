"""gardenlab: bring up, break and measure a Patroni cluster on one machine."""
