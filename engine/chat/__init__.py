"""Chat with the one resident model: loading and switching adapters (models), turns at it (turns),
streaming replies within their limits (generation), many sessions' replies in one batch (serving), sampling
presets (sampling), chat templates and stop tokens (templates), and chats saved as JSON (history)."""
