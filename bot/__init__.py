"""bansos-bot: a citizen service for Indonesia's social-economic registry (DTSEN)."""
