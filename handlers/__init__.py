"""Channel adapters: Telegram, USSD and the web server (health, simulator)."""
