"""Channel-independent conversations: pure steps from (state, input) to (state, reply)."""
