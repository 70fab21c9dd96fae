"""Agent providers: live SDK-backed models and recorded replies."""
