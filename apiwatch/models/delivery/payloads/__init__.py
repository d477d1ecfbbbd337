"""Request bodies per receiver, built from a notification: pure functions, no I/O."""
